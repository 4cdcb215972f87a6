package ha

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// simHooks records the callbacks and hook scripts the loop runs, in order.
type simHooks struct {
	w    *world
	name string
}

func (h *simHooks) Callback(cb cluster.Callback, role cluster.Role) {
	defer h.w.lockFn()()
	h.w.hookCalls = append(h.w.hookCalls, fmt.Sprintf("%s %s %s", h.name, cb, role))
}

func (h *simHooks) Run(ctx context.Context, hk cluster.Hook) (bool, int, error) {
	if !h.Configured(hk) {
		return false, 0, nil
	}
	defer h.w.lockFn()()
	h.w.hookCalls = append(h.w.hookCalls, fmt.Sprintf("%s %s", h.name, hk))
	if hk == cluster.PrePromote && h.w.prePromote[h.name] {
		return true, 1, nil
	}
	return true, 0, nil
}

func (h *simHooks) Configured(hk cluster.Hook) bool {
	defer h.w.lockFn()()
	switch hk {
	case cluster.PrePromote:
		_, ok := h.w.prePromote[h.name]
		return ok
	case cluster.BeforeStop:
		return h.w.beforeStopNodes
	}
	return false
}

func (h *simHooks) Runs() map[cluster.HookRun]uint64 { return nil }

// calls returns the recorded calls from index from on, and the new end.
func (w *world) calls(from int) ([]string, int) {
	defer w.lockFn()()
	return slices.Clone(w.hookCalls[from:]), len(w.hookCalls)
}

func sortedCalls(c []string) []string {
	c = slices.Clone(c)
	slices.Sort(c)
	return c
}

// switchover asks node via for a switchover from leader to cand and plays the
// world until cond holds (at most d); a request refused because the leader's
// view of the candidate is not fresh yet right after bootstrap is sent again.
func (w *world) switchover(via, leader, cand string, d time.Duration, cond func() bool) bool {
	w.t.Helper()
	for range 5 {
		answer := w.async(w.t, func(ctx context.Context) (cluster.OpResult, error) {
			return w.nodes[via].node.Switchover(ctx, SwitchoverRequest{Leader: leader, Candidate: cand})
		})
		ok := w.run(d, cond)
		r := answer()
		if ok || r.kind == "done" {
			return ok
		}
	}
	return false
}

func withHooks(pre map[string]bool) func(*world) {
	return func(w *world) { w.prePromote, w.beforeStopNodes = maps.Clone(pre), true }
}

// The HA loop fires what Decide plans: bootstrap, then a switchover, then a
// failover, each with Patroni's callbacks on the right nodes (the same calls
// as test/testdata/callbacks_patroni_3.0.2.golden, in the role spelling of
// cluster.Role).
func TestSimCallbacksFollowTheTransitions(t *testing.T) {
	w := bootstrapped(t, withHooks(map[string]bool{"pg1": false, "pg2": false, "pg3": false}))
	p := w.leaderName()
	cand := w.otherThan(p)
	third := w.otherThan(p, cand)
	if !w.run(5*time.Second, func() bool { c, _ := w.calls(0); return len(c) >= 3 }) {
		t.Fatal("no callbacks after bootstrap")
	}
	got, mark := w.calls(0)
	want := sortedCalls([]string{p + " on_start primary", cand + " on_start replica", third + " on_start replica"})
	if !slices.Equal(sortedCalls(got), want) {
		t.Errorf("bootstrap: %q, want %q", got, want)
	}

	if !w.switchover(third, p, cand, 10*time.Second, func() bool {
		c, _ := w.calls(mark)
		return w.leaderName() == cand && len(w.streamingReplicasOf(cand)) == 2 && len(c) >= 6
	}) {
		c, _ := w.calls(mark)
		t.Fatalf("switchover did not complete: leader %q, calls %q", w.leaderName(), c)
	}
	got, mark = w.calls(mark)
	want = sortedCalls([]string{p + " before_stop", p + " on_stop demoted", p + " on_role_change replica",
		cand + " pre_promote", cand + " on_role_change primary", third + " on_reload replica"})
	if !slices.Equal(sortedCalls(got), want) {
		t.Errorf("switchover: %q, want %q", got, want)
	}
	if i, j := slices.Index(got, p+" before_stop"), slices.Index(got, p+" on_stop demoted"); i < 0 || j < i {
		t.Errorf("before_stop must run before the stop's on_stop: %q", got)
	}

	w.stop(cand) // the node is lost: pgnoded and postgres at once
	w.mu.Lock()
	w.nodes[cand].pg.stopLocked("immediate")
	w.mu.Unlock()
	if !w.run(20*time.Second, func() bool {
		l := w.leaderName()
		return l != "" && l != cand && len(w.streamingReplicasOf(l)) == 1
	}) {
		t.Fatalf("no failover: leader %q", w.leaderName())
	}
	winner := w.leaderName()
	other := w.otherThan(cand, winner)
	w.run(2*time.Second, func() bool { return false })
	got, _ = w.calls(mark)
	want = sortedCalls([]string{winner + " pre_promote", winner + " on_role_change primary", other + " on_reload replica"})
	if !slices.Equal(sortedCalls(got), want) {
		t.Errorf("failover: %q, want %q", got, want)
	}
	w.noViolations(t)
}

// A pre_promote that exits 1 on the switchover candidate: it gives the key up
// without promoting and stays out of the race; another node takes over.
func TestSimPrePromoteFailureHandsOver(t *testing.T) {
	w := bootstrapped(t)
	p := w.leaderName()
	cand := w.otherThan(p)
	w.mu.Lock()
	w.prePromote = map[string]bool{cand: true, p: false, w.otherThan(p, cand): false}
	w.mu.Unlock()
	_, mark := w.calls(0)
	if !w.switchover(p, p, cand, 20*time.Second, func() bool {
		c, _ := w.calls(mark)
		l := w.leaderName()
		return slices.Contains(c, cand+" pre_promote") && l != "" && l != cand &&
			slices.Equal(w.writable(), []string{l}) && len(w.streamingReplicasOf(l)) == 2
	}) {
		t.Fatalf("nobody took over: leader %q, writable %v", w.leaderName(), w.writable())
	}
	got, _ := w.calls(mark)
	if !slices.Contains(got, cand+" pre_promote") {
		t.Errorf("the candidate never ran pre_promote: %q", got)
	}
	for _, c := range got {
		if strings.HasPrefix(c, cand+" on_role_change primary") {
			t.Errorf("the candidate fired on_role_change primary: %q", got)
		}
	}
	for _, pr := range w.promotions {
		if pr.name == cand {
			t.Errorf("the candidate was promoted: %+v", w.promotions)
		}
	}
	w.noViolations(t)
}

// A clean shutdown that stops postgres runs before_stop before the stop and
// fires on_stop after it; one that keeps postgres running fires nothing.
func TestSimShutdownRunsBeforeStopAndOnStop(t *testing.T) {
	w := bootstrapped(t, withHooks(nil))
	old := w.leaderName()
	replica := w.otherThan(old)
	_, mark := w.calls(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sn := w.nodes[replica]
	if err := sn.node.Shutdown(ctx, false); err != nil {
		t.Fatalf("Shutdown keeping postgres: %v", err)
	}
	<-sn.done
	w.detach(sn)
	w.busy.settle(t)
	if got, _ := w.calls(mark); len(got) != 0 {
		t.Errorf("a shutdown that keeps postgres running fired %q", got)
	}
	sn = w.nodes[old]
	if err := sn.node.Shutdown(ctx, true); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	<-sn.done
	w.detach(sn)
	w.busy.settle(t)
	all, _ := w.calls(mark)
	var got []string
	for _, c := range all {
		if strings.HasPrefix(c, old+" ") {
			got = append(got, c)
		}
	}
	if want := []string{old + " before_stop", old + " on_stop primary"}; !slices.Equal(got, want) {
		t.Errorf("clean shutdown of the leader: %q, want %q", got, want)
	}
}

// In a standby cluster the standby leader's callbacks name the role
// standby_leader (Patroni's follow with role standby_leader): its bootstrap's
// on_start, and the failover winner's on_role_change when it leaves the
// member it followed for the remote primary.
func TestSimStandbyLeaderCallbacks(t *testing.T) {
	w := newWorld(t, "pg1", "pg2", "pg3")
	withHooks(map[string]bool{})(w)
	w.addRemote("7300000000000000999", 1000)
	w.setConfig(simStandbyConfig(true))
	w.start(w.names...)
	if !w.run(30*time.Second, w.healthyStandbyCluster) {
		t.Fatalf("no healthy standby cluster: leader %q", w.leaderName())
	}
	first := w.leaderName()
	a, b := w.otherThan(first), w.otherThan(first, w.otherThan(first))
	w.run(2*time.Second, func() bool { return false })
	got, mark := w.calls(0)
	want := sortedCalls([]string{first + " on_start standby_leader", a + " on_start replica", b + " on_start replica"})
	if !slices.Equal(sortedCalls(got), want) {
		t.Errorf("bootstrap: %q, want %q", got, want)
	}

	w.stop(first)
	w.mu.Lock()
	w.nodes[first].pg.stopLocked("immediate")
	w.mu.Unlock()
	if !w.run(30*time.Second, func() bool {
		l := w.leaderName()
		return l != "" && l != first && w.upstreamOf(l) == "remote" && w.memberRole(l) == "standby_leader" &&
			len(w.streamingReplicasOf(l)) == 1
	}) {
		t.Fatalf("no new standby leader: leader %q", w.leaderName())
	}
	winner := w.leaderName()
	other := w.otherThan(first, winner)
	w.run(2*time.Second, func() bool { return false })
	got, _ = w.calls(mark)
	want = sortedCalls([]string{winner + " on_role_change standby_leader", other + " on_reload replica"})
	if !slices.Equal(sortedCalls(got), want) {
		t.Errorf("failover: %q, want %q", got, want)
	}
	w.noViolations(t)
}
