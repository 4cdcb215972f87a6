package ha

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Every wait of the HA loop ends on its own event, never on the next
// loop_wait (docs/ha-waits.md). These scenarios run at Patroni's default
// timing, ttl 30 / loop_wait 10 / retry_timeout 10, and require each waiting
// node to proceed well within one loop_wait of simulated time: the fake clock
// never reaches the tick that would otherwise have woken it.

const slowLoopWait = 10 * time.Second

func slowTiming(w *world) { w.ttl, w.loopWait, w.retry = 30, 10, 10 }

// healthy reports one writable leader with two streaming replicas.
func (w *world) healthy() bool {
	l := w.leaderName()
	return l != "" && slices.Equal(w.writable(), []string{l}) && len(w.streamingReplicasOf(l)) == 2
}

// The replicas wait for the leader's postgres to run before cloning (its member
// key turning state=running wakes them), then clone and start (each long action's
// end wakes the loop): two streaming replicas long before the first loop_wait.
func TestSimWakeCloneWhenLeaderRuns(t *testing.T) {
	w := newWorld(t, "pg1", "pg2", "pg3")
	slowTiming(w)
	w.start(w.names...)
	from := w.clock.Now()
	if !w.run(slowLoopWait/2, w.healthy) {
		t.Fatalf("no healthy cluster within half a loop_wait: leader %q writable %v replicas %v\n",
			w.leaderName(), w.writable(), w.streamingReplicasOf(w.leaderName()))
	}
	t.Logf("healthy after %v of simulated time (loop_wait %v)", w.clock.Now().Sub(from), slowLoopWait)
	w.noViolations(t)
}

// The leader's member key shows state=running only after its postgres started;
// a replica that saw it "starting" must be woken by the change, not by a tick.
func TestSimWakeOnLeaderMemberStateChange(t *testing.T) {
	w := newWorld(t, "pg1", "pg2", "pg3")
	slowTiming(w)
	w.start("pg1")
	if !w.run(slowLoopWait/2, func() bool { return w.leaderName() == "pg1" && slices.Equal(w.writable(), []string{"pg1"}) }) {
		t.Fatalf("pg1 did not bootstrap: leader %q", w.leaderName())
	}
	// pg1's pgnoded stops (its lease still runs for ttl) with its member key
	// saying "starting", as while its postgres starts.
	w.stop("pg1")
	w.mu.Lock()
	m := w.members["pg1"]
	m.State = "starting"
	w.members["pg1"] = m
	w.mu.Unlock()
	w.start("pg2")
	w.run(time.Second, func() bool { return false })
	if strings.Contains(w.logs.String(), "trying to bootstrap from leader") {
		t.Fatalf("pg2 cloned from a leader whose member key says starting")
	}
	if !strings.Contains(w.logs.String(), "waiting for leader (pg1) to be running before cloning") {
		t.Fatalf("pg2 is not waiting for the leader to run")
	}
	// The leader's member key turns running: that write is the event.
	w.mu.Lock()
	m.State = "running"
	w.members["pg1"] = m
	w.changedLocked()
	w.mu.Unlock()
	w.busy.settle(t)
	from := w.clock.Now()
	if !w.run(2*time.Second, func() bool { return slices.Contains(w.streamingReplicasOf("pg1"), "pg2") }) {
		t.Fatalf("pg2 does not stream within 2 s of the leader's state change (loop_wait %v)", slowLoopWait)
	}
	t.Logf("pg2 streaming %v after the leader's member key said running", w.clock.Now().Sub(from))
	w.noViolations(t)
}

// The old primary comes back after a failover: rewind (a long action), start
// as a replica (another), follow — every step woken by the previous one's end.
func TestSimWakeOldPrimaryRejoins(t *testing.T) {
	w := bootstrapped(t, slowTiming)
	old := w.leaderName()
	w.stop(old)
	if !w.run(60*time.Second, w.newLeaderWritable(old)) {
		t.Fatalf("no new primary: leader %q writable %v", w.leaderName(), w.writable())
	}
	leader := w.leaderName()
	w.start(old)
	from := w.clock.Now()
	if !w.run(slowLoopWait/2, func() bool { return slices.Contains(w.streamingReplicasOf(leader), old) }) {
		t.Fatalf("%s did not rejoin within half a loop_wait: replicas of %s %v", old, leader, w.streamingReplicasOf(leader))
	}
	t.Logf("%s streaming from %s %v after its restart", old, leader, w.clock.Now().Sub(from))
	w.noViolations(t)
}

// A paused cluster does not restart a crashed replica; resuming (the config
// key changing) restarts it at once.
func TestSimWakePauseResume(t *testing.T) {
	w := bootstrapped(t, slowTiming)
	l := w.leaderName()
	r := w.otherThan(l)
	if kind, body := cfgOutcome(w.nodes[l].node.PatchConfig(context.Background(), map[string]any{"pause": true})); kind != "done" {
		t.Fatalf("pause: %s %s", kind, body)
	}
	w.run(time.Second, func() bool { return false })
	w.mu.Lock()
	w.nodes[r].pg.stopLocked("immediate")
	w.mu.Unlock()
	w.busy.settle(t)
	before := w.starts(r)
	w.run(2*time.Second, func() bool { return false })
	if w.starts(r) != before {
		t.Fatalf("a paused node restarted its postgres")
	}
	if kind, body := cfgOutcome(w.nodes[l].node.PatchConfig(context.Background(), map[string]any{"pause": nil})); kind != "done" {
		t.Fatalf("resume: %s %s", kind, body)
	}
	from := w.clock.Now()
	if !w.run(2*time.Second, func() bool { return w.starts(r) > before }) {
		t.Fatalf("%s did not restart postgres within 2 s of the resume (loop_wait %v)", r, slowLoopWait)
	}
	t.Logf("%s restarted postgres %v after the resume", r, w.clock.Now().Sub(from))
	w.noViolations(t)
}

// A scheduled switchover runs at its time, not at the first loop_wait after it.
func TestSimWakeScheduledSwitchoverAtItsTime(t *testing.T) {
	w := bootstrapped(t, slowTiming)
	old := w.leaderName()
	cand := w.otherThan(old)
	at := w.clock.Now().Add(13 * time.Second) // between two loop_wait ticks
	r := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[old].node.Switchover(ctx, SwitchoverRequest{Leader: old, Candidate: cand, ScheduledAt: at})
	})()
	if r.kind != "scheduled" {
		t.Fatalf("answer %s %q", r.kind, r.text)
	}
	w.busy.settle(t)
	if !w.run(at.Sub(w.clock.Now())+2*time.Second, func() bool { return w.leaderName() == cand }) {
		t.Fatalf("the scheduled switchover did not run within 2 s of its time")
	}
	p := w.promotionsSince(t0)
	if len(p) == 0 || p[len(p)-1].at.Before(at) || p[len(p)-1].at.After(at.Add(2*time.Second)) {
		t.Errorf("promotions %v, want one within 2 s after %v", p, at.Sub(t0))
	}
	w.noViolations(t)
}

// A scheduled restart runs at its time.
func TestSimWakeScheduledRestartAtItsTime(t *testing.T) {
	w := bootstrapped(t, slowTiming)
	r := w.otherThan(w.leaderName())
	n := w.nodes[r].node
	at := w.clock.Now().Add(13 * time.Second)
	got := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return n.Restart(ctx, RestartRequest{Schedule: at})
	})()
	if got.kind != "scheduled" {
		t.Fatalf("schedule: %s %q", got.kind, got.text)
	}
	w.busy.settle(t)
	before := w.starts(r)
	w.run(at.Sub(w.clock.Now())-100*time.Millisecond, func() bool { return false })
	if w.starts(r) != before {
		t.Fatalf("the scheduled restart ran early")
	}
	if !w.run(time.Second, func() bool { return w.starts(r) > before }) {
		t.Fatalf("the scheduled restart did not run within 1 s of its time (loop_wait %v)", slowLoopWait)
	}
	w.noViolations(t)
}
