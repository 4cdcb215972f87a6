package restapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

const (
	ok   = http.StatusOK
	down = http.StatusServiceUnavailable
)

// healthPaths are Patroni's health-check paths (api.py do_GET), in the
// column order of the expectation rows below.
var healthPaths = []string{
	"/", "/primary", "/master", "/read-write", "/leader", "/standby-leader", "/standby_leader",
	"/replica", "/read-only", "/health", "/sync", "/synchronous", "/async", "/asynchronous",
	"/read-only-sync", "/read-only-synchronous", "/foo",
}

// Expected codes per node state, written from Patroni's api.py do_GET (one column per healthPaths entry).
var healthTable = []struct {
	name string
	snap func() *cluster.Snapshot
	want []int
}{
	//                                    /    prim mast r-w  lead sb-l sb_l repl r-o  hlth sync syn  asyn asyn ros  ross foo
	{"primary leader", primaryLeader, []int{ok, ok, ok, ok, ok, down, down, down, ok, ok, down, down, down, down, ok, ok, down}},
	{"primary without lock", primaryNoLock, []int{down, down, down, down, down, down, down, down, down, ok, down, down, down, down, down, down, down}},
	{"replica streaming", replicaStreaming, []int{down, down, down, down, down, down, down, ok, ok, ok, down, down, ok, ok, down, down, down}},
	{"replica sync standby", replicaSync, []int{down, down, down, down, down, down, down, ok, ok, ok, ok, ok, down, down, ok, ok, down}},
	{"replica lagging", replicaLagging, []int{down, down, down, down, down, down, down, ok, ok, ok, down, down, ok, ok, down, down, down}},
	{"replica noloadbalance", replicaNoLoadBalance, []int{down, down, down, down, down, down, down, down, down, ok, down, down, down, down, down, down, down}},
	{"stopped", stoppedNode, []int{down, down, down, down, down, down, down, down, down, down, down, down, down, down, down, down, down}},
	{"standby leader", standbyLeader, []int{down, down, down, down, ok, ok, ok, down, ok, ok, down, down, down, down, ok, ok, down}},
	{"paused with DCS down", pausedDCSDown, []int{ok, ok, ok, ok, ok, down, down, down, ok, ok, down, down, down, down, down, down, down}},
	{"DCS down primary", dcsDownPrimary, []int{down, down, down, down, down, down, down, down, down, ok, down, down, down, down, down, down, down}},
	{"DCS down replica", dcsDownReplica, []int{down, down, down, down, down, down, down, ok, ok, ok, down, down, down, down, down, down, down}},
	{"leader with postgres stopped", leaderPGStopped, []int{ok, ok, ok, ok, ok, down, down, down, ok, down, down, down, down, down, ok, ok, down}},
}

func TestHealthEndpointsByRoleAndMethod(t *testing.T) {
	for _, tc := range healthTable {
		if len(tc.want) != len(healthPaths) {
			t.Fatalf("%s: %d expectations for %d paths", tc.name, len(tc.want), len(healthPaths))
		}
		srv, _ := newTestServer(t, tc.snap())
		for i, path := range healthPaths {
			for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
				t.Run(tc.name+" "+method+" "+path, func(t *testing.T) {
					rec := do(t, srv.Handler(), method, path, "")
					if rec.Code != tc.want[i] {
						t.Fatalf("got %d, want %d", rec.Code, tc.want[i])
					}
					if method != http.MethodGet {
						if rec.Body.Len() != 0 {
							t.Fatalf("%s must not have a body, got %q", method, rec.Body.String())
						}
						return
					}
					var doc map[string]any
					if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
						t.Fatalf("GET body is not the status document: %v: %q", err, rec.Body.String())
					}
					if _, ok := doc["state"]; !ok {
						t.Fatalf("status document without state: %v", doc)
					}
					if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
						t.Fatalf("Content-Type %q", ct)
					}
				})
			}
		}
	}
}

func TestHealthQueryParameters(t *testing.T) {
	cases := []struct {
		name   string
		snap   func() *cluster.Snapshot
		target string
		want   int
	}{
		// ?lag= against leader_lsn = max(status optime, latest_end_lsn); lagging replica is 20 MiB behind.
		{"no lag filter", replicaLagging, "/replica", ok},
		{"lag 10MB", replicaLagging, "/replica?lag=10MB", down},
		{"lag 19MB", replicaLagging, "/replica?lag=19MB", down},
		{"lag 20MB exact", replicaLagging, "/replica?lag=20MB", ok},
		{"lag bytes exact", replicaLagging, "/replica?lag=20971520", ok},
		{"lag bytes one short", replicaLagging, "/replica?lag=20971519", down},
		{"lag kB", replicaLagging, "/replica?lag=20480kB", ok},
		{"lag hex", replicaLagging, "/replica?lag=0x1400000", ok},
		{"lag float exponent", replicaLagging, "/replica?lag=1.5e7", down},
		{"lag 1GB", replicaLagging, "/replica?lag=1GB", ok},
		{"lag units are case-sensitive (mb ignored)", replicaLagging, "/replica?lag=10mb", ok},
		{"lag unparsable ignored", replicaLagging, "/replica?lag=abc", ok},
		{"lag blank ignored", replicaLagging, "/replica?lag=", ok},
		{"lag with space", replicaLagging, "/replica?lag=10%20MB", down},
		{"lag first value wins", replicaLagging, "/replica?lag=10MB&lag=1GB", down},
		{"lag on read-only", replicaLagging, "/read-only?lag=10MB", down},
		{"lag on async", replicaLagging, "/async?lag=10MB", down},
		{"lag ignored on primary", primaryLeader, "/primary?lag=0", ok},
		{"lag ignored on read-only primary", primaryLeader, "/read-only?lag=0", ok},
		{"lag while DCS down uses walreceiver only", dcsDownReplica, "/replica?lag=0", ok},
		{"lag negative", replicaStreaming, "/replica?lag=-1", down},

		{"replication_state streaming", replicaStreaming, "/replica?replication_state=streaming", ok},
		{"replication_state other", replicaStreaming, "/replica?replication_state=in%20archive%20recovery", down},
		{"replication_state not streaming", replicaArchive, "/replica?replication_state=streaming", down},
		{"not streaming replica still a replica", replicaArchive, "/replica", ok},

		{"tag string", replicaStreaming, "/replica?tag_zone=eu-1", ok},
		{"tag string mismatch", replicaStreaming, "/replica?tag_zone=eu-2", down},
		{"tag missing", replicaStreaming, "/replica?tag_rack=r1", down},
		{"tag bool lowercased", replicaStreaming, "/replica?tag_clonefrom=true", ok},
		{"tag bool Python spelling", replicaStreaming, "/replica?tag_clonefrom=True", down},
		{"tag int", replicaStreaming, "/replica?tag_priority=3", ok},
		{"tag float", replicaStreaming, "/replica?tag_ratio=1.5", ok},
		{"tag string not lowercased", replicaStreaming, "/replica?tag_Mixed=abc", down},
		{"tag string exact case", replicaStreaming, "/replica?tag_Mixed=AbC", ok},
		{"tag repeated key uses first", replicaStreaming, "/replica?tag_zone=eu-1&tag_zone=eu-2", ok},
		{"tag blank ignored", replicaStreaming, "/replica?tag_zone=", ok},
		{"tags all must match", replicaStreaming, "/replica?tag_zone=eu-1&tag_priority=4", down},
		{"tags on read-only", replicaStreaming, "/read-only?tag_zone=eu-2", down},
		{"tags on health", replicaStreaming, "/health?tag_rack=r1", down},
		{"tags on async", replicaStreaming, "/async?tag_zone=eu-1", ok},
		{"tags ignored for primary", primaryLeader, "/primary?tag_rack=r1", ok},
		{"tags ignored for leader", primaryLeader, "/leader?tag_rack=r1", ok},
		{"tags ignored for standby leader", standbyLeader, "/standby-leader?tag_rack=r1", ok},
		{"tags checked on read-only primary", primaryLeader, "/read-only?tag_rack=r1", down},
		{"tags only when otherwise 200", replicaNoLoadBalance, "/replica?tag_zone=eu-1", down},
		{"noloadbalance tag string false is on, as bool(\"false\") in Patroni", func() *cluster.Snapshot {
			s := replicaStreaming()
			s.Tags = map[string]any{"noloadbalance": "false"}
			return s
		}, "/replica", down},
		{"noloadbalance tag false", func() *cluster.Snapshot {
			s := replicaStreaming()
			s.Tags = map[string]any{"noloadbalance": false}
			return s
		}, "/replica", ok},
		{"substring path classification", replicaStreaming, "/replica/anything", ok},
		{"primary substring wins over replica", primaryLeader, "/primary-replica", ok},
		{"leader beats primary", replicaStreaming, "/leader-primary", down},
		{"percent-encoded path is not decoded", primaryLeader, "/prim%61ry", down},
		{"HEAD /patroni is a health check", primaryLeader, "/patroni", down},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := newTestServer(t, tc.snap())
			for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
				if tc.target == "/patroni" && method == http.MethodGet {
					continue // GET /patroni is the document endpoint
				}
				if rec := do(t, srv.Handler(), method, tc.target, ""); rec.Code != tc.want {
					t.Errorf("%s %s: got %d, want %d", method, tc.target, rec.Code, tc.want)
				}
			}
		})
	}
}

func TestHealthCompat4Quorum(t *testing.T) {
	cases := []struct {
		compat cluster.Compat
		snap   func() *cluster.Snapshot
		path   string
		want   int
	}{
		// 3.0.2 has no quorum paths: "/read-only-quorum" falls into the read-only rule.
		{cluster.Compat302, replicaStreaming, "/read-only-quorum", ok},
		{cluster.Compat4, replicaStreaming, "/read-only-quorum", down},
		{cluster.Compat4, primaryLeader, "/read-only-quorum", ok},
		{cluster.Compat4, replicaStreaming, "/quorum", down},
		{cluster.Compat302, replicaStreaming, "/quorum", down},
		{cluster.Compat4, replicaStreaming, "/read-only", ok},
	}
	for _, tc := range cases {
		snap := tc.snap()
		snap.Compat = tc.compat
		srv, _ := newTestServer(t, snap)
		if rec := do(t, srv.Handler(), http.MethodOptions, tc.path, ""); rec.Code != tc.want {
			t.Errorf("%s OPTIONS %s: got %d, want %d", tc.compat, tc.path, rec.Code, tc.want)
		}
	}
}

func TestStrictPrimary(t *testing.T) {
	strict := func(c *Config) { c.StrictPrimary = true }
	for _, tc := range []struct {
		snap func() *cluster.Snapshot
		want int
	}{
		{primaryLeader, ok},
		{leaderPGStopped, down},
		{func() *cluster.Snapshot { // lock held while still promoting (in recovery)
			s := replicaStreaming()
			s.LeaderUntil = testNow.Add(10 * time.Second)
			return s
		}, down},
	} {
		srv, _ := newTestServer(t, tc.snap(), strict)
		if rec := do(t, srv.Handler(), http.MethodOptions, "/primary", ""); rec.Code != tc.want {
			t.Errorf("strict /primary: got %d, want %d", rec.Code, tc.want)
		}
		if rec := do(t, srv.Handler(), http.MethodOptions, "/leader", ""); rec.Code != ok {
			t.Errorf("strict /leader: got %d, want 200", rec.Code)
		}
	}
}

func TestNoSnapshotYet(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	for _, path := range append(healthPaths, "/liveness", "/readiness", "/cluster", "/metrics", "/history", "/config") {
		for _, m := range []string{http.MethodGet, http.MethodOptions} {
			if rec := do(t, srv.Handler(), m, path, ""); rec.Code != down {
				t.Errorf("%s %s without snapshot: got %d, want 503", m, path, rec.Code)
			}
		}
	}
	rec := do(t, srv.Handler(), http.MethodGet, "/patroni", "")
	var doc map[string]any
	if rec.Code != down || json.Unmarshal(rec.Body.Bytes(), &doc) != nil || doc["role"] != "uninitialized" {
		t.Fatalf("GET /patroni without snapshot: %d %q", rec.Code, rec.Body.String())
	}
}

func TestSnapshotSwapIsSeen(t *testing.T) {
	srv, src := newTestServer(t, replicaStreaming())
	if rec := do(t, srv.Handler(), http.MethodOptions, "/primary", ""); rec.Code != down {
		t.Fatalf("replica /primary: %d", rec.Code)
	}
	src.p.Store(primaryLeader())
	if rec := do(t, srv.Handler(), http.MethodOptions, "/primary", ""); rec.Code != ok {
		t.Fatalf("after promotion /primary: %d", rec.Code)
	}
}

func TestLeaderExpiryFollowsClock(t *testing.T) {
	now := testNow
	srv, _ := newTestServer(t, primaryLeader(), func(c *Config) { c.Now = func() time.Time { return now } })
	if rec := do(t, srv.Handler(), http.MethodOptions, "/primary", ""); rec.Code != ok {
		t.Fatalf("fresh lock: %d", rec.Code)
	}
	now = testNow.Add(21 * time.Second) // past LeaderUntil, same snapshot
	if rec := do(t, srv.Handler(), http.MethodOptions, "/primary", ""); rec.Code != down {
		t.Fatalf("expired lock: %d", rec.Code)
	}
}
