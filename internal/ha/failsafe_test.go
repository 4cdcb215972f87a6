package ha

import (
	"context"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// dcsDown is pg1 as primary after the DCS went away: the lease ran out (t0+30s)
// and the view is stale.
func dcsDown(o *plan.Observation) {
	o.Now = t0.Add(40 * time.Second)
	o.DCSOK = false
	o.Config.FailsafeMode = true
}

// fakeAsker answers failsafe probes from a table; it counts the probes.
type fakeAsker struct {
	fakePeersNone
	accept map[string]bool
	calls  atomic.Int32
	last   FailsafeRequest
}

type fakePeersNone struct{}

func (fakePeersNone) Status(_ context.Context, ms []cluster.Member) []PeerStatus {
	return make([]PeerStatus, len(ms))
}

func (f *fakeAsker) AskFailsafe(_ context.Context, req FailsafeRequest, targets map[string]string,
	_ time.Duration) map[string]bool {
	f.calls.Add(1)
	f.last = req
	out := map[string]bool{}
	for name := range targets {
		out[name] = f.accept[name]
	}
	return out
}

func failsafeNode(t *testing.T, peers Peers) (*loop, *fakeClockNow) {
	t.Helper()
	clk := &fakeClockNow{t: t0}
	n := newLoop(Config{Name: "pg1", APIURL: "http://pg1:8008/patroni", ConnURL: "postgres://pg1:5432/postgres",
		Now: clk.now}, Deps{Peers: peers, Store: &leaseOnly{until: t0.Add(30 * time.Second)}})
	n.st.conf.dyn = cluster.DefaultDynamicConfig()
	n.st.conf.dyn.FailsafeMode = true
	return n, clk
}

type fakeClockNow struct{ t time.Time }

func (c *fakeClockNow) now() time.Time { return c.t }

// leaseOnly is a Store that only answers LeaseValidUntil (all failsafeStep needs).
type leaseOnly struct {
	Store
	until time.Time
}

func (l *leaseOnly) LeaseValidUntil() time.Time { return l.until }

func TestFailsafeStep(t *testing.T) {
	asker := &fakeAsker{accept: map[string]bool{"pg2": true, "pg3": true}}
	n, clk := failsafeNode(t, asker)
	obs := func(mods ...fx) plan.Observation {
		o := newObs(append([]fx{iLead, func(o *plan.Observation) {
			o.Now = clk.t
			o.Config = n.st.conf.dyn
			o.View.Failsafe = map[string]string{"pg1": "u1", "pg2": "u2", "pg3": "u3"}
		}}, mods...)...)
		return o
	}
	// DCS fine: nothing asked.
	o := obs()
	n.failsafeStep(context.Background(), &o)
	if asker.calls.Load() != 0 || o.FailsafeConfirmed || n.st.lease.fs.engaged {
		t.Fatalf("failsafe engaged with a healthy DCS")
	}
	// A failed renewal: the first round confirms; until = round start + ttl.
	n.st.lease.dcsFailing = true
	clk.t = t0.Add(5 * time.Second)
	o = obs()
	n.failsafeStep(context.Background(), &o)
	if asker.calls.Load() != 1 || !o.FailsafeConfirmed || !o.FailsafeUntil.Equal(clk.t.Add(30*time.Second)) {
		t.Fatalf("round 1: calls %d confirmed %v until %v", asker.calls.Load(), o.FailsafeConfirmed, o.FailsafeUntil)
	}
	if asker.last.Name != "pg1" || asker.last.ConnURL == "" || asker.last.APIURL == "" {
		t.Errorf("probe body %+v", asker.last)
	}
	if !n.failsafeActive() || !n.holdUntil().Equal(clk.t.Add(30*time.Second)) {
		t.Errorf("active %v hold %v", n.failsafeActive(), n.holdUntil())
	}
	// Within loop_wait: no new round, the confirmation carries over.
	clk.t = clk.t.Add(time.Second)
	o = obs()
	n.failsafeStep(context.Background(), &o)
	if asker.calls.Load() != 1 || !o.FailsafeConfirmed {
		t.Fatalf("asked again within loop_wait")
	}
	// Next round lacks pg3: not confirmed any more.
	asker.accept["pg3"] = false
	clk.t = clk.t.Add(10 * time.Second)
	o = obs()
	n.failsafeStep(context.Background(), &o)
	if asker.calls.Load() != 2 || o.FailsafeConfirmed || n.failsafeActive() {
		t.Fatalf("round without pg3 still confirmed")
	}
	// A renewal overdue (ttl/4 + 1s after the last one) engages failsafe even before the call fails.
	n.st.lease.dcsFailing = false
	n.st.lease.fs = failsafeState{}
	asker.accept["pg3"] = true
	clk.t = t0.Add(8*time.Second + 600*time.Millisecond)
	o = obs()
	n.failsafeStep(context.Background(), &o)
	if !n.st.lease.fs.engaged || !o.FailsafeConfirmed {
		t.Fatalf("overdue renewal did not engage failsafe")
	}
	// DCS back (renewed): exit.
	n.deps.Store.(*leaseOnly).until = clk.t.Add(30 * time.Second)
	o = obs()
	n.failsafeStep(context.Background(), &o)
	if n.st.lease.fs.engaged {
		t.Fatalf("still engaged with the DCS back")
	}
	// failsafe_mode off: never engaged.
	n.st.lease.dcsFailing = true
	o = obs(cfg(func(c *cluster.DynamicConfig) { c.FailsafeMode = false }))
	n.failsafeStep(context.Background(), &o)
	if n.st.lease.fs.engaged {
		t.Fatalf("engaged with failsafe_mode off")
	}
}

func TestFailsafeRoundKeys(t *testing.T) {
	n, _ := failsafeNode(t, &fakeAsker{accept: map[string]bool{}})
	if ok, _ := n.failsafeRound(context.Background(), nil); ok {
		t.Errorf("an absent failsafe key confirmed")
	}
	if ok, _ := n.failsafeRound(context.Background(), map[string]string{"pg1": "u"}); !ok {
		t.Errorf("a single-node failsafe key did not confirm")
	}
	if ok, missing := n.failsafeRound(context.Background(), map[string]string{"pg1": "u", "pg2": "u"}); ok ||
		len(missing) != 1 || missing[0] != "pg2" {
		t.Errorf("refused round: ok %v missing %v", ok, missing)
	}
	n2, _ := failsafeNode(t, fakePeersNone{})
	if ok, _ := n2.failsafeRound(context.Background(), map[string]string{"pg1": "u", "pg2": "u"}); ok {
		t.Errorf("peers without AskFailsafe confirmed")
	}
}

func TestFailsafeReplicaSide(t *testing.T) {
	n, clk := failsafeNode(t, fakePeersNone{})
	s := *faceOf(n).Snapshot()
	s.TTL = 30 * time.Second
	s.Role, s.PG = cluster.RoleReplica, cluster.PGObservation{Running: true, Ready: true, InRecovery: true}
	n.snap.Store(&s)
	if kind, text := opOutcome(faceOf(n).Failsafe(context.Background(), FailsafeRequest{Name: "pg2"})); kind != "done" || text != "Accepted" {
		t.Fatalf("replica answered %s %q", kind, text)
	}
	if got := n.failsafeLeaderNow(clk.t.Add(29 * time.Second)); got != "pg2" {
		t.Errorf("failsafe leader = %q", got)
	}
	if got := n.failsafeLeaderNow(clk.t.Add(30 * time.Second)); got != "" {
		t.Errorf("failsafe leader after ttl = %q", got)
	}
	p := s
	p.Role, p.PG.InRecovery = cluster.RolePrimary, false
	n.snap.Store(&p)
	if kind, text := opOutcome(faceOf(n).Failsafe(context.Background(), FailsafeRequest{Name: "pg2"})); kind != "conflict" ||
		text != "Running as a leader" {
		t.Fatalf("primary answered %s %q", kind, text)
	}
}

// goneStore reports one lease gone (the dcs Store's optional LeaseGone).
type goneStore struct {
	leaseOnly
	gone int64
}

func (g *goneStore) LeaseGone(id int64) bool { return id == g.gone }

func TestHoldUntilIsZeroOnceTheKeysLeaseIsGone(t *testing.T) {
	n, _ := failsafeNode(t, fakePeersNone{})
	st := &goneStore{leaseOnly: leaseOnly{until: t0.Add(30 * time.Second)}}
	n.deps.Store = st
	n.st.lease.view.Leader = &cluster.LeaderKey{Name: "pg1", LeaseID: 7}
	if !n.holdUntil().Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("hold with the key's lease alive = %v", n.holdUntil())
	}
	// A fresh lease (valid until t0+30s) but the key was on lease 7, now gone.
	st.gone = 7
	if h := n.holdUntil(); !h.IsZero() {
		t.Errorf("hold after the key's lease was reported gone = %v, want zero", h)
	}
	if n.recheckKey(); !n.st.lease.lockLost || n.holdsKey() {
		t.Errorf("recheckKey kept the key whose lease is gone (lockLost %v)", n.st.lease.lockLost)
	}
	n.st.lease.lockLost = false
	// A fresh failsafe confirmation still holds (etcd back, the key about to
	// be taken again); the loop's clock decides whether it is fresh.
	n.st.lease.fs = failsafeState{engaged: true, confirmed: true, confirmedAt: t0}
	if h := n.holdUntil(); !h.Equal(t0.Add(n.st.conf.dyn.TTLDuration())) {
		t.Errorf("hold with a failsafe confirmation at t0 = %v, want t0+ttl", h)
	}
}

// TestFailsafeMembersKeepNamedAfterTakingTheKey: a leader that took the key
// again after a DCS outage, before its replicas' member keys came back,
// keeps the replicas the failsafe key names (else, dying then, it would
// leave them unable to take over); later it writes only the members it sees.
func TestFailsafeMembersKeepNamedAfterTakingTheKey(t *testing.T) {
	v := &cluster.View{
		Members:  map[string]cluster.Member{"pg4": {Name: "pg4", APIURL: "u4"}, "pg5": {Name: "pg5"}},
		Failsafe: map[string]string{"pg1": "old1", "pg2": "u2", "pg3": "u3"},
	}
	got := failsafeMembers("pg1", "u1", v, true)
	want := map[string]string{"pg1": "u1", "pg2": "u2", "pg3": "u3", "pg4": "u4"}
	if !maps.Equal(got, want) {
		t.Errorf("just took the key: %v, want %v", got, want)
	}
	got = failsafeMembers("pg1", "u1", v, false)
	want = map[string]string{"pg1": "u1", "pg4": "u4"}
	if !maps.Equal(got, want) {
		t.Errorf("held the key for a ttl: %v, want %v", got, want)
	}
}
