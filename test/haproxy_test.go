//go:build integration

package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestHAProxyRoutesServicesAndFollowsFailover puts a real HAProxy with Pigsty's primary,
// replica and offline services in front of a 3-node cluster, checks where client
// connections land, then kills the primary node and checks that the primary port
// follows the new primary without ever landing on a node in recovery.
func TestHAProxyRoutesServicesAndFollowsFailover(t *testing.T) {
	c, p := bootCluster(t, Fast)
	h := StartHAProxy(t, c, p)
	byPort := map[int]*Node{}
	for _, n := range c.Nodes {
		byPort[n.PGPort] = n
	}

	view := h.WaitStates(30*time.Second, "before failover", expectedView(c, p, p, nil))
	t.Logf("HAProxy view before failover (primary %s):%s", p.Name, formatStates(view))

	ctx := context.Background()
	for i := 0; i < 4; i++ {
		l := mustLand(ctx, t, h, "primary")
		if l.Port != p.PGPort || l.InRecovery {
			t.Errorf("primary port landed on port %d in_recovery=%v, want primary %s (port %d)", l.Port, l.InRecovery, p.Name, p.PGPort)
		}
	}
	checkReplicaLandings(ctx, t, h, "replica", 8, byPort, p, c.Others(p))
	checkReplicaLandings(ctx, t, h, "offline", 6, byPort, p, c.Others(p))

	// Fail over: kill -9 pgnoded and the postmaster of the primary while clients keep connecting.
	watch := WatchStates(t, h)
	checks := WatchChecks(t, c, "/primary", "/read-only", "/replica")
	poll := PollLandings(t, h, "primary")
	WaitFor(t, 10*time.Second, "primary port serving before the kill", func() bool { return poll.CountOn(p.PGPort) >= 3 })
	killedAt := time.Now()
	p.KillPgnoded()
	p.KillPostmaster()
	np := c.WaitPrimary(time.Duration(Fast.TTL)*time.Second+60*time.Second, p)
	apiAt := time.Now()
	var first Landing
	WaitFor(t, 60*time.Second, "primary port reaches the new primary", func() bool {
		var ok bool
		first, ok = poll.FirstOn(np.PGPort)
		return ok
	})
	WaitFor(t, 15*time.Second, "several connections on the new primary", func() bool { return poll.CountOn(np.PGPort) >= 10 })
	landings, failures := poll.Stop()

	var violations []string
	for _, l := range landings {
		switch {
		case l.InRecovery:
			violations = append(violations, fmt.Sprintf("%.2fs: port %d in recovery", l.At.Sub(killedAt).Seconds(), l.Port))
		case l.At.After(first.At) && l.Port != np.PGPort:
			violations = append(violations, fmt.Sprintf("%.2fs: port %d after the new primary was reached", l.At.Sub(killedAt).Seconds(), l.Port))
		}
	}
	if len(violations) > 0 {
		t.Errorf("primary port landed on a wrong node %d times: %s", len(violations), strings.Join(violations, "; "))
	}
	t.Logf("failover: new primary %s answered /primary 200 at +%.2fs; primary port first reached it at +%.2fs after the kill "+
		"(%d successful connections through the primary port, %d failed attempts, %d in recovery)",
		np.Name, apiAt.Sub(killedAt).Seconds(), first.At.Sub(killedAt).Seconds(), len(landings), failures, len(violations))

	view = h.WaitStates(60*time.Second, "after failover", expectedView(c, np, p, p))
	t.Logf("HAProxy view after failover (primary %s, %s dead):%s", np.Name, p.Name, formatStates(view))
	reportChanges(t, watch.Stop(), killedAt, p, np)
	reportChecks(t, checks.Stop(), killedAt, p, np, otherReplica(c, p, np))

	// After the failover the new primary serves reads too (its /read-only is 200 and its
	// backup flag is the inventory's); the offline port keeps to the remaining replica.
	checkReplicaLandings(ctx, t, h, "replica", 6, byPort, p, []*Node{np, otherReplica(c, p, np)})
	checkReplicaLandings(ctx, t, h, "offline", 4, byPort, p, []*Node{otherReplica(c, p, np)})
}

// expectedView is HAProxy's server states once checks settle: primary holds /primary,
// every live node passes /read-only (inventoryPrimary is the replica service's backup),
// live non-primaries pass /replica, dead (may be nil) fails everything.
func expectedView(c *Cluster, primary, inventoryPrimary, dead *Node) map[string]map[string]string {
	st := func(up bool) string {
		if up {
			return "UP"
		}
		return "DOWN"
	}
	want := map[string]map[string]string{"primary": {}, "replica": {}, "offline": {}}
	for _, n := range c.Nodes {
		alive := n != dead
		want["primary"][n.Name] = st(n == primary)
		want["replica"][n.Name] = st(alive)
		if n == inventoryPrimary {
			want["replica"][n.Name] += " (backup)"
		}
		want["offline"][n.Name] = st(alive && n != primary)
	}
	return want
}

// otherReplica is the node that is neither the old nor the new primary.
func otherReplica(c *Cluster, oldP, newP *Node) *Node {
	for _, n := range c.Nodes {
		if n != oldP && n != newP {
			return n
		}
	}
	return nil
}

func mustLand(ctx context.Context, t *testing.T, h *HAProxy, service string) Landing {
	t.Helper()
	l, err := h.Land(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// checkReplicaLandings opens n connections through service and checks that each lands on
// one of allowed (in recovery unless it is the current primary) and that roundrobin
// reaches every allowed node.
func checkReplicaLandings(ctx context.Context, t *testing.T, h *HAProxy, service string, n int, byPort map[int]*Node, oldPrimary *Node, allowed []*Node) {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		l := mustLand(ctx, t, h, service)
		node := byPort[l.Port]
		if node == nil {
			t.Errorf("%s port landed on unknown port %d", service, l.Port)
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == node
		}
		if !ok {
			t.Errorf("%s port landed on %s (in_recovery=%v), want one of %s", service, node.Name, l.InRecovery, haNodeNames(allowed))
		}
		seen[node.Name]++
	}
	if len(seen) != len(allowed) {
		t.Errorf("%s port: %d connections reached %v, want roundrobin across %s", service, n, seen, haNodeNames(allowed))
	}
	t.Logf("%s port: %d connections landed %v", service, n, seen)
}

func haNodeNames(nodes []*Node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.Name)
	}
	return strings.Join(s, ",")
}

// reportChanges logs HAProxy's state changes relative to the kill and fails on any sign
// that a node other than the new primary passed the /primary check.
func reportChanges(t *testing.T, changes []stateChange, killedAt time.Time, oldP, newP *Node) {
	t.Helper()
	var b strings.Builder
	for _, ch := range changes {
		fmt.Fprintf(&b, "\n  %+6.2fs %-8s %s: %s -> %s", ch.At.Sub(killedAt).Seconds(), ch.Service, ch.Server, ch.From, ch.To)
		if ch.Service == "primary" && ch.Server != newP.Name && ch.Server != oldP.Name && ch.To != "DOWN" {
			t.Errorf("%s passed a /primary check during the failover (primary service: %s -> %s)", ch.Server, ch.From, ch.To)
		}
	}
	t.Logf("HAProxy state changes relative to the kill:%s", b.String())
}

// reportChecks logs how each node's /primary, /read-only and /replica answers changed
// around the kill, fails when a node other than the new primary answered /primary 200 or
// the new primary answered /replica 200 after taking over, and notes a flapping replica.
func reportChecks(t *testing.T, changes []stateChange, killedAt time.Time, oldP, newP, replica *Node) {
	t.Helper()
	var b strings.Builder
	var promotedAt time.Time
	for _, ch := range changes {
		fmt.Fprintf(&b, "\n  %+6.2fs %-10s %s: %s -> %s", ch.At.Sub(killedAt).Seconds(), ch.Service, ch.Server, ch.From, ch.To)
		switch {
		case ch.Service == "/primary" && ch.To == "200" && ch.Server != newP.Name:
			t.Errorf("%s answered /primary 200 at %+.2fs; only %s should", ch.Server, ch.At.Sub(killedAt).Seconds(), newP.Name)
		case ch.Service == "/primary" && ch.To == "200" && promotedAt.IsZero():
			promotedAt = ch.At
		case ch.Service == "/replica" && ch.To == "200" && ch.Server == newP.Name && !promotedAt.IsZero():
			t.Errorf("new primary %s answered /replica 200 at %+.2fs, after taking over", ch.Server, ch.At.Sub(killedAt).Seconds())
		case ch.Server == replica.Name && ch.Service != "/primary":
			t.Logf("NOTE: replica %s changed its %s answer during the failover (%s -> %s at %+.2fs); HAProxy would cut its read sessions",
				replica.Name, ch.Service, ch.From, ch.To, ch.At.Sub(killedAt).Seconds())
		}
	}
	t.Logf("REST check answers (OPTIONS, sampled every 200 ms) relative to the kill:%s", b.String())
}
