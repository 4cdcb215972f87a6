package restapi

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got (indented JSON or text) with testdata/name.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if json.Valid(got) {
		var buf bytes.Buffer
		if err := json.Indent(&buf, got, "", "  "); err != nil {
			t.Fatal(err)
		}
		got = append(buf.Bytes(), '\n')
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func getDoc(t *testing.T, srv *Server, path string, wantCode int) []byte {
	t.Helper()
	rec := do(t, srv.Handler(), http.MethodGet, path, "")
	if rec.Code != wantCode {
		t.Fatalf("GET %s: got %d, want %d: %s", path, rec.Code, wantCode, rec.Body.String())
	}
	return rec.Body.Bytes()
}

func TestStatusDocumentGolden(t *testing.T) {
	compat4 := func(f func() *cluster.Snapshot) func() *cluster.Snapshot {
		return func() *cluster.Snapshot {
			s := f()
			s.Compat = cluster.Compat4
			s.PG.PendingRestartWhy = map[string]cluster.PendingChange{"max_connections": {OldValue: "100", NewValue: "200"}}
			return s
		}
	}
	for _, tc := range []struct {
		golden string
		snap   func() *cluster.Snapshot
	}{
		{"patroni_primary_302.golden", primaryLeader},
		{"patroni_replica_302.golden", replicaSync},
		{"patroni_stopped_302.golden", stoppedNode},
		{"patroni_paused_dcs_down_302.golden", pausedDCSDown},
		{"patroni_standby_leader_302.golden", standbyLeader},
		{"patroni_primary_4.golden", compat4(primaryLeader)},
		{"patroni_replica_4.golden", compat4(replicaStreaming)},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			srv, _ := newTestServer(t, tc.snap())
			body := getDoc(t, srv, "/patroni", http.StatusOK)
			golden(t, tc.golden, body)
			// The GET health-check body is the same document.
			if rec := do(t, srv.Handler(), http.MethodGet, "/health", ""); !bytes.Equal(rec.Body.Bytes(), body) {
				t.Errorf("GET /health body differs from /patroni")
			}
		})
	}
}

// TestStatusDocumentTypes checks the field types peers rely on in the leader race.
func TestStatusDocumentTypes(t *testing.T) {
	srv, _ := newTestServer(t, primaryLeader())
	var p map[string]any
	if err := json.Unmarshal(getDoc(t, srv, "/patroni", 200), &p); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"state": "string", "postmaster_start_time": "string", "role": "string", "server_version": "number",
		"xlog": "object", "timeline": "number", "replication": "array", "dcs_last_seen": "number",
		"database_system_identifier": "string", "patroni": "object",
	}
	for k, typ := range want {
		if got := jsonType(p[k]); got != typ {
			t.Errorf("%s: type %s, want %s", k, got, typ)
		}
	}
	if p["role"] != "master" || p["postmaster_start_time"] != "2024-08-28 19:39:26.352526+00:00" {
		t.Errorf("role/postmaster_start_time: %v %v", p["role"], p["postmaster_start_time"])
	}
	if loc := p["xlog"].(map[string]any)["location"]; loc != float64(testOptime+64) {
		t.Errorf("3.0.2 xlog.location is the current LSN: %v", loc)
	}

	srv, _ = newTestServer(t, replicaStreaming())
	var r map[string]any
	if err := json.Unmarshal(getDoc(t, srv, "/patroni", 200), &r); err != nil {
		t.Fatal(err)
	}
	x := r["xlog"].(map[string]any)
	for k, typ := range map[string]string{"received_location": "number", "replayed_location": "number",
		"replayed_timestamp": "string", "paused": "bool"} {
		if got := jsonType(x[k]); got != typ {
			t.Errorf("xlog.%s: type %s, want %s", k, got, typ)
		}
	}
	if r["replication_state"] != "streaming" || r["role"] != "replica" {
		t.Errorf("replica doc: %v", r)
	}

	s := replicaStreaming()
	s.PG.ReplayedAt = nil
	srv, _ = newTestServer(t, s)
	var n map[string]any
	_ = json.Unmarshal(getDoc(t, srv, "/patroni", 200), &n)
	if v, present := n["xlog"].(map[string]any)["replayed_timestamp"]; !present || v != nil {
		t.Errorf("replayed_timestamp must be null when unknown, got %v (present %v)", v, present)
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return "?"
}

func TestStatusDocumentQueryFailed(t *testing.T) {
	s := primaryLeader()
	s.PG.Ready = false // running but the status query failed
	srv, _ := newTestServer(t, s)
	var d map[string]any
	_ = json.Unmarshal(getDoc(t, srv, "/patroni", 200), &d)
	if d["state"] != "unknown" || d["role"] != "master" || d["xlog"] != nil {
		t.Fatalf("minimal document expected, got %v", d)
	}
	if rec := do(t, srv.Handler(), http.MethodOptions, "/health", ""); rec.Code != down {
		t.Fatalf("/health with state unknown: %d", rec.Code)
	}
	if rec := do(t, srv.Handler(), http.MethodOptions, "/primary", ""); rec.Code != ok {
		t.Fatalf("/primary is decided by the lock: %d", rec.Code)
	}
}

func TestClusterDocument(t *testing.T) {
	s := primaryLeader()
	s.View.Config.Pause = true
	s.View.Sync = &cluster.SyncState{Leader: "pg1", SyncStandby: str("pg3")}
	s.View.Failover = &cluster.Failover{Leader: "pg1", Member: "pg2", ScheduledAt: "2024-08-28T20:00:00+00:00"}
	srv, _ := newTestServer(t, s)
	body := getDoc(t, srv, "/cluster", http.StatusOK)
	golden(t, "cluster_302.golden", body)

	var doc struct {
		Members []map[string]any `json:"members"`
		Pause   bool             `json:"pause"`
		Sched   map[string]any   `json:"scheduled_switchover"`
		Scope   *string          `json:"scope"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Members) != 3 || doc.Members[0]["name"] != "pg1" || doc.Members[2]["name"] != "pg3" {
		t.Fatalf("members not sorted by name: %v", doc.Members)
	}
	roles := []string{"leader", "replica", "sync_standby"}
	for i, m := range doc.Members {
		if m["role"] != roles[i] {
			t.Errorf("%s role %v, want %s", m["name"], m["role"], roles[i])
		}
	}
	if _, has := doc.Members[0]["lag"]; has {
		t.Errorf("leader must not have lag")
	}
	if doc.Members[1]["lag"] != float64(100) || doc.Members[2]["lag"] != "unknown" {
		t.Errorf("lag: %v %v", doc.Members[1]["lag"], doc.Members[2]["lag"])
	}
	if doc.Members[1]["port"] != float64(5433) || doc.Members[2]["host"] != "pg3.example" {
		t.Errorf("host/port from conn_url: %v", doc.Members)
	}
	if !doc.Pause || doc.Sched["at"] != "2024-08-28T20:00:00+00:00" || doc.Sched["to"] != "pg2" || doc.Scope != nil {
		t.Errorf("pause/scheduled_switchover/scope: %+v", doc)
	}

	s4 := primaryLeader()
	s4.Compat = cluster.Compat4
	srv, _ = newTestServer(t, s4)
	golden(t, "cluster_4.golden", getDoc(t, srv, "/cluster", http.StatusOK))

	sb := standbyLeader()
	srv, _ = newTestServer(t, sb)
	if !strings.Contains(string(getDoc(t, srv, "/cluster", 200)), `"role":"standby_leader"`) {
		t.Errorf("standby cluster leader must be standby_leader")
	}
}

func TestHistoryConfigFailsafeDocuments(t *testing.T) {
	srv, _ := newTestServer(t, primaryLeader())
	if got := string(getDoc(t, srv, "/history", 200)); got != `[[1,25165984,"no recovery target specified","2024-08-28T19:00:00+00:00","pg2"],[2,50331808,"no recovery target specified","2024-08-28T19:30:00+00:00","pg1"]]` {
		t.Errorf("history: %s", got)
	}
	if got := string(getDoc(t, srv, "/config", 200)); got != `{"ttl":30,"loop_wait":10,"failsafe_mode":true}` {
		t.Errorf("config: %s", got)
	}
	if got := string(getDoc(t, srv, "/failsafe", 200)); got != `{"pg1":"http://10.0.0.1:8008/patroni","pg2":"http://10.0.0.2:8008/patroni"}` {
		t.Errorf("failsafe: %s", got)
	}
	// Sub-paths route by their first segment, as in Patroni.
	getDoc(t, srv, "/config/anything", 200)

	s := primaryLeader()
	s.View.History, s.View.ConfigRaw, s.View.Failsafe = nil, nil, nil
	srv, _ = newTestServer(t, s)
	if got := string(getDoc(t, srv, "/history", 200)); got != `[]` {
		t.Errorf("empty history: %s", got)
	}
	getDoc(t, srv, "/config", http.StatusBadGateway)
	getDoc(t, srv, "/failsafe", http.StatusBadGateway)
}

func TestLivenessReadiness(t *testing.T) {
	late := func(f func() *cluster.Snapshot, age time.Duration) func() *cluster.Snapshot {
		return func() *cluster.Snapshot {
			s := f()
			s.NextLoopAt = testNow.Add(-age)
			return s
		}
	}
	cases := []struct {
		name   string
		snap   func() *cluster.Snapshot
		target string
		want   int
	}{
		{"liveness fresh", primaryLeader, "/liveness", ok},
		{"liveness primary stuck > ttl", late(primaryLeader, 31*time.Second), "/liveness", down},
		{"liveness replica stuck > ttl but < 2ttl", late(replicaStreaming, 31*time.Second), "/liveness", ok},
		{"liveness replica stuck > 2ttl", late(replicaStreaming, 61*time.Second), "/liveness", down},
		{"liveness paused while stuck", late(pausedDCSDown, time.Hour), "/liveness", ok},
		{"HEAD liveness is a health check", primaryLeader, "/liveness", down},

		{"readiness leader", primaryLeader, "/readiness", ok},
		{"readiness replica with DCS", replicaLagging, "/readiness", ok},
		{"readiness replica DCS down", dcsDownReplica, "/readiness", down},
		{"readiness stopped", stoppedNode, "/readiness", down},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newTestServer(t, tc.snap())
			method := http.MethodGet
			if strings.HasPrefix(tc.name, "HEAD") {
				method = http.MethodHead
			}
			rec := do(t, srv.Handler(), method, tc.target, "")
			if rec.Code != tc.want || rec.Body.Len() != 0 {
				t.Fatalf("got %d %q, want %d without body", rec.Code, rec.Body.String(), tc.want)
			}
		})
	}

	// 4.1 readiness: streaming and lag (default maximum_lag_on_failover = 1 MiB).
	for _, tc := range []struct {
		snap   func() *cluster.Snapshot
		target string
		want   int
	}{
		{replicaStreaming, "/readiness", ok},
		{replicaLagging, "/readiness", down}, // 20 MiB behind the status key's optime
		{func() *cluster.Snapshot { s := dcsDownReplica(); s.Compat = cluster.Compat4; return s }, "/readiness", ok}, // only the walreceiver's position is known
		{func() *cluster.Snapshot { s := replicaLagging(); s.PG.ReceiverLatest = testOptime; return s }, "/readiness", down},
		{func() *cluster.Snapshot { s := replicaLagging(); s.PG.ReceiverLatest = testOptime; return s }, "/readiness?lag=30MB", ok},
		{func() *cluster.Snapshot {
			s := replicaLagging()
			s.PG.ReceiverLatest, s.PG.ReceivedLSN = testOptime, testOptime
			return s
		}, "/readiness?mode=write", ok},
		{replicaArchive, "/readiness", down},
		{func() *cluster.Snapshot { s := dcsDownReplica(); s.PG.ReceiverLatest = 0; return s }, "/readiness", down},
		{func() *cluster.Snapshot {
			s := dcsDownReplica()
			s.PG.ReceiverLatest, s.FailsafeActive = 0, true
			return s
		}, "/readiness", ok},
	} {
		s := tc.snap()
		s.Compat = cluster.Compat4
		srv, _ := newTestServer(t, s)
		if rec := do(t, srv.Handler(), http.MethodGet, tc.target, ""); rec.Code != tc.want {
			t.Errorf("4.x GET %s (%s): got %d, want %d", tc.target, s.Name, rec.Code, tc.want)
		}
	}
}

func TestStatusUpstreamError(t *testing.T) {
	sb := standbyLeader()
	srv, _ := newTestServer(t, sb)
	if got := string(getDoc(t, srv, "/patroni", 200)); strings.Contains(got, "pgnoded_upstream_error") {
		t.Errorf("a streaming standby leader reports an upstream error: %s", got)
	}
	why := "not streaming from the remote primary 10.1.0.1:5432 (unreachable or refusing replication; retrying)"
	sb = standbyLeader()
	sb.UpstreamError = why
	srv, _ = newTestServer(t, sb)
	var doc map[string]any
	if err := json.Unmarshal(getDoc(t, srv, "/patroni", 200), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["pgnoded_upstream_error"] != why {
		t.Errorf("pgnoded_upstream_error: got %v, want %q", doc["pgnoded_upstream_error"], why)
	}
	// Patroni's own fields are all still there.
	for _, k := range []string{"state", "role", "xlog", "timeline", "dcs_last_seen", "patroni"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("the document lost %s: %v", k, doc)
		}
	}
	if doc["role"] != "standby_leader" {
		t.Errorf("role: %v", doc["role"])
	}
}
