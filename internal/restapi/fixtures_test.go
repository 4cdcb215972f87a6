package restapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// testNow is the fixed clock of the unit tests.
var testNow = time.Date(2024, 8, 28, 19, 40, 0, 0, time.UTC)

const (
	testOptime = 0x5000000 // the leader's position in the status key
	mib        = 1 << 20
)

func i64(v int64) *int64   { return &v }
func str(v string) *string { return &v }

// baseView is a three-member cluster led by pg1 whose DCS view was read a second ago.
func baseView() cluster.View {
	return cluster.View{
		Leader: &cluster.LeaderKey{Name: "pg1", LeaseID: 7},
		Members: map[string]cluster.Member{
			"pg1": {Name: "pg1", ConnURL: "postgres://10.0.0.1:5432/postgres", APIURL: "http://10.0.0.1:8008/patroni",
				State: "running", Role: "master", Version: "3.0.2", XLogLocation: i64(testOptime), Timeline: 3},
			"pg2": {Name: "pg2", ConnURL: "postgres://10.0.0.2:5433/postgres", APIURL: "http://10.0.0.2:8008/patroni",
				State: "running", Role: "replica", Version: "3.0.2", XLogLocation: i64(testOptime - 100), Timeline: 3,
				ReplicationState: "streaming", Tags: map[string]any{"clonefrom": true}},
			"pg3": {Name: "pg3", ConnURL: "postgres://PG3.example:5432/postgres", APIURL: "http://pg3.example:8008/patroni",
				State: "stopped", Role: "replica", Version: "3.0.2"},
		},
		Config:    &cluster.DynamicConfig{TTL: 30, LoopWait: 10, Raw: map[string]any{"ttl": 30}},
		ConfigRaw: []byte(`{"ttl":30,"loop_wait":10,"failsafe_mode":true}`),
		Sync:      &cluster.SyncState{Leader: "pg1"},
		History: []cluster.HistoryEntry{
			{Timeline: 1, LSN: 25165984, Reason: "no recovery target specified", Timestamp: "2024-08-28T19:00:00+00:00", NewLeader: "pg2"},
			{Timeline: 2, LSN: 50331808, Reason: "no recovery target specified", Timestamp: "2024-08-28T19:30:00+00:00", NewLeader: "pg1"},
		},
		Status:   &cluster.StatusKey{Optime: testOptime},
		Failsafe: map[string]string{"pg1": "http://10.0.0.1:8008/patroni", "pg2": "http://10.0.0.2:8008/patroni"},
		Revision: 42,
		ReadAt:   testNow.Add(-time.Second),
	}
}

func baseSnapshot(name string) *cluster.Snapshot {
	start := time.Date(2024, 8, 28, 19, 39, 26, 352526000, time.UTC)
	cfg := cluster.DefaultDynamicConfig()
	return &cluster.Snapshot{
		Name: name, Scope: "pg-test", Compat: cluster.Compat302,
		APIURL: "http://10.0.0.1:8008/patroni", ConnURL: "postgres://10.0.0.1:5432/postgres",
		PG: cluster.PGObservation{
			ObservedAt: testNow, State: cluster.StateRunning, Running: true, Ready: true,
			PostmasterStartTime: start, ServerVersion: 150008, SystemID: "7407420000000000001", Timeline: 3,
		},
		View: baseView(), TTL: 30 * time.Second, LoopWait: 10 * time.Second, RetryTimeout: 10 * time.Second,
		Config: cfg, LastLoop: testNow.Add(-2 * time.Second), NextLoopAt: testNow.Add(8 * time.Second),
	}
}

// Node states of the health-check tables.

func primaryLeader() *cluster.Snapshot {
	s := baseSnapshot("pg1")
	s.Role = cluster.RolePrimary
	s.PG.CurrentLSN, s.PG.FlushLSN = testOptime+64, testOptime
	s.PG.Replication = []cluster.ReplicationRow{{UseName: "replicator", ApplicationName: "pg2",
		ClientAddr: "10.0.0.2", State: "streaming", SyncState: "async"}}
	s.LeaderUntil = testNow.Add(20 * time.Second)
	return s
}

func primaryNoLock() *cluster.Snapshot {
	s := primaryLeader()
	s.LeaderUntil = testNow.Add(-time.Second) // renewal overdue
	s.View.Leader = nil
	return s
}

func replicaStreaming() *cluster.Snapshot {
	s := baseSnapshot("pg2")
	s.Role = cluster.RoleReplica
	s.PG.InRecovery, s.PG.Streaming = true, true
	s.PG.ReceivedLSN, s.PG.ReplayedLSN, s.PG.ReceiverLatest = testOptime, testOptime-100, testOptime
	replayedAt := time.Date(2024, 8, 28, 19, 39, 59, 0, time.UTC)
	s.PG.ReplayedAt = &replayedAt
	s.Tags = map[string]any{"zone": "eu-1", "clonefrom": true, "priority": 3, "ratio": 1.5, "Mixed": "AbC"}
	return s
}

func replicaSync() *cluster.Snapshot {
	s := replicaStreaming()
	s.Config.SynchronousMode = true
	s.SyncStandby = true
	s.View.Sync = &cluster.SyncState{Leader: "pg1", SyncStandby: str("pg2")}
	return s
}

func replicaLagging() *cluster.Snapshot {
	s := replicaStreaming()
	s.PG.ReplayedLSN = testOptime - 20*mib
	s.PG.ReceivedLSN = testOptime - 20*mib
	s.PG.ReceiverLatest = testOptime - 20*mib
	return s
}

func replicaArchive() *cluster.Snapshot {
	s := replicaStreaming()
	s.PG.Streaming = false
	return s
}

func replicaNoLoadBalance() *cluster.Snapshot {
	s := replicaStreaming()
	s.Tags = map[string]any{"noloadbalance": true, "zone": "eu-1"}
	return s
}

func stoppedNode() *cluster.Snapshot {
	s := baseSnapshot("pg3")
	s.Role = cluster.RoleReplica
	s.PG = cluster.PGObservation{ObservedAt: testNow, State: cluster.StateStopped, SystemID: "7407420000000000001"}
	return s
}

func standbyLeader() *cluster.Snapshot {
	s := replicaStreaming()
	s.Name = "pg1"
	s.Tags = nil
	s.StandbyCluster = true
	s.Role = cluster.RoleStandbyLeader
	s.LeaderUntil = testNow.Add(20 * time.Second)
	s.View.Config.Raw = map[string]any{"standby_cluster": map[string]any{"host": "10.1.0.1", "port": 5432}}
	return s
}

func pausedDCSDown() *cluster.Snapshot {
	s := primaryLeader()
	s.Paused = true
	s.View.ReadAt = testNow.Add(-time.Minute) // older than ttl: view invalid
	s.LeaderUntil = testNow.Add(-25 * time.Second)
	return s
}

func dcsDownPrimary() *cluster.Snapshot {
	s := primaryLeader()
	s.View.ReadAt = testNow.Add(-time.Minute)
	s.LeaderUntil = testNow.Add(-25 * time.Second)
	return s
}

func dcsDownReplica() *cluster.Snapshot {
	s := replicaLagging()
	s.View.ReadAt = testNow.Add(-time.Minute)
	return s
}

func leaderPGStopped() *cluster.Snapshot {
	s := primaryLeader()
	s.PG = cluster.PGObservation{ObservedAt: testNow, State: cluster.StateStopped, SystemID: "7407420000000000001"}
	return s
}

// snapSource is a Source whose snapshot tests can swap.
type snapSource struct {
	p atomic.Pointer[cluster.Snapshot]
}

func (s *snapSource) Snapshot() *cluster.Snapshot { return s.p.Load() }

func newSource(snap *cluster.Snapshot) *snapSource {
	src := &snapSource{}
	src.p.Store(snap)
	return src
}

// newTestServer builds a server on the fixed clock serving snap.
func newTestServer(t testing.TB, snap *cluster.Snapshot, mutate ...func(*Config)) (*Server, *snapSource) {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0", Now: func() time.Time { return testNow }}
	for _, m := range mutate {
		m(&cfg)
	}
	src := newSource(snap)
	s, err := New(cfg, src, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, src
}

// do runs one request through the handler.
func do(t testing.TB, h http.Handler, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
