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

// Quorum commit (synchronous_mode: quorum, compat 4.1.4) on the simulated
// cluster: 4 nodes, synchronous_node_count 2.

// quorumWorld boots pg1..pg4 with compat 4.1.4, turns quorum mode on and
// waits for ANY 2 of the three replicas in the GUC and quorum 1 in the key.
func quorumWorld(t *testing.T) (w *world, leader string, voters []string) {
	t.Helper()
	w = newWorld(t, "pg1", "pg2", "pg3", "pg4")
	w.compat = cluster.Compat4
	w.start(w.names...)
	if !w.run(30*time.Second, func() bool {
		l := w.leaderName()
		return l != "" && slices.Equal(w.writable(), []string{l}) && len(w.streamingReplicasOf(l)) == 3
	}) {
		t.Fatalf("no healthy 4-node cluster: leader %q writable %v", w.leaderName(), w.writable())
	}
	w.mu.Lock()
	w.syncMode, w.quorum = true, true
	w.mu.Unlock()
	leader = w.leaderName()
	patch(t, w, leader, map[string]any{"synchronous_mode": "quorum", "synchronous_node_count": 2})
	voters = slices.DeleteFunc(slices.Clone(w.names), func(n string) bool { return n == leader })
	want := fmt.Sprintf("ANY 2 (%s)", strings.Join(voters, ","))
	if !w.run(10*time.Second, func() bool { return w.quorumKeyIs(leader, 1, voters...) && w.ssnOf(leader) == want }) {
		t.Fatalf("quorum mode: key %s, GUC %q; want %s quorum 1 of %v and %q", w.quorumKeyString(), w.ssnOf(leader), leader, voters, want)
	}
	return w, leader, voters
}

// quorumKeyIs reports a sync key naming leader, quorum q and exactly voters.
func (w *world) quorumKeyIs(leader string, q int, voters ...string) bool {
	defer w.lockFn()()
	if w.sync == nil || w.sync.Leader != leader || w.sync.Quorum == nil || *w.sync.Quorum != q {
		return false
	}
	got := w.sync.Standbys()
	slices.Sort(got)
	want := slices.Clone(voters)
	slices.Sort(want)
	return slices.Equal(got, want)
}

func (w *world) quorumKeyString() string {
	defer w.lockFn()()
	if w.sync == nil {
		return "<none>"
	}
	q := "absent"
	if w.sync.Quorum != nil {
		q = fmt.Sprint(*w.sync.Quorum)
	}
	return fmt.Sprintf("{%s %v quorum %s}", w.sync.Leader, w.sync.Standbys(), q)
}

func TestSimQuorumLeaderAndOneVoterLost(t *testing.T) {
	w, l, voters := quorumWorld(t)
	gone := voters[0]
	w.lose(l, gone)
	if !w.run(20*time.Second, w.newLeaderWritable(l)) {
		t.Fatalf("no new primary after losing %s and %s: key %s", l, gone, w.quorumKeyString())
	}
	nl := w.leaderName()
	if nl == gone || !slices.Contains(voters, nl) {
		t.Fatalf("%s was promoted", nl)
	}
	rest := slices.DeleteFunc(slices.Clone(voters), func(n string) bool { return n == nl || n == gone })
	if !w.run(10*time.Second, func() bool {
		return w.quorumKeyIs(nl, 0, rest...) && w.ssnOf(nl) == "ANY 1 ("+strings.Join(rest, ",")+")"
	}) {
		t.Fatalf("after the promotion of %s: key %s GUC %q; want quorum 0 of %v", nl, w.quorumKeyString(), w.ssnOf(nl), rest)
	}
	w.noViolations(t)
}

func TestSimQuorumTooFewVotesNoPromotion(t *testing.T) {
	w, l, voters := quorumWorld(t)
	// quorum 1: a candidate needs itself and one more of the voters; with
	// only one voter left nobody may take over (it could miss a commit
	// acknowledged by the two lost ones).
	w.lose(l, voters[0], voters[1])
	last := voters[2]
	if w.run(15*time.Second, func() bool { return w.leaderName() == last || len(w.writable()) > 0 }) {
		t.Fatalf("%s took over alone: leader %q writable %v", last, w.leaderName(), w.writable())
	}
	if !strings.Contains(w.logs.String(), "quorum not reached") {
		t.Error("the candidate did not say why it did not take over")
	}
	// A lost voter comes back: the two of them have the votes.
	w.start(voters[1])
	if !w.run(20*time.Second, func() bool { nl := w.leaderName(); return nl != "" && slices.Equal(w.writable(), []string{nl}) }) {
		t.Fatalf("no primary after %s came back: key %s", voters[1], w.quorumKeyString())
	}
	if nl := w.leaderName(); nl != last && nl != voters[1] {
		t.Fatalf("%s was promoted", nl)
	}
	w.noViolations(t)
}

func TestSimQuorumSwitchoverToAVoter(t *testing.T) {
	w, l, voters := quorumWorld(t)
	to := voters[len(voters)-1]
	answer := w.async(t, func(ctx context.Context) (cluster.OpResult, error) {
		return w.nodes[l].node.Switchover(ctx, SwitchoverRequest{Leader: l, Candidate: to})
	})
	if !w.run(10*time.Second, func() bool { return w.leaderName() == to && slices.Equal(w.writable(), []string{to}) }) {
		t.Fatalf("no switchover to %s: leader %q writable %v", to, w.leaderName(), w.writable())
	}
	if r := answer(); r.kind != "done" {
		t.Errorf("answer %s %q", r.kind, r.text)
	}
	rest := slices.DeleteFunc(slices.Clone(w.names), func(n string) bool { return n == to })
	want := fmt.Sprintf("ANY 2 (%s)", strings.Join(rest, ","))
	if !w.run(10*time.Second, func() bool { return w.quorumKeyIs(to, 1, rest...) && w.ssnOf(to) == want }) {
		t.Fatalf("after the switchover: key %s GUC %q; want %s quorum 1 of %v and %q", w.quorumKeyString(), w.ssnOf(to), to, rest, want)
	}
	w.noViolations(t)
}
