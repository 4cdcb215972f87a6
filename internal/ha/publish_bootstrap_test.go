package ha

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// TestLeaderUntilZeroWhileBootstrapping: /primary trusts no hold while the
// bootstrap long action runs, although pgnoded holds the key from its start
// and postgres may already run as a primary (a custom bootstrap's recovery,
// then the roles and post_bootstrap); it does once the bootstrap ended.
func TestLeaderUntilZeroWhileBootstrapping(t *testing.T) {
	until := t0.Add(30 * time.Second)
	n := newLoop(Config{Name: "pg1"}, Deps{Store: &leaseOnly{until: until}})
	n.st.lease.view.Leader = &cluster.LeaderKey{Name: "pg1"}
	n.st.pg.obs = cluster.PGObservation{State: cluster.StateRunning, Running: true, Ready: true}
	n.st.long.run = &longRun{kind: plan.LongBootstrap, since: t0}
	if got := n.leaderUntil(); !got.IsZero() {
		t.Errorf("during the bootstrap: leaderUntil %v, want zero (/primary 503)", got)
	}
	n.st.long.run = &longRun{kind: plan.LongStartPrimary, since: t0}
	if got := n.leaderUntil(); !got.Equal(until) {
		t.Errorf("another long action: leaderUntil %v, want the lease %v", got, until)
	}
	n.st.long.run = nil
	if got := n.leaderUntil(); !got.Equal(until) {
		t.Errorf("after the bootstrap: leaderUntil %v, want the lease %v", got, until)
	}
}
