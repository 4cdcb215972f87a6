package ha

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// stubStore is a Store whose view and config/failover writes the test controls;
// the other methods are not used by the operator requests tested here.
type stubStore struct {
	Store
	view       cluster.View
	setOK      []bool // answers of successive SetConfig/SetFailover calls (last one repeats)
	err        error
	wrote      [][]byte
	revs       []int64
	failovers  []cluster.Failover
	afterWrite func(s *stubStore)
}

func (s *stubStore) View() cluster.View { return s.view }

func (s *stubStore) answer() (bool, error) {
	if s.err != nil {
		return false, s.err
	}
	ok := s.setOK[0]
	if len(s.setOK) > 1 {
		s.setOK = s.setOK[1:]
	}
	return ok, nil
}

func (s *stubStore) SetConfig(_ context.Context, raw []byte, rev int64) (bool, error) {
	s.wrote, s.revs = append(s.wrote, raw), append(s.revs, rev)
	ok, err := s.answer()
	if s.afterWrite != nil {
		s.afterWrite(s)
	}
	return ok, err
}

func (s *stubStore) SetFailover(_ context.Context, f cluster.Failover, rev int64) (bool, error) {
	s.failovers, s.revs = append(s.failovers, f), append(s.revs, rev)
	return s.answer()
}

// stubPeers answers /patroni with fixed statuses by name (absent: unreachable).
type stubPeers map[string]PeerStatus

func (p stubPeers) Status(_ context.Context, members []cluster.Member) []PeerStatus {
	out := make([]PeerStatus, len(members))
	for i, m := range members {
		out[i] = PeerStatus{Name: m.Name}
		if st, ok := p[m.Name]; ok {
			out[i] = st
		}
	}
	return out
}

func stubNode(st Store, peers Peers) *Node {
	return New(Config{Name: "pg1", Scope: "s"}, Deps{Store: st, Peers: peers})
}

func configView(raw string, rev int64) cluster.View {
	v := cluster.View{ConfigRaw: json.RawMessage(raw), ConfigRev: rev}
	if c, err := cluster.ParseDynamicConfig([]byte(raw)); err == nil {
		v.Config = &c
	}
	return v
}

func TestPatchConfig(t *testing.T) {
	base := `{"ttl":30,"loop_wait":10,"postgresql":{"parameters":{"work_mem":"4MB","max_connections":100}},"pause":true}`
	cases := []struct {
		name     string
		view     cluster.View
		patch    map[string]any
		setOK    []bool
		err      error
		kind     string
		writes   int
		wantBody string // substring of the body
		absent   string // substring that must not be in the body
	}{
		{"a change is written with a compare-and-swap on the revision", configView(base, 7),
			map[string]any{"ttl": 20.0}, []bool{true}, nil, "done", 1, `"ttl":20`, ""},
		{"null deletes the key", configView(base, 7), map[string]any{"pause": nil}, []bool{true}, nil,
			"done", 1, `"ttl":30`, "pause"},
		{"nested maps merge", configView(base, 7),
			map[string]any{"postgresql": map[string]any{"parameters": map[string]any{"work_mem": "8MB"}}}, []bool{true}, nil,
			"done", 1, `"max_connections":100`, `"4MB"`},
		{"same value in another type is no change (Python str compare)", configView(base, 7),
			map[string]any{"ttl": "30"}, []bool{true}, nil, "done", 0, `"ttl":30`, ""},
		{"deleting an absent key is no change", configView(base, 7), map[string]any{"nosuch": nil}, []bool{true}, nil,
			"done", 0, `"loop_wait":10`, ""},
		{"a conflicting write is 409", configView(base, 7), map[string]any{"ttl": 20.0}, []bool{false}, nil,
			"conflict", 1, "Conflict", ""},
		{"a DCS error is 503", configView(base, 7), map[string]any{"ttl": 20.0}, []bool{true}, errors.New("etcd down"),
			"store failed", 1, "failed to write", ""},
		{"no config key is 503", cluster.View{}, map[string]any{"ttl": 20.0}, []bool{true}, nil,
			"unavailable", 0, "missing", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &stubStore{view: tc.view, setOK: tc.setOK, err: tc.err}
			kind, body := cfgOutcome(stubNode(st, nil).PatchConfig(context.Background(), tc.patch))
			if kind != tc.kind || !strings.Contains(string(body), tc.wantBody) ||
				tc.absent != "" && strings.Contains(string(body), tc.absent) {
				t.Fatalf("PatchConfig = %s %s", kind, body)
			}
			if len(st.wrote) != tc.writes {
				t.Fatalf("%d writes, want %d", len(st.wrote), tc.writes)
			}
			if tc.writes > 0 && st.revs[0] != tc.view.ConfigRev {
				t.Errorf("written with revision %d, want %d", st.revs[0], tc.view.ConfigRev)
			}
		})
	}
}

func TestPutConfig(t *testing.T) {
	base := `{"ttl":30,"loop_wait":10}`
	doc := map[string]any{"ttl": 30.0, "loop_wait": 10.0}
	st := &stubStore{view: configView(base, 5), setOK: []bool{true}}
	if kind, body := cfgOutcome(stubNode(st, nil).PutConfig(context.Background(), doc)); kind != "done" || len(st.wrote) != 0 {
		t.Fatalf("PUT of the same document: %s %s, %d writes", kind, body, len(st.wrote))
	}
	doc["ttl"] = 20.0
	st = &stubStore{view: configView(base, 5), setOK: []bool{false, true}}
	st.afterWrite = func(s *stubStore) { s.view.ConfigRev++ } // someone else wrote in between
	kind, body := cfgOutcome(stubNode(st, nil).PutConfig(context.Background(), doc))
	if kind != "done" || string(body) != `{"loop_wait":10,"ttl":20}` || len(st.wrote) != 2 || st.revs[1] != 6 {
		t.Fatalf("PUT: %s %s, writes at revisions %v", kind, body, st.revs)
	}
	st = &stubStore{view: configView(base, 5), setOK: []bool{false}}
	if kind, _ := cfgOutcome(stubNode(st, nil).PutConfig(context.Background(), doc)); kind != "store failed" {
		t.Fatalf("PUT that keeps conflicting: %s", kind)
	}
}

func TestFailoverPossible(t *testing.T) {
	members := defaultMembers()
	v := cluster.View{Leader: &cluster.LeaderKey{Name: "pg2"}, Members: members}
	good := stubPeers{"pg1": peer("pg1", 1000), "pg3": peer("pg3", 1000)}
	noGood := stubPeers{"pg1": {Name: "pg1", Reachable: true, NoFailover: true}}
	cfg := cluster.DefaultDynamicConfig()
	syncCfg := cfg
	syncCfg.SynchronousMode = true
	syncView := v
	syncView.Sync = &cluster.SyncState{Leader: "pg2", SyncStandby: str("pg3")}
	onlyLeader := cluster.View{Leader: v.Leader, Members: map[string]cluster.Member{"pg2": members["pg2"]}}
	cases := []struct {
		name   string
		view   cluster.View
		cfg    cluster.DynamicConfig
		peers  stubPeers
		req    SwitchoverRequest
		action string
		want   string
	}{
		{"feasible", v, cfg, good, SwitchoverRequest{Leader: "pg2", Candidate: "pg1"}, "switchover", ""},
		{"feasible to any", v, cfg, good, SwitchoverRequest{Leader: "pg2"}, "switchover", ""},
		{"leader mismatch", v, cfg, good, SwitchoverRequest{Leader: "pg3", Candidate: "pg1"}, "switchover",
			"leader name does not match"},
		{"no leader at all", cluster.View{Members: members}, cfg, good, SwitchoverRequest{Leader: "pg2"}, "switchover",
			"leader name does not match"},
		{"unknown candidate", v, cfg, good, SwitchoverRequest{Leader: "pg2", Candidate: "pg9"}, "switchover",
			"candidate does not exists"},
		{"a nofailover candidate", v, cfg, noGood, SwitchoverRequest{Leader: "pg2", Candidate: "pg1"}, "switchover",
			"switchover is not possible: no good candidates have been found"},
		{"an unreachable candidate", v, cfg, stubPeers{}, SwitchoverRequest{Candidate: "pg1"}, "failover",
			"failover is not possible: no good candidates have been found"},
		{"only the leader", onlyLeader, cfg, good, SwitchoverRequest{Leader: "pg2"}, "switchover",
			"switchover is not possible: cluster does not have members except leader"},
		{"sync mode: candidate not a sync standby", syncView, syncCfg, good, SwitchoverRequest{Leader: "pg2", Candidate: "pg1"},
			"switchover", "candidate name does not match with sync_standby"},
		{"sync mode: a failover may go to any candidate", syncView, syncCfg, good, SwitchoverRequest{Candidate: "pg1"},
			"failover", ""},
		{"sync mode: no sync standby", v, syncCfg, good, SwitchoverRequest{Leader: "pg2"}, "switchover",
			"switchover is not possible: can not find sync_standby"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := stubNode(&stubStore{view: tc.view}, tc.peers)
			if got := n.failoverPossible(context.Background(), tc.view, tc.cfg, tc.req, tc.action); got != tc.want {
				t.Fatalf("failoverPossible = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestManualFailoverWritesTheKey(t *testing.T) {
	v := cluster.View{Leader: &cluster.LeaderKey{Name: "pg2"}, Members: defaultMembers()}
	st := &stubStore{view: v, setOK: []bool{true}}
	n := stubNode(st, stubPeers{"pg1": peer("pg1", 1000)})
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))
	kind, text := opOutcome(n.Switchover(context.Background(), SwitchoverRequest{Leader: "pg2", Candidate: "pg1", ScheduledAt: at}))
	if kind != "scheduled" || text != "Switchover scheduled" {
		t.Fatalf("scheduled switchover: %s %q", kind, text)
	}
	want := cluster.Failover{Leader: "pg2", Member: "pg1", ScheduledAt: "2030-01-02T03:04:05+01:00"}
	if len(st.failovers) != 1 || st.failovers[0] != want {
		t.Fatalf("failover key written %+v, want %+v", st.failovers, want)
	}
	st = &stubStore{view: v, err: errors.New("etcd down")}
	if kind, text := opOutcome(stubNode(st, stubPeers{"pg1": peer("pg1", 1)}).Failover(context.Background(),
		SwitchoverRequest{Candidate: "pg1"})); kind != "store failed" || text != "failed to write failover key into DCS" {
		t.Fatalf("failover with the DCS down: %s %q", kind, text)
	}
	// The outcome: the failover key cleared without a new leader.
	st = &stubStore{view: v, setOK: []bool{true}}
	st.view.Failover = &cluster.Failover{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if kind, text := opOutcome(stubNode(st, stubPeers{"pg1": peer("pg1", 1)}).Switchover(ctx,
		SwitchoverRequest{Leader: "pg2", Candidate: "pg1"})); kind != "failed" || text != "Switchover failed" {
		t.Fatalf("a switchover the leader refused: %s %q", kind, text)
	}
}

func TestDeleteSwitchover(t *testing.T) {
	sched := cluster.View{Failover: &cluster.Failover{Leader: "pg2", Member: "pg1", ScheduledAt: "2030-01-01T00:00:00+00:00",
		ModRevision: 42}}
	st := &stubStore{view: sched, setOK: []bool{true}}
	if kind, text := opOutcome(stubNode(st, nil).DeleteSwitchover(context.Background())); kind != "done" ||
		text != "scheduled switchover deleted" || !st.failovers[0].Empty() || st.revs[0] != 42 {
		t.Fatalf("delete: %s %q %+v %v", kind, text, st.failovers, st.revs)
	}
	st = &stubStore{view: sched, setOK: []bool{false}}
	if kind, _ := opOutcome(stubNode(st, nil).DeleteSwitchover(context.Background())); kind != "conflict" {
		t.Fatalf("delete with a conflict: %s", kind)
	}
	immediate := cluster.View{Failover: &cluster.Failover{Leader: "pg2", Member: "pg1"}}
	if kind, text := opOutcome(stubNode(&stubStore{view: immediate}, nil).DeleteSwitchover(context.Background())); kind != "not found" ||
		text != "no switchover is scheduled" {
		t.Fatalf("delete of an unscheduled switchover: %s %q", kind, text)
	}
}

// A request the loop never takes: OpUnavailable when the caller gives up,
// OpShuttingDown once the loop has ended.
func TestSubmitWithoutTheLoop(t *testing.T) {
	n := New(Config{Name: "pg1", Scope: "s"}, Deps{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if kind, text := opOutcome(n.Restart(ctx, RestartRequest{})); kind != "unavailable" ||
		text != "the HA loop did not take the request: context canceled" {
		t.Errorf("restart with the caller gone: %s %q", kind, text)
	}
	close(n.runDone)
	if kind, text := opOutcome(n.Reinitialize(context.Background(), ReinitializeRequest{})); kind != "shutting down" ||
		text != "pgnoded is shutting down" {
		t.Errorf("reinitialize after the loop ended: %s %q", kind, text)
	}
}
