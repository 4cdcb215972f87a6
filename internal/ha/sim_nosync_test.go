package ha

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// The nosync dance (syncrelease.go) on the simulated cluster: the simulated
// primary keeps the sync key (sync.go) and drops a standby that asks to be
// released; the "gives up" scenarios make its sync-key writes fail instead.

// syncLoopWait is the loop_wait of these scenarios: long enough that a
// release ending on the sync key's change is told apart from one ending on
// the 2×loop_wait limit or on the idle tick.
const syncLoopWait = 5

func withSyncTiming(w *world) { w.loopWait, w.ttl, w.retry = syncLoopWait, 3*syncLoopWait, 2 }

// memberNoSync reports whether name's member key carries nosync: true.
func (w *world) memberNoSync(name string) bool {
	defer w.lockFn()()
	return w.members[name].Tags[cluster.TagNoSync] == true
}

// syncLists reports whether the sync key lists name as a standby.
func (w *world) syncLists(name string) bool {
	_, s := w.syncKeyNow()
	return slices.Contains(strings.Split(s, ","), name)
}

// waitReleased waits until the primary dropped name from the sync key (it
// reads the nosync tag on its next cycle, at most a loop_wait away) and
// returns when that happened.
func (w *world) waitReleased(t *testing.T, name string) time.Time {
	t.Helper()
	if !w.run(2*syncLoopWait*time.Second, func() bool { return !w.syncLists(name) }) {
		t.Fatalf("the primary did not drop %s from the sync key", name)
	}
	return w.clock.Now()
}

// blockSyncWrites makes the primary's sync-key writes fail their compare, so
// it cannot release anyone.
func (w *world) blockSyncWrites(leader string) {
	defer w.lockFn()()
	if w.failSync == nil {
		w.failSync = map[string]int{}
	}
	w.failSync[leader] = 1 << 20
}

// unblockSyncWrites lets the primary write the sync key again.
func (w *world) unblockSyncWrites(leader string) {
	defer w.lockFn()()
	delete(w.failSync, leader)
}

// syncCluster is a healthy 3-node cluster in synchronous mode whose sync key
// lists one replica (picked by the primary); it returns the leader and that replica.
func syncCluster(t *testing.T) (*world, string, string) {
	t.Helper()
	w := bootstrapped(t, withSyncTiming)
	leader, standby := syncOn(t, w, nil)
	w.busy.settle(t)
	if !w.nodes[standby].node.Snapshot().Config.SynchronousMode {
		t.Fatalf("synchronous_mode not in force on %s", standby)
	}
	return w, leader, standby
}

// notWhileListed fails the test when name restarted while the sync key still lists it.
func (w *world) notWhileListed(t *testing.T, name string, before int) func() bool {
	return func() bool {
		if w.starts(name) > before && w.syncLists(name) {
			t.Errorf("%s restarted while still listed as a sync standby", name)
			return true
		}
		return !w.syncLists(name)
	}
}

func TestSimSyncStandbyRestartWaitsForRelease(t *testing.T) {
	w, leader, standby := syncCluster(t)
	w.blockSyncWrites(leader) // hold the release until the test has seen the request
	before := w.starts(standby)
	answer := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[standby].node.Restart(ctx, RestartRequest{})
	})
	if !w.run(time.Second, func() bool { return w.memberNoSync(standby) }) {
		t.Fatalf("%s did not publish nosync in its member key", standby)
	}
	if tags := w.nodes[standby].node.Snapshot().Tags; tags[cluster.TagNoSync] != true {
		t.Errorf("/patroni tags while asking for release: %v, want nosync: true", tags)
	}
	// Listed in the sync key: postgres must not restart yet.
	w.run(2*time.Second, func() bool { return false })
	if w.starts(standby) != before {
		t.Fatalf("%s restarted while still listed as the sync standby", standby)
	}
	// The primary drops it: the restart follows the sync key's change, well
	// inside one loop_wait (the idle tick) and long before 2×loop_wait.
	w.unblockSyncWrites(leader)
	w.run(2*syncLoopWait*time.Second, w.notWhileListed(t, standby, before))
	dropped := w.waitReleased(t, standby)
	if !w.run(2*syncLoopWait*time.Second, func() bool { return w.starts(standby) > before }) {
		t.Fatalf("%s did not restart after being released", standby)
	}
	if took := w.clock.Now().Sub(dropped); took > time.Second {
		t.Errorf("restart %v after the release, want it on the sync key's change (< 1s, loop_wait %ds)", took, syncLoopWait)
	}
	if got := answer(); got.kind != "done" || got.text != "restarted successfully" {
		t.Fatalf("restart: %s %q", got.kind, got.text)
	}
	if !w.run(2*time.Second, func() bool { return !w.memberNoSync(standby) }) {
		t.Errorf("%s kept nosync in its member key after the restart", standby)
	}
	if tags := w.nodes[standby].node.Snapshot().Tags; tags[cluster.TagNoSync] != nil {
		t.Errorf("/patroni tags after the restart: %v", tags)
	}
	if w.leaderName() != leader {
		t.Errorf("leader changed to %q", w.leaderName())
	}
	w.noViolations(t)
}

func TestSimSyncStandbyRestartGivesUpAfterTwoLoopWaits(t *testing.T) {
	w, leader, standby := syncCluster(t)
	w.blockSyncWrites(leader)
	before := w.starts(standby)
	asked := w.clock.Now()
	answer := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[standby].node.Restart(ctx, RestartRequest{})
	})
	limit := 2 * syncLoopWait * time.Second
	// Nobody drops it: it restarts anyway once 2×loop_wait passed, not before.
	if !w.run(limit+2*time.Second, func() bool { return w.starts(standby) > before }) {
		t.Fatalf("%s never restarted", standby)
	}
	if took := w.clock.Now().Sub(asked); took < limit-time.Second || took > limit+time.Second {
		t.Errorf("restarted %v after the request, want about 2×loop_wait (%v)", took, limit)
	}
	if got := answer(); got.kind != "done" {
		t.Fatalf("restart: %s %q", got.kind, got.text)
	}
	if !w.run(2*time.Second, func() bool { return !w.memberNoSync(standby) }) {
		t.Errorf("%s kept nosync after the restart", standby)
	}
	w.noViolations(t)
}

func TestSimRestartWithoutSyncDutyDoesNotWait(t *testing.T) {
	w, leader, standby := syncCluster(t)
	async_ := w.otherThan(leader, standby)
	for _, name := range []string{async_, leader} {
		before := w.starts(name)
		answer := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
			return w.nodes[name].node.Restart(ctx, RestartRequest{})
		})
		if !w.run(time.Second, func() bool { return w.starts(name) > before }) {
			t.Fatalf("%s (not a sync standby) did not restart at once", name)
		}
		if got := answer(); got.kind != "done" {
			t.Fatalf("restart of %s: %s %q", name, got.kind, got.text)
		}
		w.run(time.Second, func() bool { return false })
		if w.memberNoSync(name) {
			t.Errorf("%s still shows nosync after its restart", name)
		}
	}
	if w.memberNoSync(leader) {
		t.Errorf("the leader published nosync")
	}
	// A second restart request while one waits for release is refused.
	w.blockSyncWrites(leader)
	before := w.starts(standby)
	first := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[standby].node.Restart(ctx, RestartRequest{})
	})
	if !w.run(time.Second, func() bool { return w.memberNoSync(standby) }) {
		t.Fatalf("%s did not ask for release", standby)
	}
	second := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[standby].node.Restart(ctx, RestartRequest{})
	})()
	if second.kind != "unavailable" || second.text != "restart already in progress" {
		t.Errorf("second restart: %s %q", second.kind, second.text)
	}
	w.unblockSyncWrites(leader)
	w.run(2*syncLoopWait*time.Second, w.notWhileListed(t, standby, before))
	w.waitReleased(t, standby)
	if !w.run(time.Second, func() bool { return w.starts(standby) > before }) {
		t.Fatalf("%s did not restart after release", standby)
	}
	if got := first(); got.kind != "done" {
		t.Fatalf("first restart: %s %q", got.kind, got.text)
	}
	w.noViolations(t)
}

// shutdownAsync starts a clean shutdown (postgres stops) of name and returns
// once its loop has ended, leaving the clean-stop order running; the node is
// detached from the world's events (its watch is played by the test).
func (w *world) shutdownAsync(t *testing.T, name string) <-chan error {
	t.Helper()
	sn := w.nodes[name]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	errc := make(chan error, 1)
	go func() { errc <- sn.node.Shutdown(ctx, true) }()
	if err := <-sn.done; err != nil && err != context.Canceled {
		t.Fatalf("%s: Run returned %v", name, err)
	}
	w.detach(sn)
	return errc
}

func TestSimSyncStandbyStopWaitsForRelease(t *testing.T) {
	w, leader, standby := syncCluster(t)
	w.blockSyncWrites(leader)
	errc := w.shutdownAsync(t, standby)
	if !w.run(time.Second, func() bool { return w.memberNoSync(standby) }) {
		t.Fatalf("%s did not publish nosync before stopping", standby)
	}
	w.run(2*time.Second, func() bool { return false })
	if running, _, _ := w.pgState(standby); !running {
		t.Fatalf("%s stopped postgres while still listed as the sync standby", standby)
	}
	w.unblockSyncWrites(leader)
	w.run(2*syncLoopWait*time.Second, func() bool {
		if running, _, _ := w.pgState(standby); !running && w.syncLists(standby) {
			t.Fatalf("%s stopped postgres while still listed as the sync standby", standby)
		}
		return !w.syncLists(standby)
	})
	w.waitReleased(t, standby)
	w.busy.signal(w.nodes[standby].store.changed) // its watch sees the sync key change
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Shutdown did not end after the release")
	}
	w.busy.settle(t)
	if running, _, _ := w.pgState(standby); running {
		t.Errorf("%s: postgres still running after Shutdown", standby)
	}
	if w.leaderName() != leader {
		t.Errorf("leader changed to %q", w.leaderName())
	}
	w.noViolations(t)
}

func TestSimSyncStandbyStopGivesUpAfterTwoLoopWaits(t *testing.T) {
	w, leader, standby := syncCluster(t)
	w.blockSyncWrites(leader)
	asked := w.clock.Now()
	errc := w.shutdownAsync(t, standby)
	var done bool
	w.run(2*syncLoopWait*time.Second+2*time.Second, func() bool {
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			done = true
		default:
		}
		return done
	})
	if !done {
		t.Fatalf("Shutdown still waiting after 2×loop_wait")
	}
	limit := 2 * syncLoopWait * time.Second
	if took := w.clock.Now().Sub(asked); took < limit-time.Second || took > limit+time.Second {
		t.Errorf("stopped %v after the request, want about 2×loop_wait (%v)", took, limit)
	}
	if running, _, _ := w.pgState(standby); running {
		t.Errorf("%s: postgres still running after Shutdown", standby)
	}
	w.noViolations(t)
}

func TestSimScheduledRestartOfSyncStandbyWaitsForRelease(t *testing.T) {
	w, leader, standby := syncCluster(t)
	w.blockSyncWrites(leader)
	n := w.nodes[standby].node
	at := w.clock.Now().Add(2 * time.Second)
	if got := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return n.Restart(ctx, RestartRequest{Schedule: at})
	})(); got.kind != "scheduled" {
		t.Fatalf("schedule: %s %q", got.kind, got.text)
	}
	before := w.starts(standby)
	if !w.run(4*time.Second, func() bool { return w.memberNoSync(standby) }) {
		t.Fatalf("%s did not ask for release when its scheduled restart came", standby)
	}
	if w.clock.Now().Before(at) {
		t.Errorf("asked for release at %v, before the schedule %v", w.clock.Now(), at)
	}
	w.run(2*time.Second, func() bool { return false })
	if w.starts(standby) != before {
		t.Fatalf("the scheduled restart ran while %s was still listed", standby)
	}
	w.unblockSyncWrites(leader)
	w.run(2*syncLoopWait*time.Second, w.notWhileListed(t, standby, before))
	w.waitReleased(t, standby)
	if !w.run(time.Second, func() bool { return w.starts(standby) > before }) {
		t.Fatalf("the scheduled restart did not run after the release")
	}
	if !w.run(2*time.Second, func() bool { return !w.memberNoSync(standby) }) {
		t.Errorf("%s kept nosync after its scheduled restart", standby)
	}
	w.noViolations(t)
}
