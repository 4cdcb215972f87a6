package dcs

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// TestLeaseGoneDropsItsKeysAtOnce: when etcd reports our lease gone, the keys
// that were on it (leader, member) vanish from the view at once, not when the
// watch catches up: a pgnoded waking from a freeze must not act on them.
func TestLeaseGoneDropsItsKeysAtOnce(t *testing.T) {
	e := testenv.StartEtcd(t)
	s := startStore(t, e, basePath(t), "pg1", 30*time.Second)
	ctx := ctxT(t)
	if ok, err := s.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader = %v, %v", ok, err)
	}
	v := s.View()
	if v.Leader == nil || v.Leader.Name != "pg1" || v.Leader.LeaseID == 0 {
		t.Fatalf("leader after acquire = %+v", v.Leader)
	}
	id := v.Leader.LeaseID
	select {
	case <-s.Changed():
	default:
	}
	// Only the Store's bookkeeping: etcd still has the lease and the key, so
	// whatever the view loses now it lost through leaseGone, not the watch.
	if s.LeaseGone(id) {
		t.Fatalf("LeaseGone(%x) before etcd said so", id)
	}
	s.leaseGone(id)
	if !s.LeaseGone(id) || s.LeaseGone(id+1) || s.LeaseGone(0) {
		t.Errorf("LeaseGone after leaseGone(%x): %v, of another lease %v", id, s.LeaseGone(id), s.LeaseGone(id+1))
	}
	if l := s.View().Leader; l != nil {
		t.Errorf("leader key still in the view after its lease was reported gone: %+v", l)
	}
	select {
	case <-s.Changed():
	default:
		t.Errorf("no Changed wake-up after the leader key was dropped")
	}
}

func TestCacheDropLease(t *testing.T) {
	c := newCache()
	c.put("leader", entry{value: []byte("pg1"), modRev: 5, lease: 7})
	c.put("members/pg1", entry{value: []byte("{}"), modRev: 6, lease: 7})
	c.put("members/pg2", entry{value: []byte("{}"), modRev: 7, lease: 8})
	c.put("config", entry{value: []byte("{}"), modRev: 3})
	if !c.dropLease(7) {
		t.Errorf("dropping the leader's lease was not significant")
	}
	if _, ok := c.entries["leader"]; ok {
		t.Error("leader kept")
	}
	if _, ok := c.entries["members/pg1"]; ok {
		t.Error("members/pg1 kept")
	}
	if _, ok := c.entries["members/pg2"]; !ok {
		t.Error("members/pg2 (another lease) dropped")
	}
	if _, ok := c.entries["config"]; !ok {
		t.Error("config (no lease) dropped")
	}
	if c.dropLease(0) {
		t.Error("lease 0 dropped something")
	}
	// A newer version re-created on a new lease (seen later by the watch) is applied.
	if !c.put("leader", entry{value: []byte("pg2"), modRev: 9, lease: 9}) {
		t.Error("new leader after the drop not applied")
	}
}

func TestSetRetryTimeoutBoundsLaterRequests(t *testing.T) {
	e := testenv.StartEtcd(t)
	s := startStore(t, e, basePath(t), "pg1", 30*time.Second)
	deadline := func() time.Duration {
		ctx, cancel := s.opCtx(ctxT(t))
		defer cancel()
		d, _ := ctx.Deadline()
		return time.Until(d)
	}
	if d := deadline(); d > time.Second || d < 900*time.Millisecond {
		t.Fatalf("initial request budget %v, want the configured 1s", d)
	}
	s.SetRetryTimeout(4 * time.Second)
	if d := deadline(); d > 4*time.Second || d < 3900*time.Millisecond {
		t.Errorf("request budget after SetRetryTimeout(4s) = %v", d)
	}
	s.SetRetryTimeout(0) // ignored
	if d := deadline(); d < 3900*time.Millisecond {
		t.Errorf("SetRetryTimeout(0) changed the budget to %v", d)
	}
}
