//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgnoded/pgnoded/internal/exporter"
	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// promStagedParams are the postgresql.parameters the golden lists were staged with
// (internal/exporter's stagePG15): pg_query, pg_func and a logical slot need them.
const promStagedParams = `    shared_preload_libraries: pg_stat_statements
    track_functions: all
    wal_level: logical
    track_io_timing: "on"`

// promAppPassword is the password of the non-superuser role app that
// promStageActivity runs statements as (pg_query leaves out the superuser's).
const promAppPassword = "itest-app"

// promStageObjects creates on primary p the objects the golden lists' collectors
// report on (internal/exporter/testdata/golden_staging.sql, as internal/exporter's
// stagePG15 does); they replicate to the others.
func promStageObjects(t testing.TB, p *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := p.Conn(ctx)
	if err != nil {
		t.Fatalf("connect to primary %s: %v", p.Name, err)
	}
	defer conn.Close(ctx)
	stmts := testenv.SQLFile(t, filepath.Join("..", "internal", "exporter", "testdata", "golden_staging.sql"))
	for _, stmt := range append(stmts, "ALTER ROLE app PASSWORD '"+promAppPassword+"'", "ANALYZE") {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("stage on %s: %s: %v", p.Name, stmt, err)
		}
	}
}

// promStageActivity gives node n what only a session makes: statements and function
// calls by role app, a transaction left open until the test ends, and, on a primary,
// a logical slot (slots are not carried over a failover).
func promStageActivity(t testing.TB, n *Node, primary bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := strings.Replace(strings.Replace(n.DSN(), "user=postgres", "user=app", 1), "password="+superPassword, "password="+promAppPassword, 1)
	app, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to %s as app: %v", n.Name, err)
	}
	for i := range 10 {
		if _, err := app.Exec(ctx, "SELECT count(*) FROM t1 WHERE id > $1", i); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		if _, err := app.Exec(ctx, "SELECT f1()"); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
	}
	// function statistics reach pg_stat_user_functions as the session exits
	if err := app.Close(ctx); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	if primary {
		su, err := n.Conn(ctx)
		if err != nil {
			t.Fatalf("connect to %s: %v", n.Name, err)
		}
		_, err = su.Exec(ctx, "SELECT pg_create_logical_replication_slot('logical_1', 'test_decoding')")
		su.Close(ctx)
		if err != nil {
			t.Fatalf("logical slot on %s: %v", n.Name, err)
		}
	}
	hold, err := n.Conn(ctx)
	if err != nil {
		t.Fatalf("connect to %s: %v", n.Name, err)
	}
	t.Cleanup(func() { _ = hold.Close(context.Background()) })
	if _, err := hold.Exec(ctx, "BEGIN"); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	if _, err := hold.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
}

// promSettle bounds how long Prometheus (scraping every second) may take to reflect a state.
const promSettle = 30 * time.Second

// TestPrometheusScrapesCluster runs a real Prometheus against a 3-node cluster's
// exporters (:9630-style) and Patroni-compatible /metrics, and checks through its
// query API the role metrics dashboards and alerts rely on, before and after a
// failover; after it, each live node serves the families of its new role's golden
// list (internal/exporter/testdata/golden_pg15_*.txt) but the activity-only ones.
func TestPrometheusScrapesCluster(t *testing.T) {
	c, p := bootClusterWith(t, Fast, func(o *nodeconf.Options) {
		o.PGParams = promStagedParams
	})
	promStageObjects(t, p)
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
	primaryList, replicaList := promGoldenList(t, "primary"), promGoldenList(t, "replica")
	promStageActivity(t, np, true)
	for _, n := range c.Others(p) {
		if n != np {
			promStageActivity(t, n, false)
		}
	}
	for _, n := range c.Others(p) {
		want, other, role := replicaList, primaryList, "replica"
		if n == np {
			want, other, role = primaryList, replicaList, "primary"
		}
		var served int
		promEventually(t, promSettle, n.Name+" serves the "+role+" golden list", func() error {
			var err error
			served, err = promCheckFamilies(prom, n.Name, want, other)
			return err
		})
		t.Logf("after failover: %s (%s) serves its golden list's %d families (activity-only ones excused); Prometheus holds %d metric names for it", n.Name, role, len(want), served)
	}
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

// promGoldenList reads the exporter's golden family list for a PostgreSQL 15 role.
func promGoldenList(t testing.TB, role string) []exporter.ListedFamily {
	t.Helper()
	path := filepath.Join("..", "internal", "exporter", "testdata", "golden_pg15_"+role+".txt")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	list, err := exporter.ReadFamilyList(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return list
}

// promCheckFamilies checks, through Prometheus' query API, that node ins's exporter
// (job pgsql) has live series of every family on want but the activity-only ones,
// none of a family only on other (the other role's list) and no pg_* family off
// want. It returns how many metric names Prometheus holds for ins.
func promCheckFamilies(prom *PromServer, ins string, want, other []exporter.ListedFamily) (int, error) {
	s, err := prom.Query(fmt.Sprintf(`count by (__name__) ({job="pgsql",ins=%q})`, ins))
	if err != nil {
		return 0, err
	}
	have := map[string]bool{}
	for _, x := range s {
		have[x.Labels["__name__"]] = true
	}
	wanted := map[string]bool{}
	var missing []string
	for _, f := range want {
		wanted[f.Name] = true
		if exporter.ActivityOnly(f.Name) {
			continue
		}
		for _, name := range f.SeriesNames() {
			if !have[name] {
				missing = append(missing, name)
			}
		}
	}
	var stale []string
	for _, f := range other {
		if wanted[f.Name] {
			continue
		}
		for _, name := range f.SeriesNames() {
			if have[name] {
				stale = append(stale, name)
			}
		}
	}
	// every pg_* name is on the list (pgnoded_* ones beyond it are the daemon's own)
	listed := map[string]bool{}
	for _, f := range want {
		for _, name := range f.SeriesNames() {
			listed[name] = true
		}
	}
	var unlisted []string
	for name := range have {
		if strings.HasPrefix(name, "pg_") && !listed[name] && !slices.Contains(stale, name) {
			unlisted = append(unlisted, name)
		}
	}
	slices.Sort(unlisted)
	if len(missing) > 0 || len(stale) > 0 || len(unlisted) > 0 {
		return len(have), fmt.Errorf("%s: %d families of its role missing [%s]; %d of the other role's served [%s]; %d not on its list [%s]",
			ins, len(missing), strings.Join(missing, " "), len(stale), strings.Join(stale, " "),
			len(unlisted), strings.Join(unlisted, " "))
	}
	return len(have), nil
}
