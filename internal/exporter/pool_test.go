package exporter

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// TestPreparedStatementsSurviveDDL: collector queries are prepared once per
// connection and reused; a table change that alters what a prepared query
// returns is absorbed (prepared again), not reported as a failure.
func TestPreparedStatementsSurviveDDL(t *testing.T) {
	pg := testenv.StartPostgres(t)
	execSQL(t, pg, "", "CREATE TABLE t_ddl (a int)", "INSERT INTO t_ddl VALUES (1)")
	path := writeCollectors(t, `
t_ddl:
  query: SELECT * FROM t_ddl
  ttl: 10
  tags: [cluster]
  metrics:
    - a: { usage: GAUGE, description: a column }
`)
	clock := newFakeClock()
	e := newTestExporter(t, pg, func(c *Config) {
		c.CollectorFile = path
		c.Now = clock.Now
		c.PoolSize, c.Concurrency = 2, 1 // one scrape connection: the statement is reused on it
	}, nil)
	gather(t, e.Registry())
	clock.Advance(time.Minute)
	gather(t, e.Registry())
	if !preparedOnIdle(e, "SELECT * FROM t_ddl") {
		t.Error("the collector query is not prepared on the pooled connection")
	}
	execSQL(t, pg, "", "ALTER TABLE t_ddl ADD COLUMN b int")
	clock.Advance(time.Minute)
	fams := gather(t, e.Registry())
	sel := map[string]string{"datname": "postgres", "query": "t_ddl"}
	if errs, _ := fams["pg_exporter_query_scrape_error_count"].value(sel); errs != 0 {
		t.Errorf("t_ddl failed %v times after ALTER TABLE, want 0", errs)
	}
	if v, ok := fams["t_ddl_a"].value(map[string]string{}); !ok || v != 1 {
		t.Errorf("t_ddl_a = %v, %v after ALTER TABLE", v, ok)
	}
}

// preparedOnIdle reports whether an idle connection of the main pool holds sql prepared.
func preparedOnIdle(e *Exporter, sql string) bool {
	p := e.pg.main.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ic := range p.idle {
		if _, ok := statementsOf(ic.conn).names[sql]; ok {
			return true
		}
	}
	return false
}
