//go:build integration

package test

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// promSettle bounds how long Prometheus (scraping every second) may take to reflect a state.
const promSettle = 30 * time.Second

// TestPrometheusScrapesCluster runs a real Prometheus against a 3-node cluster's
// exporters (:9630-style) and Patroni-compatible /metrics, and checks through its
// query API the role metrics dashboards and alerts rely on, before and after a failover.
func TestPrometheusScrapesCluster(t *testing.T) {
	c, p := bootCluster(t, Fast)
	prom := StartPrometheus(t, c)

	promEventually(t, promSettle, "all 6 targets scraped and up", func() error {
		return promWantInstances(prom, "up == 1", 6, nil)
	})
	promEventually(t, promSettle, "roles as seen by Prometheus", func() error {
		return promCheckRoles(prom, p, nil)
	})
	t.Logf("before failover: primary %s seen by Prometheus with pg_in_recovery 0, pgnoded_leader 1, patroni_primary 1", p.Name)

	killedAt := time.Now()
	p.KillPgnoded()
	p.KillPostmaster()
	np := c.WaitPrimary(time.Duration(Fast.TTL)*time.Second+60*time.Second, p)
	t.Logf("failover: %s answers /primary %.1fs after the kill", np.Name, time.Since(killedAt).Seconds())

	promEventually(t, promSettle, "old primary's targets down", func() error {
		s, err := prom.Query(fmt.Sprintf(`up{ins=%q}`, p.Name))
		if err != nil {
			return err
		}
		if len(s) != 2 || s[0].Value != 0 || s[1].Value != 0 {
			return fmt.Errorf("up{ins=%q} = %v, want two series at 0", p.Name, s)
		}
		return nil
	})
	promEventually(t, promSettle, "new primary reports pg_in_recovery 0", func() error {
		s, err := prom.Query(fmt.Sprintf(`pg_in_recovery{ins=%q}`, np.Name))
		if err != nil {
			return err
		}
		if len(s) != 1 || s[0].Value != 0 {
			return fmt.Errorf("pg_in_recovery{ins=%q} = %v, want one series at 0", np.Name, s)
		}
		return nil
	})
	promEventually(t, promSettle, "roles after failover", func() error {
		return promCheckRoles(prom, np, p)
	})
	t.Logf("Prometheus shows %s as primary %.1fs after the kill", np.Name, time.Since(killedAt).Seconds())
	if s, err := prom.Query(fmt.Sprintf(`pgnoded_failovers_total{ins=%q}`, np.Name)); err == nil {
		t.Logf("pgnoded_failovers_total on %s: %v", np.Name, s)
	}
	if s, err := prom.Query(fmt.Sprintf(`pgnoded_last_failover_seconds{ins=%q}`, np.Name)); err == nil {
		for _, x := range s {
			t.Logf("pgnoded_last_failover_seconds{phase=%q} on %s: %.3f", x.Labels["phase"], np.Name, x.Value)
		}
	}
}

// promCheckRoles asserts the Prometheus view of a cluster whose primary is p; gone,
// when not nil, is a node that is down and must have no live series.
func promCheckRoles(prom *PromServer, p, gone *Node) error {
	live := 3
	if gone != nil {
		live = 2
	}
	if err := promWantInstances(prom, "pg_up == 1", live, nil); err != nil {
		return err
	}
	if err := promWantInstances(prom, "pg_in_recovery == 0", 1, []string{p.Name}); err != nil {
		return err
	}
	s, err := prom.Query("count(pg_in_recovery == 1)")
	if err != nil {
		return err
	}
	if len(s) != 1 || s[0].Value != float64(live-1) {
		return fmt.Errorf("count(pg_in_recovery == 1) = %v, want %d", s, live-1)
	}
	// Patroni 4 names it patroni_primary; 3.x also writes patroni_master.
	if err := promWantInstances(prom, "max by (ins) (patroni_primary == 1 or patroni_master == 1)", 1, []string{p.Name}); err != nil {
		return err
	}
	if err := promWantInstances(prom, "pgnoded_leader", live, nil); err != nil {
		return err
	}
	return promWantInstances(prom, "pgnoded_leader == 1", 1, []string{p.Name})
}

// promWantInstances checks that expr returns n series and, when ins is given, that
// their `ins` labels are exactly ins.
func promWantInstances(prom *PromServer, expr string, n int, ins []string) error {
	s, err := prom.Query(expr)
	if err != nil {
		return err
	}
	got := promInstances(s)
	slices.Sort(got)
	if len(s) != n {
		return fmt.Errorf("%s: %d series (ins %v), want %d", expr, len(s), got, n)
	}
	if ins != nil && !slices.Equal(got, ins) {
		return fmt.Errorf("%s: ins %v, want %v", expr, got, ins)
	}
	return nil
}
