package exporter

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// TestPipelineStatementTimeouts runs the custom collectors (a failing query, a
// slow one under its own 0.2 s timeout, predicates) in pipelines: each fails
// alone, the slow one is cut by postgres at its timeout, and the connection
// goes back to the pool with the session's own statement_timeout. The scrape
// deadline is far beyond the bound on the scrape's duration, so that only
// postgres' statement_timeout can cut t_slow's 30 s sleep in time.
func TestPipelineStatementTimeouts(t *testing.T) {
	pg := testenv.StartPostgres(t)
	path := writeCollectors(t, customCollectors)
	e := newTestExporter(t, pg, func(c *Config) { c.CollectorFile = path; c.ScrapeTimeout = 60 * time.Second }, nil)
	start := time.Now()
	fams := gather(t, e.Registry())
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("scrape took %v: the slow collector was not cut at its timeout", took)
	}
	for _, name := range []string{"t_ok_v", "t_after_v", "t_pred_true_v"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	for _, name := range []string{"t_bad_v", "t_slow_v", "t_pred_false_v", "t_pred_bad_v"} {
		if fams[name] != nil {
			t.Errorf("%s served", name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got string
	err := e.pool.query(ctx, "SHOW statement_timeout", func(rr *pgconn.ResultReader) error {
		for rr.NextRow() {
			got = string(rr.Values()[0])
		}
		return nil
	})
	if err != nil || got != "0" {
		t.Errorf("statement_timeout after a scrape = %q (%v), want the session's 0", got, err)
	}
}

// TestShareJobs deals jobs out by their last durations: the longest first,
// each to the least loaded share, every job exactly once, in order per share.
func TestShareJobs(t *testing.T) {
	cost := map[string]time.Duration{"a": 50, "b": 10, "c": 40, "d": 10, "e": 0}
	var jobs []*compiled
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		jobs = append(jobs, &compiled{spec: &Collector{Branch: n}})
	}
	shares := shareJobs(jobs, 2, func(cc *compiled) time.Duration { return cost[cc.spec.Branch] })
	got := fmt.Sprint(names(shares[0].jobs), names(shares[1].jobs), shares[0].index, shares[1].index)
	if want := "[a e] [b c d] [0 4] [1 2 3]"; got != want {
		t.Errorf("shares %s, want %s", got, want)
	}
	if one := shareJobs(jobs, 1, func(*compiled) time.Duration { return 0 }); len(one[0].jobs) != 5 {
		t.Errorf("one share holds %d jobs, want 5", len(one[0].jobs))
	}
}

func names(jobs []*compiled) []string {
	var out []string
	for _, cc := range jobs {
		out = append(out, cc.spec.Branch)
	}
	return out
}

// TestGatedCollectorsInDiscoveredDatabases: per-database collectors gated on
// an extension or a schema run in a discovered database exactly when it has
// them, their catalog facts read in the database's first pipeline, and again
// when the facts expire.
func TestGatedCollectorsInDiscoveredDatabases(t *testing.T) {
	pg := testenv.StartPostgres(t)
	execSQL(t, pg, "", "CREATE DATABASE app")
	execSQL(t, pg, "app", "CREATE SCHEMA monitor")
	path := writeCollectors(t, `
g_plain:
  query: SELECT 1 AS v
  metrics: [ { v: { usage: GAUGE, description: every database } } ]
g_ext:
  query: SELECT 1 AS v
  tags: ["extension:plpgsql"]
  metrics: [ { v: { usage: GAUGE, description: plpgsql is everywhere } } ]
g_schema:
  query: SELECT 1 AS v
  tags: ["schema:monitor"]
  metrics: [ { v: { usage: GAUGE, description: app only } } ]
g_missing:
  query: SELECT 1 AS v
  tags: ["extension:no_such_extension"]
  metrics: [ { v: { usage: GAUGE, description: nowhere } } ]
`)
	clock := newFakeClock()
	e := newTestExporter(t, pg, func(c *Config) { c.CollectorFile = path; c.Now = clock.Now }, nil)
	for round := range 2 {
		fams := gather(t, e.Registry())
		for name, dbs := range map[string][]string{"g_plain_v": {"app", "postgres"}, "g_ext_v": {"app", "postgres"}, "g_schema_v": {"app"}} {
			f := fams[name]
			if f == nil {
				t.Errorf("round %d: %s missing", round, name)
				continue
			}
			for _, db := range dbs {
				if !f.has(map[string]string{"datname": db}) {
					t.Errorf("round %d: %s has no series for %s", round, name, db)
				}
			}
			if len(f.series) != len(dbs) {
				t.Errorf("round %d: %s has %d series, want %d", round, name, len(f.series), len(dbs))
			}
		}
		if fams["g_missing_v"] != nil {
			t.Errorf("round %d: g_missing served", round)
		}
		clock.Advance(time.Hour) // caches and catalog facts expire
	}
}

// TestPipelinePreparedStatementsTracked: a statement prepared in a pipeline
// whose run then fails (t_slow, cut at its timeout at every scrape) stays
// known on its connection and is reused, not prepared again under a new name
// at each scrape: every connection holds on the server exactly the prepared
// statements it names.
func TestPipelinePreparedStatementsTracked(t *testing.T) {
	pg := testenv.StartPostgres(t)
	path := writeCollectors(t, customCollectors)
	clock := newFakeClock()
	e := newTestExporter(t, pg, func(c *Config) { c.CollectorFile = path; c.Now = clock.Now }, nil)
	for range 3 {
		gather(t, e.Registry())
		clock.Advance(time.Hour) // every cache expires: every collector runs again
	}
	var conns []*pgconn.PgConn
	for conn := e.pool.acquireIdle(); conn != nil; conn = e.pool.acquireIdle() {
		conns = append(conns, conn)
	}
	defer func() {
		for _, conn := range conns {
			e.pool.release(conn)
		}
	}()
	if len(conns) == 0 {
		t.Fatal("no idle connection after the scrapes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, conn := range conns {
		rr := conn.ExecParams(ctx, "SELECT count(*) FROM pg_prepared_statements", nil, nil, nil, nil)
		var server string
		for rr.NextRow() {
			server = string(rr.Values()[0])
		}
		if _, err := rr.Close(); err != nil {
			t.Fatal(err)
		}
		if known := strconv.Itoa(len(statementsOf(conn).names)); server != known {
			t.Errorf("connection %d: %s prepared statements on the server, %s known", i, server, known)
		}
	}
}
