package ha

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Synchronous replication on the simulated cluster. Two invariants are
// checked at every sync-key write, every reload and every step: a standby the
// sync key lists is listed in its leader's synchronous_standby_names (the key
// never promises more than postgres waits for: added to the GUC first,
// removed from the key first), and in synchronous mode a promotion happens
// only after the promoting node wrote itself into the sync key.

// checkSyncLocked records a sync key listing a standby its leader's postgres does not wait for.
func (w *world) checkSyncLocked(where string) {
	if w.sync == nil || w.sync.SyncStandby == nil || w.quorum {
		return // quorum mode: voters may outlive the GUC (plan/quorum.go checks its own invariant)
	}
	sn, ok := w.nodes[w.sync.Leader]
	if !ok || !sn.pg.writable() {
		return
	}
	for _, name := range strings.Split(*w.sync.SyncStandby, ",") {
		if !ssnLists(sn.pg.ssn(), name) {
			w.violations = append(w.violations, fmt.Sprintf("%s at %s: the sync key lists %s, %s's synchronous_standby_names is %q",
				where, w.clock.Now().Sub(t0), name, w.sync.Leader, sn.pg.ssn()))
		}
	}
}

// checkPromoteSyncLocked records a promotion in synchronous mode by a node the sync key does not name as leader.
func (w *world) checkPromoteSyncLocked(name string) {
	if w.syncMode && (w.sync == nil || w.sync.Leader != name) {
		w.violations = append(w.violations, fmt.Sprintf("%s promoted at %s while the sync key is %+v",
			name, w.clock.Now().Sub(t0), w.sync))
	}
}

// syncKeyNow is the sync key's leader and standby list ("-" when absent, "" standby for null).
func (w *world) syncKeyNow() (leader, standby string) {
	defer w.lockFn()()
	if w.sync == nil {
		return "-", ""
	}
	if w.sync.SyncStandby != nil {
		standby = *w.sync.SyncStandby
	}
	return w.sync.Leader, standby
}

func (w *world) ssnOf(name string) string {
	defer w.lockFn()()
	return w.nodes[name].pg.ssn()
}

func (w *world) hold(name string, on bool) {
	defer w.lockFn()()
	w.nodes[name].pg.hold = on
}

func patch(t *testing.T, w *world, via string, doc map[string]any) {
	t.Helper()
	if kind, body := cfgOutcome(w.nodes[via].node.PatchConfig(context.Background(), doc)); kind != "done" {
		t.Fatalf("PATCH %v: %s %s", doc, kind, body)
	}
}

// syncOn turns synchronous mode on and waits until the key lists a standby.
func syncOn(t *testing.T, w *world, extra map[string]any) (leader, standby string) {
	t.Helper()
	doc := map[string]any{"synchronous_mode": true}
	for k, v := range extra {
		doc[k] = v
	}
	w.mu.Lock()
	w.syncMode = true
	w.mu.Unlock()
	patch(t, w, w.names[0], doc)
	l := w.leaderName()
	if !w.run(5*time.Second, func() bool { ll, s := w.syncKeyNow(); return ll == l && s != "" }) {
		ll, s := w.syncKeyNow()
		t.Fatalf("sync key %q/%q, want %s with a standby", ll, s, l)
	}
	_, s := w.syncKeyNow()
	return l, s
}

func TestSimSyncAddsToTheGUCFirstAndPublishesOnConfirmation(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	others := slices.DeleteFunc(slices.Clone(w.names), func(n string) bool { return n == l })
	for _, n := range others {
		w.hold(n, true) // nobody replays: nobody can confirm
	}
	w.run(300*time.Millisecond, func() bool { return false }) // the primary writes on: the replicas fall behind
	patch(t, w, l, map[string]any{"synchronous_mode": true})
	w.mu.Lock()
	w.syncMode = true
	w.mu.Unlock()
	w.run(3*time.Second, func() bool { return false })
	leader, standby := w.syncKeyNow()
	guc := w.ssnOf(l)
	if leader != l || standby != "" {
		t.Fatalf("sync key %q/%q while no standby caught up; want %s with none", leader, standby, l)
	}
	if !slices.Contains(others, guc) {
		t.Fatalf("synchronous_standby_names %q, want one of %v listed before it is confirmed", guc, others)
	}
	released := w.clock.Now()
	w.hold(guc, false)
	if !w.run(3*time.Second, func() bool { _, s := w.syncKeyNow(); return s == guc }) {
		t.Fatalf("%s caught up but is not published", guc)
	}
	// Confirmation wakes on the short poll, not on the loop_wait tick (1 s here).
	if took := w.clock.Now().Sub(released); took > 700*time.Millisecond {
		t.Errorf("published %v after the standby caught up; the short poll should see it sooner", took)
	}
	// The sync standby goes away: the key is narrowed first, then the other
	// replica is listed and, once it caught up, published.
	w.hold(others[0], false)
	w.hold(others[1], false)
	w.lose(guc)
	other := others[0]
	if other == guc {
		other = others[1]
	}
	if !w.run(5*time.Second, func() bool { _, s := w.syncKeyNow(); return s == other && w.ssnOf(l) == other }) {
		ll, s := w.syncKeyNow()
		t.Fatalf("after %s stopped: sync key %q/%q, GUC %q; want %s", guc, ll, s, w.ssnOf(l), other)
	}
	w.noViolations(t)
}

// promotedAfterLoss loses the primary l and requires that the sync standby s,
// and only s, becomes the new writable primary.
func promotedAfterLoss(t *testing.T, w *world, l, s string) {
	t.Helper()
	w.lose(l)
	if !w.run(15*time.Second, w.newLeaderWritable(l)) {
		t.Fatal("no new primary after node loss")
	}
	if nl := w.leaderName(); nl != s {
		t.Fatalf("%s was promoted; only the sync standby %s may be", nl, s)
	}
}

func TestSimSyncNodeLossPromotesTheSyncStandbyAfterWritingTheKey(t *testing.T) {
	w := bootstrapped(t)
	l, s := syncOn(t, w, nil)
	promotedAfterLoss(t, w, l, s)
	if !w.run(5*time.Second, func() bool { ll, st := w.syncKeyNow(); return ll == s && st != "" && st != l }) {
		ll, st := w.syncKeyNow()
		t.Fatalf("sync key %q/%q after the promotion of %s", ll, st, s)
	}
	w.noViolations(t)
}

func TestSimSyncPromotionPostponedWhenTheKeyChangedUnderIt(t *testing.T) {
	w := bootstrapped(t)
	l, s := syncOn(t, w, nil)
	w.mu.Lock()
	w.failSync = map[string]int{s: 1}
	w.mu.Unlock()
	promotedAfterLoss(t, w, l, s)
	if !strings.Contains(w.logs.String(), "Postponing promotion because synchronous replication state was updated by somebody else") {
		t.Error("the failed compare did not postpone the promotion")
	}
	if ps := w.promotionsSince(t0); len(ps) != 1 || ps[0].name != s {
		t.Errorf("promotions %v, want one of %s", ps, s)
	}
	w.noViolations(t)
}

func TestSimSyncStrictAndModeOffRestoresTheOperatorsValue(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	patch(t, w, l, map[string]any{"postgresql": map[string]any{"parameters": map[string]any{"synchronous_standby_names": "operator"}}})
	w.run(2*time.Second, func() bool { return false })
	if got := w.ssnOf(l); got != "operator" {
		t.Fatalf("before synchronous mode: %q", got)
	}
	_, s := syncOn(t, w, map[string]any{"synchronous_mode_strict": true})
	if got := w.ssnOf(l); got != s {
		t.Fatalf("synchronous mode: GUC %q, want %s (the operator's value is overridden)", got, s)
	}
	// Strict: every replica gone, the GUC is * and the key keeps only the leader.
	for _, n := range w.names {
		if n != l {
			w.lose(n)
		}
	}
	if !w.run(5*time.Second, func() bool { ll, st := w.syncKeyNow(); return ll == l && st == "" && w.ssnOf(l) == "*" }) {
		ll, st := w.syncKeyNow()
		t.Fatalf("strict with no replica: key %q/%q GUC %q", ll, st, w.ssnOf(l))
	}
	patch(t, w, l, map[string]any{"synchronous_mode": false})
	w.mu.Lock()
	w.syncMode = false
	w.mu.Unlock()
	if !w.run(5*time.Second, func() bool { ll, _ := w.syncKeyNow(); return ll == "-" && w.ssnOf(l) == "operator" }) {
		ll, st := w.syncKeyNow()
		t.Fatalf("mode off: key %q/%q GUC %q; want the key deleted and the operator's value back", ll, st, w.ssnOf(l))
	}
	w.noViolations(t)
}

func TestSimSyncSwitchoverOnlyToTheSyncStandby(t *testing.T) {
	w := bootstrapped(t)
	l, s := syncOn(t, w, nil)
	other := w.otherThan(l, s)
	refused := func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[l].node.Switchover(ctx, SwitchoverRequest{Leader: l, Candidate: other})
	}
	if kind, text := opOutcome(refused(context.Background())); kind == "done" || !strings.Contains(text, "candidate name does not match with sync_standby") {
		t.Fatalf("switchover to the async replica %s: %s %q", other, kind, text)
	}
	answer := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[l].node.Switchover(ctx, SwitchoverRequest{Leader: l})
	})
	if !w.run(5*time.Second, func() bool { return w.leaderName() == s && slices.Equal(w.writable(), []string{s}) }) {
		t.Fatalf("no switchover to the sync standby %s: leader %q, writable %v", s, w.leaderName(), w.writable())
	}
	if r := answer(); r.kind != "done" {
		t.Errorf("answer %s %q", r.kind, r.text)
	}
	if !w.run(5*time.Second, func() bool { ll, st := w.syncKeyNow(); return ll == s && st != "" }) {
		ll, st := w.syncKeyNow()
		t.Fatalf("sync key %q/%q after the switchover to %s", ll, st, s)
	}
	w.noViolations(t)
}

func TestSimSyncDoubleFailureWaitsForTheSyncStandby(t *testing.T) {
	w := bootstrapped(t)
	l, s := syncOn(t, w, map[string]any{"synchronous_mode_strict": true})
	a := w.otherThan(l, s)
	w.lose(l, s)
	if w.run(15*time.Second, func() bool { ln := w.leaderName(); return len(w.writable()) > 0 || ln != "" && ln != l }) {
		t.Fatalf("the async replica %s took over: leader %q writable %v", a, w.leaderName(), w.writable())
	}
	w.start(s)
	if !w.run(15*time.Second, func() bool { return w.leaderName() == s && slices.Equal(w.writable(), []string{s}) }) {
		t.Fatalf("the sync standby %s did not take over when it came back: leader %q writable %v", s, w.leaderName(), w.writable())
	}
	if !w.run(5*time.Second, func() bool { ll, st := w.syncKeyNow(); return ll == s && st == a }) {
		ll, st := w.syncKeyNow()
		t.Fatalf("sync key %q/%q; want %s with %s", ll, st, s, a)
	}
	w.noViolations(t)
}
