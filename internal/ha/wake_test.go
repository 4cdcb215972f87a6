package ha

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// A member's role or state changing changes the digest (the waiting node runs a
// cycle); its xlog_location changing does not (a busy cluster runs no extra cycles).
func TestViewDigestFollowsMemberWakeFields(t *testing.T) {
	x1, x2 := int64(1), int64(2)
	v := func(state string, xlog *int64) cluster.View {
		return cluster.View{Leader: &cluster.LeaderKey{Name: "pg1"}, ReadAt: t0, Members: map[string]cluster.Member{
			"pg1": {Name: "pg1", Role: "master", State: state, ConnURL: "postgres://pg1", XLogLocation: xlog},
		}}
	}
	base := plan.ViewDigest(v("starting", &x1), "pg2", t0, 30e9)
	if plan.ViewDigest(v("starting", &x2), "pg2", t0, 30e9) != base {
		t.Error("an xlog_location change changed the digest")
	}
	if plan.ViewDigest(v("running", &x1), "pg2", t0, 30e9) == base {
		t.Error("the leader's state turning running did not change the digest")
	}
}

// nextWake: a short poll for the waits no event announces, and the end of
// released_recently as a timer; neither waits for loop_wait.
func TestNextWakeShortPollsAndReleaseTimer(t *testing.T) {
	n := newLoop(Config{Name: "pg1", Scope: "s", Now: func() time.Time { return t0 }}, Deps{Store: &leaseOnly{}})
	n.st.conf.dyn = cluster.DynamicConfig{TTL: 30, LoopWait: 10, RetryTimeout: 10}
	n.st.sched.lastLoop = t0
	if got := n.nextWake(); !got.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("idle nextWake = %v, want loop_wait", got.Sub(t0))
	}
	for reason, d := range plan.ShortPolls {
		n.st.sched.pollAfter = plan.ShortPolls[reason]
		if got := n.nextWake(); !got.Equal(t0.Add(d)) {
			t.Errorf("%s: nextWake = %v, want %v", reason, got.Sub(t0), d)
		}
	}
	n.st.sched.pollAfter = 0
	n.st.lease.releasedAt = t0.Add(-25 * time.Second)
	if got := n.nextWake(); !got.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("released 25s ago at ttl 30: nextWake = %v, want 5s", got.Sub(t0))
	}
}

// A leader waiting for a longer hold before restarting postgres as primary
// runs a cycle on the next renewal.
func TestRenewalWakesLeaseDeadlineWait(t *testing.T) {
	w := newWorld(t, "pg1")
	sn := w.nodes["pg1"]
	sn.store = newFakeStore(w, "pg1")
	n := newLoop(Config{Name: "pg1", Scope: "s", Now: w.clock.Now}, Deps{Postgres: sn.pg, Store: sn.store, Fence: sn.fence})
	if n.onRenewal() {
		t.Error("a renewal with nothing waiting on it ran a cycle")
	}
	n.st.sched.cycleOnRenewal = true
	if !n.onRenewal() {
		t.Error("a renewal did not wake the lease_deadline wait")
	}
}

// A manual failover's candidate is judged on the position our
// pg_stat_replication shows now, not only on its last member-key write.
func TestWithStreamedPosition(t *testing.T) {
	old := int64(100)
	o := plan.Observation{PG: cluster.PGObservation{Replication: []cluster.ReplicationRow{
		{ApplicationName: "pg2", State: "streaming", ReplayLSN: 5000},
		{ApplicationName: "pg3", State: "catchup", ReplayLSN: 9000},
	}}}
	if m := o.WithStreamedPosition(cluster.Member{Name: "pg2", XLogLocation: &old}); m.XLogLocation == nil || *m.XLogLocation != 5000 {
		t.Errorf("pg2 position = %v, want 5000", m.XLogLocation)
	}
	if old != 100 {
		t.Error("the member key's value was modified")
	}
	if m := o.WithStreamedPosition(cluster.Member{Name: "pg3", XLogLocation: &old}); *m.XLogLocation != 100 {
		t.Errorf("a member not streaming took its replication row's position: %d", *m.XLogLocation)
	}
}
