package exporter

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// writeCollectors writes a collector file for a test and returns its path.
func writeCollectors(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "collectors.yml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const customCollectors = `
t_ok:
  query: SELECT 1 AS v
  tags: [cluster]
  metrics:
    - v: { usage: GAUGE, description: ok }
t_bad:
  query: SELECT * FROM no_such_table
  tags: [cluster]
  metrics:
    - v: { usage: GAUGE, description: bad }
t_slow:
  query: SELECT pg_sleep(30)::text AS s, 1 AS v
  timeout: 0.2
  tags: [cluster]
  metrics:
    - s: { usage: DISCARD }
    - v: { usage: GAUGE, description: slow }
t_after:
  query: SELECT 2 AS v
  tags: [cluster]
  metrics:
    - v: { usage: GAUGE, description: runs after the failures on the same pool }
t_future:
  query: SELECT 1 AS v
  min_version: 990000
  tags: [cluster]
  metrics:
    - v: { usage: GAUGE, description: never on this server }
t_old:
  query: SELECT 1 AS v
  max_version: 100000
  tags: [cluster]
  metrics:
    - v: { usage: GAUGE, description: never on this server }
t_replica:
  query: SELECT 1 AS v
  tags: [cluster, replica]
  metrics:
    - v: { usage: GAUGE, description: replica only }
t_pred_false:
  query: SELECT 1 AS v
  tags: [cluster]
  predicate_queries:
    - { name: yes, predicate_query: "SELECT true" }
    - { name: no, predicate_query: "SELECT 1 = 2", ttl: 60 }
  metrics:
    - v: { usage: GAUGE, description: gated off }
t_pred_true:
  query: SELECT 1 AS v
  tags: [cluster]
  predicate_queries:
    - { name: has_pg_stat, predicate_query: "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'pg_stat_activity')" }
  metrics:
    - v: { usage: GAUGE, description: gated on }
t_pred_bad:
  query: SELECT 1 AS v
  tags: [cluster]
  predicate_queries:
    - { name: not_bool, predicate_query: "SELECT 1" }
  metrics:
    - v: { usage: GAUGE, description: bad predicate }
t_types:
  query: |
    SELECT 'a' AS l, NULL::int AS n, NULL::int AS nd, 1500 AS s, true AS b,
           to_timestamp(100) AS ts, interval '1 minute' AS iv, '2.5' AS str, 1.25::numeric AS num
  tags: [cluster]
  metrics:
    - l:   { usage: LABEL }
    - n:   { usage: GAUGE,   description: null }
    - nd:  { usage: GAUGE,   default: 7, description: null with default }
    - s:   { usage: COUNTER, scale: 1e-3, description: scaled }
    - b:   { usage: GAUGE,   description: bool }
    - ts:  { usage: GAUGE,   description: timestamp }
    - iv:  { usage: GAUGE,   description: interval }
    - str: { usage: GAUGE,   description: numeric string }
    - num: { usage: GAUGE,   description: numeric }
t_hist:
  query: SELECT g % 2 AS odd, g::float8 AS x FROM generate_series(1, 10) g
  tags: [cluster]
  metrics:
    - odd: { usage: LABEL }
    - x:   { usage: HISTOGRAM, bucket: [2, 5], description: snapshot histogram }
t_dup:
  query: SELECT 'same' AS l, g AS v FROM generate_series(1, 3) g
  tags: [cluster]
  metrics:
    - l: { usage: LABEL }
    - v: { usage: GAUGE, description: duplicate label sets keep the first row }
`

func TestCollectorBehaviour(t *testing.T) {
	pg := testenv.StartPostgres(t)
	path := writeCollectors(t, customCollectors)
	e := newTestExporter(t, pg, func(c *Config) {
		c.CollectorFile = path
		c.DefaultTimeout = 10 * time.Second
		c.ScrapeTimeout = 60 * time.Second
	}, nil)
	fams := gather(t, e.Registry())

	if v := fams["pg_up"].values[0]; v != 1 {
		t.Fatalf("pg_up = %v: non-fatal failures must not fail the scrape", v)
	}
	for _, n := range []string{"t_ok_v", "t_after_v", "t_pred_true_v"} {
		if fams[n] == nil {
			t.Errorf("%s missing", n)
		}
	}
	for _, n := range []string{"t_bad_v", "t_slow_v", "t_future_v", "t_old_v", "t_replica_v", "t_pred_false_v", "t_pred_bad_v"} {
		if fams[n] != nil {
			t.Errorf("%s present", n)
		}
	}
	q := func(name, query string) float64 {
		t.Helper()
		v, ok := fams[name].value(map[string]string{"datname": "postgres", "query": query})
		if !ok {
			t.Errorf("%s{query=%q} missing", name, query)
		}
		return v
	}
	for query, wantErr := range map[string]float64{"t_ok": 0, "t_bad": 1, "t_slow": 1, "t_pred_bad": 1, "t_pred_false": 0} {
		if got := q("pg_exporter_query_scrape_error_count", query); got != wantErr {
			t.Errorf("%s errors = %v, want %v", query, got, wantErr)
		}
		if got := q("pgnoded_exporter_collector_success", query); got != 1-wantErr {
			t.Errorf("%s success = %v, want %v", query, got, 1-wantErr)
		}
	}
	if got := q("pg_exporter_query_scrape_predicate_skip_count", "t_pred_false"); got != 1 {
		t.Errorf("predicate skips = %v", got)
	}
	for _, planned := range []string{"t_future", "t_old", "t_replica"} {
		if fams["pg_exporter_query_scrape_total_count"].has(map[string]string{"query": planned}) {
			t.Errorf("%s planned despite version/role predicates", planned)
		}
	}

	golden := `
# HELP t_types_b bool
# TYPE t_types_b gauge
t_types_b{l="a"} 1
# HELP t_types_iv interval
# TYPE t_types_iv gauge
t_types_iv{l="a"} 60
# HELP t_types_nd null with default
# TYPE t_types_nd gauge
t_types_nd{l="a"} 7
# HELP t_types_num numeric
# TYPE t_types_num gauge
t_types_num{l="a"} 1.25
# HELP t_types_s scaled
# TYPE t_types_s counter
t_types_s{l="a"} 1.5
# HELP t_types_str numeric string
# TYPE t_types_str gauge
t_types_str{l="a"} 2.5
# HELP t_types_ts timestamp
# TYPE t_types_ts gauge
t_types_ts{l="a"} 100
# HELP t_hist_x snapshot histogram
# TYPE t_hist_x histogram
t_hist_x_bucket{odd="0",le="2"} 1
t_hist_x_bucket{odd="0",le="5"} 2
t_hist_x_bucket{odd="0",le="+Inf"} 5
t_hist_x_sum{odd="0"} 30
t_hist_x_count{odd="0"} 5
t_hist_x_bucket{odd="1",le="2"} 1
t_hist_x_bucket{odd="1",le="5"} 3
t_hist_x_bucket{odd="1",le="+Inf"} 5
t_hist_x_sum{odd="1"} 25
t_hist_x_count{odd="1"} 5
# HELP t_dup_v duplicate label sets keep the first row
# TYPE t_dup_v gauge
t_dup_v{l="same"} 1
`
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(golden),
		"t_types_b", "t_types_iv", "t_types_nd", "t_types_num", "t_types_s", "t_types_str", "t_types_ts",
		"t_hist_x", "t_dup_v"); err != nil {
		t.Fatal(err)
	}
	if v, _ := fams["t_types_n"].value(map[string]string{"l": "a"}); !math.IsNaN(v) {
		t.Errorf("NULL without default = %v, want NaN", v)
	}
}

func TestFatalCollectorSetsDown(t *testing.T) {
	pg := testenv.StartPostgres(t)
	path := writeCollectors(t, `
f_first:
  query: SELECT 1 AS v
  tags: [cluster]
  priority: 1
  metrics: [ { v: { usage: GAUGE, description: before } } ]
f_fatal:
  query: SELECT 1/0 AS v
  fatal: true
  tags: [cluster]
  priority: 2
  metrics: [ { v: { usage: GAUGE, description: fatal } } ]
f_later:
  query: SELECT 1 AS v
  tags: [cluster]
  priority: 3
  metrics: [ { v: { usage: GAUGE, description: after } } ]
`)
	e := newTestExporter(t, pg, func(c *Config) { c.CollectorFile = path }, nil)
	fams := gather(t, e.Registry())
	if v := fams["pg_up"].values[0]; v != 0 {
		t.Errorf("pg_up = %v after a fatal failure", v)
	}
	if fams["pg_in_recovery"] != nil {
		t.Error("pg_in_recovery reported while pg_up is 0")
	}
	if fams["f_first_v"] == nil || fams["f_later_v"] != nil {
		t.Errorf("want collectors before the fatal one only: first=%v later=%v", fams["f_first_v"] != nil, fams["f_later_v"] != nil)
	}
	if v := fams["pg_exporter_scrape_error_count"].values[0]; v != 1 {
		t.Errorf("scrape errors = %v", v)
	}
	if v, _ := fams["pg_exporter_server_scrape_error_count"].value(map[string]string{"datname": "postgres"}); v != 1 {
		t.Errorf("server scrape errors = %v", v)
	}
}

func TestScrapeNeverExceedsDeadline(t *testing.T) {
	pg := testenv.StartPostgres(t)
	path := writeCollectors(t, `
slow:
  query: SELECT pg_sleep(60)::text AS s, 1 AS v
  timeout: -1
  tags: [cluster]
  metrics: [ { s: { usage: DISCARD } }, { v: { usage: GAUGE, description: slow } } ]
`)
	e := newTestExporter(t, pg, func(c *Config) {
		c.CollectorFile = path
		c.ScrapeTimeout = 300 * time.Millisecond
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = testutil.CollectAndCount(e.pg)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("a collector without timeout escaped the scrape deadline")
	}
	if fams := gather(t, e.Registry()); fams["slow_v"] != nil {
		t.Error("timed-out collector produced metrics")
	}
}
