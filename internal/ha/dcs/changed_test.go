package dcs

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// waitChanged waits for Changed to fire with cond holding on the view.
func waitChanged(t *testing.T, s *Store, what string, cond func(cluster.View) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-s.Changed():
			if cond(s.View()) {
				return
			}
		case <-deadline:
			t.Fatalf("Changed did not fire for %s", what)
		}
	}
}

// assertQuiet waits until the watch has confirmed everything up to now, then
// checks Changed did not fire.
func assertQuiet(t *testing.T, s *Store, what string) {
	t.Helper()
	from := time.Now()
	waitFor(t, 10*time.Second, "watch caught up", func() bool { return s.View().ReadAt.After(from) })
	select {
	case <-s.Changed():
		t.Errorf("Changed fired for %s", what)
	default:
	}
}

// TestChangedWakeups: which changes wake the HA loop. Members joining or
// leaving or changing state/role, leader, config, failover, status do; a
// member's xlog_location changing and this node's own writes do not.
func TestChangedWakeups(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	a := startStore(t, e, base, "pg1", 10*time.Second)
	b := startStore(t, e, base, "pg2", 10*time.Second)
	ctx := ctxT(t)

	drain(a.Changed())
	if err := b.TouchMember(ctx, cluster.Member{State: "starting"}); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, a.Store, "member join", func(v cluster.View) bool { _, ok := v.Members["pg2"]; return ok })

	drain(a.Changed())
	if err := b.TouchMember(ctx, cluster.Member{State: "running"}); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, a.Store, "member state change", func(v cluster.View) bool { return v.Members["pg2"].State == "running" })

	drain(a.Changed())
	xlog := int64(12345)
	if err := b.TouchMember(ctx, cluster.Member{State: "running", XLogLocation: &xlog}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "member update seen", func() bool {
		x := a.View().Members["pg2"].XLogLocation
		return x != nil && *x == xlog
	})
	assertQuiet(t, a.Store, "a member's xlog_location changing")

	if ok, err := b.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader = %v, %v", ok, err)
	}
	waitChanged(t, a.Store, "leader taken", func(v cluster.View) bool { return v.Leader != nil && v.Leader.Name == "pg2" })

	if ok, err := b.SetConfig(ctx, []byte(`{"ttl":30}`), 0); err != nil || !ok {
		t.Fatalf("SetConfig = %v, %v", ok, err)
	}
	waitChanged(t, a.Store, "config", func(v cluster.View) bool { return v.Config != nil })

	if err := b.SetStatus(ctx, cluster.StatusKey{Optime: 99}); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, a.Store, "status", func(v cluster.View) bool { return v.Status != nil && v.Status.Optime == 99 })

	if ok, err := b.SetFailover(ctx, cluster.Failover{Leader: "pg2", Member: "pg1"}, 0); err != nil || !ok {
		t.Fatalf("SetFailover = %v, %v", ok, err)
	}
	waitChanged(t, a.Store, "failover", func(v cluster.View) bool { return v.Failover != nil && v.Failover.Member == "pg1" })

	// a's own writes are in its view at once and do not wake it, not even when the watch delivers them.
	drain(a.Changed())
	if ok, err := a.SetFailover(ctx, cluster.Failover{}, a.View().Failover.ModRevision); err != nil || !ok {
		t.Fatalf("clear failover = %v, %v", ok, err)
	}
	if f := a.View().Failover; f == nil || !f.Empty() {
		t.Errorf("own write not in the view at once: %+v", f)
	}
	assertQuiet(t, a.Store, "this node's own write")

	// A member leaving (clean shutdown revokes its lease) wakes the others.
	drain(a.Changed())
	if err := b.Close(ctx, true); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, a.Store, "member leave and leader release", func(v cluster.View) bool {
		_, ok := v.Members["pg2"]
		return !ok && v.Leader == nil
	})
}
