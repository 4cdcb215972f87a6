package ha

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Operator requests on the simulated 3-node cluster. Requests that block
// (switchover, restart) run in a goroutine while the test plays the world.

type reply struct {
	kind string // "done", "scheduled" or the error kind (cluster.OpErrorKind.String())
	text string
}

// async runs fn, an operator request to one of w's nodes, in a goroutine, and
// returns once the request was handed to a node's loop (or answered without
// reaching one): the simulated clock must not move while the request is still
// on its way, or a test could play its simulated time out before the loop has
// it. The returned function waits (real time, bounded) for the answer.
func (w *world) async(t *testing.T, fn func(ctx context.Context) (cluster.OpResult, error)) func() reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	sent := w.sent.Load()
	var r reply
	done := make(chan struct{})
	go func() {
		kind, text := opOutcome(fn(ctx))
		r = reply{kind, text}
		close(done)
	}()
	timeout := time.After(10 * time.Second)
	for w.sent.Load() == sent {
		select {
		case <-w.sentSig:
		case <-done:
			return func() reply { return r }
		case <-timeout:
			t.Fatal("the operator request reached no loop")
		}
	}
	return func() reply {
		t.Helper()
		select {
		case <-done:
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("no answer to the operator request")
			return reply{}
		}
	}
}

func (w *world) otherThan(names ...string) string {
	for _, n := range w.names {
		if !slices.Contains(names, n) {
			return n
		}
	}
	return ""
}

func (w *world) starts(name string) int {
	defer w.lockFn()()
	return w.nodes[name].pg.starts
}

func TestSimSwitchoverToNamedCandidate(t *testing.T) {
	w := bootstrapped(t)
	old := w.leaderName()
	cand := w.otherThan(old)
	answer := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[w.otherThan(old, cand)].node.Switchover(ctx, SwitchoverRequest{Leader: old, Candidate: cand})
	})
	if !w.run(5*time.Second, func() bool { return w.leaderName() == cand && slices.Equal(w.writable(), []string{cand}) }) {
		t.Fatalf("no switchover: leader %q, writable %v", w.leaderName(), w.writable())
	}
	r := answer()
	if r.kind != "done" || r.text != `Successfully switched over to "`+cand+`"` {
		t.Errorf("answer %s %q", r.kind, r.text)
	}
	if !w.run(10*time.Second, func() bool { return len(w.streamingReplicasOf(cand)) == 2 }) {
		t.Fatalf("the old primary does not stream from the new one: %v", w.streamingReplicasOf(cand))
	}
	if w.rewinds != 0 {
		t.Errorf("%d pg_rewind runs after a clean switchover, want none", w.rewinds)
	}
	w.noViolations(t)
}

func TestSimSwitchoverToAnyNamesTheBestCandidate(t *testing.T) {
	w := bootstrapped(t)
	old := w.leaderName()
	answer := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[old].node.Switchover(ctx, SwitchoverRequest{Leader: old})
	})
	if !w.run(5*time.Second, func() bool { l := w.leaderName(); return l != "" && l != old && len(w.writable()) == 1 }) {
		t.Fatalf("no switchover: leader %q", w.leaderName())
	}
	if r := answer(); r.kind != "done" || !strings.HasPrefix(r.text, "Successfully switched over to") {
		t.Errorf("answer %s %q", r.kind, r.text)
	}
	w.noViolations(t)
}

func TestSimScheduledSwitchoverRunsAtItsTime(t *testing.T) {
	w := bootstrapped(t)
	old := w.leaderName()
	cand := w.otherThan(old)
	at := w.clock.Now().Add(3 * time.Second)
	r := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[old].node.Switchover(ctx, SwitchoverRequest{Leader: old, Candidate: cand, ScheduledAt: at})
	})()
	if r.kind != "scheduled" || r.text != "Switchover scheduled" {
		t.Fatalf("answer %s %q", r.kind, r.text)
	}
	w.busy.settle(t)
	w.run(2500*time.Millisecond, func() bool { return false })
	if l := w.leaderName(); l != old {
		t.Fatalf("leader %q before the scheduled time", l)
	}
	if !w.run(5*time.Second, func() bool { return w.leaderName() == cand }) {
		t.Fatalf("the scheduled switchover did not run")
	}
	if p := w.promotionsSince(t0); len(p) == 0 || p[len(p)-1].at.Before(at) {
		t.Errorf("promoted at %v, before the scheduled %v", p, at)
	}
	w.noViolations(t)
}

func TestSimSwitchoverRefusals(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	r := w.otherThan(l)
	n := w.nodes[l].node
	ctx := context.Background()
	for _, tc := range []struct {
		req  SwitchoverRequest
		kind string
		text string
	}{
		{SwitchoverRequest{Leader: l, Candidate: "nosuch"}, "infeasible", "candidate does not exists"},
		{SwitchoverRequest{Leader: r, Candidate: l}, "infeasible", "leader name does not match"},
	} {
		if kind, text := opOutcome(n.Switchover(ctx, tc.req)); kind != tc.kind || text != tc.text {
			t.Errorf("%+v: %s %q, want %s %q", tc.req, kind, text, tc.kind, tc.text)
		}
	}
	// The candidate's API is down: no good candidates.
	w.mu.Lock()
	w.nodes[r].apiDown = true
	w.mu.Unlock()
	if kind, text := opOutcome(n.Switchover(ctx, SwitchoverRequest{Leader: l, Candidate: r})); kind != "infeasible" ||
		text != "switchover is not possible: no good candidates have been found" {
		t.Errorf("unreachable candidate: %s %q", kind, text)
	}
	if kind, text := opOutcome(n.DeleteSwitchover(ctx)); kind != "not found" {
		t.Errorf("DELETE /switchover without one: %s %q", kind, text)
	}
	w.busy.settle(t)
	if w.leaderName() != l {
		t.Errorf("leader changed after refused requests")
	}
}

func TestSimRestartAndScheduledRestart(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	r := w.otherThan(l)
	before := w.starts(r)
	answer := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[r].node.Restart(ctx, RestartRequest{})
	})
	w.run(2*time.Second, func() bool { return w.starts(r) > before })
	if got := answer(); got.kind != "done" || got.text != "restarted successfully" {
		t.Fatalf("restart: %s %q", got.kind, got.text)
	}
	before = w.starts(l)
	answer = w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[l].node.Restart(ctx, RestartRequest{Role: "primary"})
	})
	w.run(2*time.Second, func() bool { return w.starts(l) > before })
	if got := answer(); got.kind != "done" {
		t.Fatalf("restart of the leader: %s %q", got.kind, got.text)
	}
	if w.leaderName() != l || !slices.Equal(w.writable(), []string{l}) {
		t.Fatalf("a restart of the leader moved leadership: leader %q writable %v", w.leaderName(), w.writable())
	}

	n := w.nodes[r].node
	at := w.clock.Now().Add(3 * time.Second)
	get := func(req RestartRequest) reply {
		return w.async(t, func(ctx context.Context) (cluster.OpResult, error) { return n.Restart(ctx, req) })()
	}
	if got := get(RestartRequest{Schedule: at}); got.kind != "scheduled" || got.text != "Restart scheduled" {
		t.Fatalf("schedule: %s %q", got.kind, got.text)
	}
	if got := get(RestartRequest{Schedule: at.Add(time.Minute)}); got.kind != "conflict" {
		t.Fatalf("second schedule: %s %q", got.kind, got.text)
	}
	w.busy.settle(t)
	if n.Snapshot().ScheduledRestart["schedule"] == nil {
		t.Errorf("the snapshot does not show the scheduled restart: %v", n.Snapshot().ScheduledRestart)
	}
	before = w.starts(r)
	w.run(2*time.Second, func() bool { return false })
	if w.starts(r) != before {
		t.Fatalf("the scheduled restart ran early")
	}
	if !w.run(3*time.Second, func() bool { return w.starts(r) > before }) {
		t.Fatalf("the scheduled restart did not run")
	}
	if got := get(RestartRequest{Schedule: w.clock.Now().Add(time.Hour)}); got.kind != "scheduled" {
		t.Fatalf("schedule: %s %q", got.kind, got.text)
	}
	del := func() reply { return w.async(t, n.DeleteRestart)() }
	if got := del(); got.kind != "done" || got.text != "scheduled restart deleted" {
		t.Errorf("delete: %s %q", got.kind, got.text)
	}
	if got := del(); got.kind != "not found" || got.text != "no restarts are scheduled" {
		t.Errorf("delete again: %s %q", got.kind, got.text)
	}
	w.noViolations(t)
}

func TestSimReinitialize(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	r := w.otherThan(l)
	if got := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[l].node.Reinitialize(ctx, ReinitializeRequest{})
	})(); got.kind != "unavailable" || got.text != "I am the leader, can not reinitialize" {
		t.Errorf("reinitialize the leader: %s %q", got.kind, got.text)
	}
	before := w.starts(r)
	if got := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[r].node.Reinitialize(ctx, ReinitializeRequest{})
	})(); got.kind != "done" || got.text != "reinitialize started" {
		t.Fatalf("reinitialize a replica: %s %q", got.kind, got.text)
	}
	if !w.run(5*time.Second, func() bool {
		return w.starts(r) > before && slices.Contains(w.streamingReplicasOf(l), r)
	}) {
		t.Fatalf("the replica was not re-created")
	}
	// from_leader forces pg_basebackup; without it the configured methods are used.
	before = w.starts(r)
	if got := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[r].node.Reinitialize(ctx, ReinitializeRequest{FromLeader: true})
	})(); got.kind != "done" {
		t.Fatalf("reinitialize from_leader: %s %q", got.kind, got.text)
	}
	if !w.run(5*time.Second, func() bool {
		return w.starts(r) > before && slices.Contains(w.streamingReplicasOf(l), r)
	}) {
		t.Fatalf("the replica was not re-created from the leader")
	}
	func() {
		defer w.lockFn()()
		opts := w.nodes[r].pg.cloneOpts
		if n := len(opts); n < 2 || opts[n-2].BasebackupOnly || !opts[n-1].BasebackupOnly {
			t.Errorf("clone options of the reinitializes = %+v, want the configured methods then basebackup only", opts)
		}
	}()
	w.noViolations(t)
}

func TestSimPatchConfigReloadsEveryNode(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	kind, body := cfgOutcome(w.nodes[w.otherThan(l)].node.PatchConfig(context.Background(),
		map[string]any{"postgresql": map[string]any{"parameters": map[string]any{"work_mem": "7MB"}}, "ttl": 4}))
	if kind != "done" {
		t.Fatalf("PATCH: %s %s", kind, body)
	}
	ok := w.run(3*time.Second, func() bool {
		defer w.lockFn()()
		for _, name := range w.names {
			pg := w.nodes[name].pg
			if pg.params["work_mem"] != "7MB" || w.nodes[name].store.ttl != 4*time.Second {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("not every node reloaded work_mem and took ttl 4")
	}
	w.noViolations(t)
}

func TestSimPauseSwitchoverNeedsACandidateAndPromotesIt(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	if kind, body := cfgOutcome(w.nodes[l].node.PatchConfig(context.Background(), map[string]any{"pause": true})); kind != "done" {
		t.Fatalf("pause: %s %s", kind, body)
	}
	w.run(time.Second, func() bool { return false })
	cand := w.otherThan(l)
	answer := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[l].node.Switchover(ctx, SwitchoverRequest{Leader: l, Candidate: cand})
	})
	if !w.run(5*time.Second, func() bool { return w.leaderName() == cand && slices.Equal(w.writable(), []string{cand}) }) {
		t.Fatalf("no switchover while paused: leader %q writable %v", w.leaderName(), w.writable())
	}
	if r := answer(); r.kind != "done" {
		t.Errorf("answer %s %q", r.kind, r.text)
	}
	if !w.run(5*time.Second, func() bool { return slices.Contains(w.streamingReplicasOf(cand), l) }) {
		t.Errorf("the old primary did not follow the new one while paused")
	}
	w.noViolations(t)
}

func TestSimFailsafeKeyFollowsTheMode(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	patch := func(on bool) {
		t.Helper()
		if kind, body := cfgOutcome(w.nodes[l].node.PatchConfig(context.Background(), map[string]any{"failsafe_mode": on})); kind != "done" {
			t.Fatalf("PATCH failsafe_mode=%v: %s %s", on, kind, body)
		}
	}
	patch(true)
	if !w.run(5*time.Second, func() bool { defer w.lockFn()(); return len(w.failsafe) == len(w.names) }) {
		t.Fatalf("failsafe key never listed every member: %v", w.failsafe)
	}
	patch(false)
	if !w.run(5*time.Second, func() bool { defer w.lockFn()(); return w.failsafe == nil }) {
		t.Fatalf("failsafe key still present with failsafe_mode off: %v", w.failsafe)
	}
	w.noViolations(t)
}
