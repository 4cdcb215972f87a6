package restapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// syncPaths are the synchronous-replication health checks (the contract's rows 7–11).
var syncPaths = []string{"/sync", "/synchronous", "/quorum", "/async", "/asynchronous",
	"/read-only-quorum", "/read-only-sync", "/read-only-synchronous"}

// withSync is a replica (pg2) with synchronous_mode set to mode ("on",
// "quorum", "off") in both the effective config and the view, and the sync
// key listing standbys.
func withSync(base func() *cluster.Snapshot, compat cluster.Compat, mode, standbys string) func() *cluster.Snapshot {
	return func() *cluster.Snapshot {
		s := base()
		s.Compat = compat
		s.Config.SynchronousMode = mode != "off"
		s.Config.SynchronousQuorum = mode == "quorum"
		vc := *s.View.Config
		vc.SynchronousMode, vc.SynchronousQuorum = s.Config.SynchronousMode, s.Config.SynchronousQuorum
		s.View.Config = &vc
		s.View.Sync = &cluster.SyncState{Leader: "pg1", SyncStandby: str(standbys)}
		return s
	}
}

func TestSyncHealthRowsAndStatusFlags(t *testing.T) {
	c3, c4 := cluster.Compat302, cluster.Compat4
	cases := []struct {
		name       string
		snap       func() *cluster.Snapshot
		sync, quor bool  // the document's sync_standby / quorum_standby
		want       []int // one per syncPaths entry
	}{
		//                                                                          sync synchr quorum async asyn roq  ros  ross
		{"3.0.2 sync standby", withSync(replicaStreaming, c3, "on", "pg2"), true, false, []int{ok, ok, down, down, down, ok, ok, ok}},
		{"4.x sync standby", withSync(replicaStreaming, c4, "on", "pg3,pg2"), true, false, []int{ok, ok, down, down, down, down, ok, ok}},
		{"3.0.2 async replica", withSync(replicaStreaming, c3, "on", "pg3"), false, false, []int{down, down, down, ok, ok, ok, down, down}},
		{"4.x async replica", withSync(replicaStreaming, c4, "on", "pg3"), false, false, []int{down, down, down, ok, ok, down, down, down}},
		{"4.x quorum standby", withSync(replicaStreaming, c4, "quorum", "pg2,pg3"), false, true, []int{down, down, ok, down, down, ok, down, down}},
		// 3.0.2's parse_bool does not read "quorum": synchronous mode is off for it.
		{"3.0.2 under quorum mode", withSync(replicaStreaming, c3, "quorum", "pg2,pg3"), false, false, []int{down, down, down, ok, ok, ok, down, down}},
		{"3.0.2 listed, mode off", withSync(replicaStreaming, c3, "off", "pg2"), false, false, []int{down, down, down, ok, ok, ok, down, down}},
		{"4.x listed, mode off", withSync(replicaStreaming, c4, "off", "pg2"), false, false, []int{down, down, down, ok, ok, down, down, down}},
		// postgres matches standby names without case; 4.x does too, 3.0.2 compares exactly.
		{"3.0.2 name case differs", withSync(replicaStreaming, c3, "on", "PG2"), false, false, []int{down, down, down, ok, ok, ok, down, down}},
		{"4.x name case differs", withSync(replicaStreaming, c4, "on", "PG2"), true, false, []int{ok, ok, down, down, down, down, ok, ok}},
		{"sync standby lagging past ?lag", withSync(replicaLagging, c3, "on", "pg2"), true, false, []int{ok, ok, down, down, down, ok, ok, ok}},
		{"DCS down: nothing answers", withSync(dcsDownReplica, c4, "on", "pg2"), false, false, []int{down, down, down, down, down, down, down, down}},
		{"3.0.2 primary", withSync(primaryLeader, c3, "on", "pg2"), false, false, []int{down, down, down, down, down, ok, ok, ok}},
		{"4.x primary", withSync(primaryLeader, c4, "quorum", "pg2"), false, false, []int{down, down, down, down, down, ok, ok, ok}},
		{"4.x standby cluster replica", func() *cluster.Snapshot {
			s := withSync(replicaStreaming, c4, "on", "pg2")()
			s.StandbyCluster = true
			return s
		}, false, false, []int{down, down, down, ok, ok, down, down, down}},
		{"noloadbalance sync standby", withSync(replicaNoLoadBalance, c3, "on", "pg2"), true, false, []int{down, down, down, down, down, down, down, down}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newTestServer(t, tc.snap())
			for i, path := range syncPaths {
				if rec := do(t, srv.Handler(), http.MethodGet, path, ""); rec.Code != tc.want[i] {
					t.Errorf("GET %s: got %d, want %d", path, rec.Code, tc.want[i])
				}
			}
			var doc map[string]any
			if err := json.Unmarshal(getDoc(t, srv, "/patroni", http.StatusOK), &doc); err != nil {
				t.Fatal(err)
			}
			if got := doc["sync_standby"] == true; got != tc.sync {
				t.Errorf("/patroni sync_standby = %v, want %v", doc["sync_standby"], tc.sync)
			}
			if got := doc["quorum_standby"] == true; got != tc.quor {
				t.Errorf("/patroni quorum_standby = %v, want %v", doc["quorum_standby"], tc.quor)
			}
			metrics := string(getDoc(t, srv, "/metrics", http.StatusOK))
			wantSync := "patroni_sync_standby{" + metricLabels(tc.snap()) + "} " + b2s(tc.sync) + "\n"
			if !strings.Contains(metrics, wantSync) {
				t.Errorf("metrics lack %q", wantSync)
			}
			if tc.snap().Compat == c4 {
				wantQ := "patroni_quorum_standby{" + metricLabels(tc.snap()) + "} " + b2s(tc.quor) + "\n"
				if !strings.Contains(metrics, wantQ) {
					t.Errorf("metrics lack %q", wantQ)
				}
			} else if strings.Contains(metrics, "patroni_quorum_standby") {
				t.Errorf("3.0.2 metrics have patroni_quorum_standby")
			}
		})
	}
}

func metricLabels(s *cluster.Snapshot) string {
	if s.Compat == cluster.Compat4 {
		return `scope="` + s.Scope + `",name="` + s.Name + `"`
	}
	return `scope="` + s.Scope + `"`
}

func TestClusterDocumentSyncRoles(t *testing.T) {
	c3, c4 := cluster.Compat302, cluster.Compat4
	cases := []struct {
		name string
		snap func() *cluster.Snapshot
		pg2  string
		pg3  string
	}{
		{"3.0.2 mode on", withSync(primaryLeader, c3, "on", "pg2"), "sync_standby", "replica"},
		{"4.x mode on", withSync(primaryLeader, c4, "on", "pg2"), "sync_standby", "replica"},
		// 3.0.2 marks whatever the key lists, even with the mode off; 4.x only while it is on.
		{"3.0.2 mode off", withSync(primaryLeader, c3, "off", "pg2,pg3"), "sync_standby", "sync_standby"},
		{"4.x mode off", withSync(primaryLeader, c4, "off", "pg2,pg3"), "replica", "replica"},
		{"4.x quorum", withSync(primaryLeader, c4, "quorum", "pg2,pg3"), "quorum_standby", "quorum_standby"},
		{"3.0.2 quorum", withSync(primaryLeader, c3, "quorum", "pg3"), "replica", "sync_standby"},
		{"4.x case-insensitive", withSync(primaryLeader, c4, "on", "PG3"), "replica", "sync_standby"},
		{"3.0.2 exact names", withSync(primaryLeader, c3, "on", "PG3"), "replica", "replica"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newTestServer(t, tc.snap())
			var doc cluster.Doc
			if err := json.Unmarshal(getDoc(t, srv, "/cluster", http.StatusOK), &doc); err != nil {
				t.Fatal(err)
			}
			roles := map[string]string{}
			for _, m := range doc.Members {
				roles[m.Name] = m.Role
			}
			if roles["pg1"] != "leader" || roles["pg2"] != tc.pg2 || roles["pg3"] != tc.pg3 {
				t.Errorf("roles %v, want pg2 %s pg3 %s", roles, tc.pg2, tc.pg3)
			}
		})
	}
}
