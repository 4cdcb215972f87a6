package ha

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Scenarios on the simulated 3-node cluster (ttl 3, loop_wait 1,
// retry_timeout 1: FenceMargin 1s, DemoteStart = lease end - 1.5s). Every
// step checks that at most one postgres is writable.

func bootstrapped(t *testing.T, opts ...func(*world)) *world {
	t.Helper()
	w := newWorld(t, "pg1", "pg2", "pg3")
	for _, o := range opts {
		o(w)
	}
	w.start(w.names...)
	ok := w.run(30*time.Second, func() bool {
		l := w.leaderName()
		return l != "" && slices.Equal(w.writable(), []string{l}) && len(w.streamingReplicasOf(l)) == 2 &&
			w.membersPublishRunning()
	})
	if !ok {
		t.Fatalf("no healthy cluster after bootstrap: leader %q, writable %v", w.leaderName(), w.writable())
	}
	w.noViolations(t)
	return w
}

// membersPublishRunning: every member key says running, so the cluster as the
// nodes see it (a switchover's candidate check reads the keys) matches
// postgres' state, not one cycle behind it.
func (w *world) membersPublishRunning() bool {
	defer w.lockFn()()
	for _, n := range w.names {
		if m, ok := w.members[n]; !ok || m.State != "running" {
			return false
		}
	}
	return true
}

func (w *world) leaseEnd(name string) time.Time {
	defer w.lockFn()()
	if l, ok := w.leases[w.nodes[name].store.lease]; ok {
		return l.expires
	}
	return time.Time{}
}

func (w *world) fenceFiredAt(name string) time.Time {
	defer w.lockFn()()
	return w.nodes[name].fence.firedAt
}

func (w *world) promotionsSince(at time.Time) []promotion {
	defer w.lockFn()()
	var out []promotion
	for _, p := range w.promotions {
		if !p.at.Before(at) {
			out = append(out, p)
		}
	}
	return out
}

func (w *world) newLeaderWritable(old string) func() bool {
	return func() bool {
		l := w.leaderName()
		return l != "" && l != old && slices.Equal(w.writable(), []string{l})
	}
}

func TestSimBootstrapElectsExactlyOnePrimary(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	w.run(1100*time.Millisecond, func() bool { return false }) // slots follow member keys within loop_wait
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.initialize == nil || *w.initialize != w.nodes[l].pg.sysid {
		t.Errorf("initialize = %v, want the leader's system identifier %s", w.initialize, w.nodes[l].pg.sysid)
	}
	if w.configRaw == nil {
		t.Error("config key not written from bootstrap.dcs")
	}
	for _, name := range w.names {
		m, ok := w.members[name]
		if !ok {
			t.Errorf("member key of %s missing", name)
			continue
		}
		want := "replica"
		if name == l {
			want = "master" // 3.0.2 spelling
		}
		if m.Role != want || m.State != "running" || m.Version != "3.0.2" {
			t.Errorf("member %s = role %q state %q version %q, want role %q running 3.0.2", name, m.Role, m.State, m.Version, want)
		}
		if name != l && !w.nodes[l].pg.slots[cluster.SlotName(name)] {
			t.Errorf("leader has no replication slot for %s (slots %v)", name, w.nodes[l].pg.slots)
		}
	}
	if len(w.promotions) != 0 {
		t.Errorf("bootstrap promoted someone: %v", w.promotions)
	}
}

func TestSimFrozenPrimaryIsFencedAndReplaced(t *testing.T) {
	w := bootstrapped(t)
	old := w.leaderName()
	w.stop(old) // pgnoded frozen: no keepalives, no API; postgres still writable
	end := w.leaseEnd(old)
	if !w.run(15*time.Second, w.newLeaderWritable(old)) {
		t.Fatalf("no new primary after the frozen leader's lease ended: leader %q writable %v", w.leaderName(), w.writable())
	}
	fired := w.fenceFiredAt(old)
	if fired.IsZero() || !fired.Before(end) {
		t.Errorf("fence of the frozen leader fired at %v, want before its lease end %v", fired.Sub(t0), end.Sub(t0))
	}
	for _, p := range w.promotionsSince(t0) {
		if p.at.Before(end) {
			t.Errorf("%s promoted at %v, before the old lease ended at %v", p.name, p.at.Sub(t0), end.Sub(t0))
		}
	}
	w.noViolations(t)

	// The old node's pgnoded comes back: it rewinds and follows the new leader.
	leader := w.leaderName()
	w.start(old)
	if !w.run(15*time.Second, func() bool { return slices.Contains(w.streamingReplicasOf(leader), old) }) {
		t.Fatalf("old primary %s did not rejoin as a replica of %s", old, leader)
	}
	_, _, tlOld := w.pgState(old)
	_, _, tlNew := w.pgState(leader)
	if tlOld != tlNew {
		t.Errorf("rejoined node on timeline %d, leader on %d", tlOld, tlNew)
	}
	if w.rewinds == 0 {
		t.Error("the crashed old primary rejoined without pg_rewind")
	}
	w.noViolations(t)
}

func TestSimNodeLossPromotesRightAfterTheLeaseEnds(t *testing.T) {
	w := bootstrapped(t)
	old := w.leaderName()
	w.stop(old)
	w.mu.Lock()
	w.nodes[old].pg.stopLocked("immediate") // the whole machine is gone
	w.mu.Unlock()
	end := w.leaseEnd(old)
	if !w.run(15*time.Second, w.newLeaderWritable(old)) {
		t.Fatalf("no new primary after node loss")
	}
	ps := w.promotionsSince(t0)
	if len(ps) != 1 {
		t.Fatalf("promotions %v, want exactly one", ps)
	}
	// Event-driven: the watch event of the expired key starts the race at once.
	if lag := ps[0].at.Sub(end); lag < 0 || lag > 2*simStep {
		t.Errorf("promotion %v after the old lease ended, want within two simulation steps", lag)
	}
	w.noViolations(t)
}

func TestSimPartitionedLeaderDemotesBeforeItsLeaseExpires(t *testing.T) {
	w := bootstrapped(t)
	old := w.leaderName()
	w.mu.Lock()
	w.nodes[old].partitioned = true
	w.mu.Unlock()
	end := w.leaseEnd(old)
	if !w.run(10*time.Second, func() bool { _, wr, _ := w.pgState(old); return !wr }) {
		t.Fatal("partitioned leader never became read-only")
	}
	if now := w.clock.Now(); !now.Before(end) {
		t.Errorf("partitioned leader read-only at %v, not before its lease end %v", now.Sub(t0), end.Sub(t0))
	}
	if fired := w.fenceFiredAt(old); !fired.IsZero() {
		t.Errorf("the fence had to fire at %v: the loop did not demote in time", fired.Sub(t0))
	}
	if !w.run(10*time.Second, w.newLeaderWritable(old)) {
		t.Fatal("no new primary after the partitioned leader's lease ended")
	}
	w.noViolations(t)

	leader := w.leaderName()
	w.mu.Lock()
	w.nodes[old].partitioned = false
	w.mu.Unlock()
	if !w.run(10*time.Second, func() bool { return slices.Contains(w.streamingReplicasOf(leader), old) }) {
		t.Fatalf("healed node %s does not follow the new leader %s", old, leader)
	}
	w.noViolations(t)
}

func TestSimPostmasterCrashRestartsInPlace(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	_, _, tl := w.pgState(l)
	crash := w.clock.Now()
	w.mu.Lock()
	w.nodes[l].pg.stopLocked("immediate")
	w.mu.Unlock()
	w.busy.settle(t)
	if !w.run(5*time.Second, func() bool { _, wr, _ := w.pgState(l); return wr }) {
		t.Fatal("leader's postgres was not restarted")
	}
	if took := w.clock.Now().Sub(crash); took > time.Second {
		t.Errorf("restart in place took %v of simulated time, want under 1s", took)
	}
	if got := w.leaderName(); got != l {
		t.Errorf("leader changed from %s to %s after a postmaster crash", l, got)
	}
	if _, _, now := w.pgState(l); now != tl {
		t.Errorf("timeline changed %d -> %d: a failover happened", tl, now)
	}
	if ps := w.promotionsSince(crash); len(ps) != 0 {
		t.Errorf("promotions after the crash: %v", ps)
	}
	w.noViolations(t)
}

func TestSimCleanShutdownHandsOverWithoutWaitingForTTL(t *testing.T) {
	w := bootstrapped(t)
	old := w.leaderName()
	end := w.leaseEnd(old)
	sn := w.nodes[old]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sn.node.Shutdown(ctx, true); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-sn.done; err != nil {
		t.Errorf("Run after Shutdown returned %v, want nil", err)
	}
	w.detach(sn)
	w.busy.settle(t)
	if running, _, _ := w.pgState(old); running {
		t.Fatal("postgres still runs after Shutdown(stopPostgres=true)")
	}
	if !w.run(5*time.Second, w.newLeaderWritable(old)) {
		t.Fatal("no new primary after a clean shutdown of the leader")
	}
	if now := w.clock.Now(); !now.Before(end) {
		t.Errorf("new primary at %v, only after the old lease ended at %v", now.Sub(t0), end.Sub(t0))
	}
	w.noViolations(t)
}

func TestSimPgnodedRestartKeepsLeadership(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	since := w.clock.Now()
	w.stop(l)
	w.run(time.Second, func() bool { return false }) // pgnoded down for 1s < ttl - margin
	w.start(l)
	w.run(5*time.Second, func() bool { return false })
	if got := w.leaderName(); got != l {
		t.Errorf("leader %s, want %s to keep the key across a pgnoded restart", got, l)
	}
	if !slices.Equal(w.writable(), []string{l}) {
		t.Errorf("writable %v, want [%s]", w.writable(), l)
	}
	if fired := w.fenceFiredAt(l); !fired.IsZero() {
		t.Errorf("fence fired at %v although pgnoded came back in time", fired.Sub(t0))
	}
	if ps := w.promotionsSince(since); len(ps) != 0 {
		t.Errorf("promotions %v, want none", ps)
	}
	w.noViolations(t)
}

func TestSimShutdownKeepingPostgresKeepsLeaseAndFence(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	sn := w.nodes[l]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sn.node.Shutdown(ctx, false); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-sn.done; err != nil {
		t.Errorf("Run after Shutdown returned %v, want nil", err)
	}
	w.detach(sn)
	w.mu.Lock()
	_, leaseAlive := w.leases[sn.store.lease]
	armed := sn.fence.armed
	w.mu.Unlock()
	if !leaseAlive || w.leaderName() != l || !armed || !slices.Equal(w.writable(), []string{l}) {
		t.Fatalf("after Shutdown(stopPostgres=false): lease alive %v, leader %q, fence armed %v, writable %v; want %s to keep all",
			leaseAlive, w.leaderName(), armed, w.writable(), l)
	}
	since := w.clock.Now()
	w.run(500*time.Millisecond, func() bool { return false })
	w.start(l) // the restarted pgnoded takes the key back
	w.run(5*time.Second, func() bool { return false })
	if w.leaderName() != l || !w.fenceFiredAt(l).IsZero() || len(w.promotionsSince(since)) != 0 {
		t.Errorf("leader %q (want %s), fence fired at %v, promotions %v", w.leaderName(), l,
			w.fenceFiredAt(l), w.promotionsSince(since))
	}
	w.noViolations(t)
}

func TestSimFenceFollowsRenewalsWithoutRenewalNotifier(t *testing.T) {
	// loop_wait 10 > ttl 3: only the renewal poll keeps the fence up to date between cycles.
	w := bootstrapped(t, func(w *world) { w.pollOnly, w.loopWait = true, 10 })
	l := w.leaderName()
	w.mu.Lock()
	before := w.nodes[l].fence.arms
	w.mu.Unlock()
	w.run(10*time.Second, func() bool { return false }) // 20 renewals
	w.mu.Lock()
	f := w.nodes[l].fence
	armed, until, arms := f.armed, f.until, f.arms-before
	w.mu.Unlock()
	if w.leaderName() != l || !w.fenceFiredAt(l).IsZero() || !armed || !until.After(w.clock.Now()) {
		t.Errorf("leader %q (want %s), fence fired %v, armed %v until %v (now %v)", w.leaderName(), l,
			w.fenceFiredAt(l), armed, until.Sub(t0), w.clock.Now().Sub(t0))
	}
	if arms < 15 {
		t.Errorf("fence re-armed %d times in 10s of renewals every 500ms, want one per renewal", arms)
	}
	w.noViolations(t)
}

func TestSimLeaderThatCannotRestartHandsOverAtOnce(t *testing.T) {
	w := bootstrapped(t)
	old := w.leaderName()
	crash := w.clock.Now()
	w.mu.Lock()
	w.nodes[old].pg.startFails = true
	w.nodes[old].pg.stopLocked("immediate")
	w.mu.Unlock()
	w.busy.settle(t)
	if !w.run(10*time.Second, w.newLeaderWritable(old)) {
		t.Fatalf("no new primary after the leader's postgres failed to restart")
	}
	// The failed start releases the key: no waiting for the lease to run out.
	if took := w.clock.Now().Sub(crash); took >= 3*time.Second {
		t.Errorf("handover took %v of simulated time, want well under ttl (3s)", took)
	}
	if w.leaseEnd(old).IsZero() {
		t.Error("the old leader's lease is gone: it should still be alive, only the key released")
	}
	w.noViolations(t)
}
