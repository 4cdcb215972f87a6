package exporter

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// TestScrapeDefaultSet checks the names, TYPEs and label sets Pigsty reads, on a real postgres.
func TestScrapeDefaultSet(t *testing.T) {
	pg := testenv.StartPostgres(t)
	execSQL(t, pg, "", "CREATE DATABASE app", "CREATE TABLE t1(id int PRIMARY KEY, v text)",
		"INSERT INTO t1 SELECT g, 'x' FROM generate_series(1, 100) g", "SELECT count(*) FROM t1 WHERE id = 5")
	execSQL(t, pg, "app", "CREATE TABLE a1(id int PRIMARY KEY)", "INSERT INTO a1 VALUES (1)")
	e := newTestExporter(t, pg, nil, nil)
	fams := gather(t, e.Registry())

	counter, gaugeT := dto.MetricType_COUNTER, dto.MetricType_GAUGE
	want := []struct {
		name   string
		typ    dto.MetricType
		labels string
	}{
		{"pg_up", gaugeT, ""}, {"pg_version", gaugeT, ""}, {"pg_in_recovery", gaugeT, ""},
		{"pg_uptime", gaugeT, ""}, {"pg_boot_time", gaugeT, ""}, {"pg_timestamp", gaugeT, ""},
		{"pg_lsn", counter, ""}, {"pg_insert_lsn", counter, ""}, {"pg_write_lsn", counter, ""}, {"pg_flush_lsn", counter, ""},
		{"pg_is_in_recovery", gaugeT, ""}, {"pg_lag", gaugeT, ""}, {"pg_conf_reload_time", gaugeT, ""},
		{"pg_setting_max_connections", gaugeT, ""}, {"pg_setting_shared_buffers", gaugeT, ""},
		{"pg_setting_max_wal_senders", gaugeT, ""}, {"pg_setting_wal_level", gaugeT, ""},
		{"pg_db_numbackends", gaugeT, "datname"}, {"pg_db_xact_commit", counter, "datname"},
		{"pg_db_xact_rollback", counter, "datname"}, {"pg_db_xact_total", counter, "datname"},
		{"pg_db_blks_read", counter, "datname"}, {"pg_db_blks_hit", counter, "datname"},
		{"pg_db_tup_returned", counter, "datname"}, {"pg_db_tup_fetched", counter, "datname"},
		{"pg_db_tup_inserted", counter, "datname"}, {"pg_db_tup_updated", counter, "datname"},
		{"pg_db_tup_deleted", counter, "datname"}, {"pg_db_conflicts", counter, "datname"},
		{"pg_db_temp_files", counter, "datname"}, {"pg_db_temp_bytes", counter, "datname"},
		{"pg_db_deadlocks", counter, "datname"}, {"pg_db_age", gaugeT, "datname"},
		{"pg_db_conn_limit", gaugeT, "datname"}, {"pg_db_active_time", counter, "datname"},
		{"pg_db_ixact_time", counter, "datname"}, {"pg_db_session_time", counter, "datname"},
		{"pg_db_blk_read_time", counter, "datname"},
		{"pg_activity_count", gaugeT, "datname,state"}, {"pg_activity_max_duration", gaugeT, "datname,state"},
		{"pg_downstream_count", gaugeT, "state"}, {"pg_sync_standby_enabled", gaugeT, "names"},
		{"pg_lock_count", gaugeT, "datname,mode"}, {"pg_size_bytes", gaugeT, "datname"},
		{"pg_checkpointer_timed", counter, ""}, {"pg_checkpointer_req", counter, ""},
		{"pg_checkpointer_buffers_written", counter, ""}, {"pg_bgwriter_buffers_clean", counter, ""},
		{"pg_bgwriter_buffers_alloc", counter, ""}, {"pg_checkpoint_tli", counter, ""},
		{"pg_timeline_id", gaugeT, ""}, {"pg_wal_bytes", counter, ""}, {"pg_archiver_finish_count", counter, ""},
		{"pg_table_tbl_scan", counter, "datname,relname"}, {"pg_table_n_live_tup", gaugeT, "datname,relname"},
		{"pg_index_idx_scan", counter, "datname,idxname,relid,relname"},
		{"pg_exporter_up", gaugeT, ""}, {"pg_exporter_uptime", gaugeT, ""},
		{"pg_exporter_scrape_total_count", counter, ""}, {"pg_exporter_scrape_error_count", counter, ""},
		{"pg_exporter_scrape_duration", gaugeT, ""}, {"pg_exporter_last_scrape_time", gaugeT, ""},
		{"pg_exporter_server_scrape_duration", gaugeT, "datname"},
		{"pg_exporter_query_scrape_duration", gaugeT, "datname,query"},
		{"pg_exporter_query_scrape_error_count", gaugeT, "datname,query"},
		{"pg_exporter_query_scrape_hit_count", gaugeT, "datname,query"},
		{"pg_exporter_query_cache_ttl", gaugeT, "datname,query"},
		{"pgnoded_exporter_collector_success", gaugeT, "datname,query"},
		{"go_goroutines", gaugeT, ""}, {"process_resident_memory_bytes", gaugeT, ""},
	}
	for _, w := range want {
		f := fams[w.name]
		if f == nil {
			t.Errorf("%s missing", w.name)
			continue
		}
		if f.typ != w.typ {
			t.Errorf("%s: type %v, want %v", w.name, f.typ, w.typ)
		}
		if got := f.labelNames(); got != w.labels {
			t.Errorf("%s: labels %q, want %q", w.name, got, w.labels)
		}
	}
	if t.Failed() {
		return
	}
	// Label values that rules and dashboards select on.
	for name, sel := range map[string][]map[string]string{
		"pg_db_xact_commit":                 {{"datname": "postgres"}, {"datname": "app"}, {"datname": "template1"}},
		"pg_activity_count":                 {{"datname": "app", "state": "idle"}, {"datname": "postgres", "state": "active"}},
		"pg_downstream_count":               {{"state": "streaming"}, {"state": "catchup"}},
		"pg_lock_count":                     {{"datname": "postgres", "mode": "AccessShareLock"}},
		"pg_size_bytes":                     {{"datname": "postgres"}, {"datname": "app"}, {"datname": "wal"}, {"datname": "log"}},
		"pg_table_tbl_scan":                 {{"datname": "postgres", "relname": "public.t1"}, {"datname": "app", "relname": "public.a1"}},
		"pg_index_idx_scan":                 {{"datname": "postgres", "idxname": "public.t1_pkey", "relname": "public.t1"}},
		"pg_exporter_query_scrape_duration": {{"datname": "postgres", "query": "pg"}, {"datname": "app", "query": "pg_table"}},
	} {
		for _, s := range sel {
			if !fams[name].has(s) {
				t.Errorf("%s: no series %v", name, s)
			}
		}
	}
	// Deterministic values, compared exactly.
	golden := fmt.Sprintf(`
# HELP pg_up last scrape was able to connect to the server: 1 for yes, 0 for no
# TYPE pg_up gauge
pg_up 1
# HELP pg_in_recovery server is in recovery mode? 1 for yes 0 for no
# TYPE pg_in_recovery gauge
pg_in_recovery 0
# HELP pg_version server version number
# TYPE pg_version gauge
pg_version %d
# HELP pg_setting_max_connections maximum number of concurrent connections to the database server
# TYPE pg_setting_max_connections gauge
pg_setting_max_connections 100
# HELP pg_setting_block_size database block size in bytes
# TYPE pg_setting_block_size gauge
pg_setting_block_size 8192
# HELP pg_setting_max_slot_wal_keep_size maximum WAL size retained by replication slots in bytes, -1 means unlimited
# TYPE pg_setting_max_slot_wal_keep_size gauge
pg_setting_max_slot_wal_keep_size -1
# HELP pg_downstream_count Count of corresponding state
# TYPE pg_downstream_count gauge
pg_downstream_count{state="backup"} 0
pg_downstream_count{state="catchup"} 0
pg_downstream_count{state="startup"} 0
pg_downstream_count{state="stopping"} 0
pg_downstream_count{state="streaming"} 0
# HELP pg_sync_standby_enabled Synchronous commit enabled, 1 if enabled, 0 if disabled
# TYPE pg_sync_standby_enabled gauge
pg_sync_standby_enabled{names="<null>"} 0
# HELP pg_timeline_id Current timeline ID
# TYPE pg_timeline_id gauge
pg_timeline_id 1
# HELP pg_is_in_recovery 1 if in recovery mode
# TYPE pg_is_in_recovery gauge
pg_is_in_recovery 0
`, int(fams["pg_version"].values[0]))
	if fams["pg_version"].values[0] < 140000 {
		t.Fatalf("pg_version %v", fams["pg_version"].values[0])
	}
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(golden),
		"pg_up", "pg_in_recovery", "pg_version", "pg_setting_max_connections", "pg_setting_block_size",
		"pg_setting_max_slot_wal_keep_size", "pg_downstream_count", "pg_sync_standby_enabled",
		"pg_timeline_id", "pg_is_in_recovery"); err != nil {
		t.Fatal(err)
	}
	// No collector of the default set may fail on a healthy primary.
	succ := fams["pgnoded_exporter_collector_success"]
	for i, s := range succ.series {
		if succ.values[i] != 1 {
			t.Errorf("collector %s in %s failed", s["query"], s["datname"])
		}
	}
}

func TestCacheSharedAcrossScrapes(t *testing.T) {
	pg := testenv.StartPostgres(t)
	clock := newFakeClock()
	e := newTestExporter(t, pg, func(c *Config) { c.Now = clock.Now }, nil)

	// Two concurrent scrapes (two Prometheus servers): the second waits for the
	// first and is served pg_db (ttl 10s) from its cache.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = testutil.CollectAndCount(e.pg)
		}()
	}
	wg.Wait()
	fams := gather(t, e.Registry()) // third scrape, clock unchanged
	sel := map[string]string{"datname": "postgres", "query": "pg_db"}
	total, _ := fams["pg_exporter_query_scrape_total_count"].value(sel)
	hits, _ := fams["pg_exporter_query_scrape_hit_count"].value(sel)
	if total != 3 || hits != 2 {
		t.Errorf("pg_db: total %v hits %v, want 3 and 2 (one query for three scrapes)", total, hits)
	}
	// pg_repl returns no rows on a server without replicas: an empty result is cached too.
	sel = map[string]string{"datname": "postgres", "query": "pg_repl"}
	if hits, _ := fams["pg_exporter_query_scrape_hit_count"].value(sel); hits != 2 {
		t.Errorf("pg_repl (no rows): hits %v, want 2", hits)
	}
	sel = map[string]string{"datname": "postgres", "query": "pg_db"}

	clock.Advance(11 * time.Second) // past pg_db's ttl
	fams = gather(t, e.Registry())
	hits, _ = fams["pg_exporter_query_scrape_hit_count"].value(sel)
	if hits != 2 {
		t.Errorf("pg_db served from an expired cache: hits %v", hits)
	}
	pgHits, _ := fams["pg_exporter_query_scrape_hit_count"].value(map[string]string{"datname": "postgres", "query": "pg"})
	if pgHits != 2 {
		t.Errorf("pg (ttl 1s) hits %v, want 2", pgHits)
	}
}

func TestPerDatabaseDiscovery(t *testing.T) {
	pg := testenv.StartPostgres(t)
	execSQL(t, pg, "", "CREATE DATABASE app1", "CREATE DATABASE app2", "CREATE DATABASE skipme")
	path := writeCollectors(t, `
per_db:
  query: SELECT current_database()::text AS db, 1 AS v
  metrics:
    - db: { usage: LABEL }
    - v:  { usage: GAUGE, description: one per database }
per_db_own:
  query: SELECT 'custom-' || current_database() AS datname, 1 AS v
  metrics:
    - datname: { usage: LABEL }
    - v:       { usage: GAUGE, description: datname reported by the query }
main_only:
  query: SELECT 1 AS v
  tags: [cluster]
  metrics: [ { v: { usage: GAUGE, description: cluster level } } ]
`)
	e := newTestExporter(t, pg, func(c *Config) {
		c.CollectorFile = path
		c.ExcludeDatabases = []string{"template0", "template1", "skipme"}
	}, nil)
	fams := gather(t, e.Registry())
	var got []string
	for _, s := range fams["per_db_v"].series {
		if s["db"] != s["datname"] {
			t.Errorf("datname label %q in database %q", s["datname"], s["db"])
		}
		got = append(got, s["datname"])
	}
	sort.Strings(got)
	if want := []string{"app1", "app2", "postgres"}; !slices.Equal(got, want) {
		t.Errorf("per-database collector ran in %v, want %v", got, want)
	}
	if !fams["per_db_own_v"].has(map[string]string{"datname": "custom-app1"}) || fams["per_db_own_v"].labelNames() != "datname" {
		t.Errorf("query's own datname label not kept: %v", fams["per_db_own_v"].series)
	}
	if n := len(fams["main_only_v"].series); n != 1 {
		t.Errorf("cluster collector ran %d times", n)
	}

	execSQL(t, pg, "", "DROP DATABASE app2 WITH (FORCE)")
	fams = gather(t, e.Registry())
	if fams["per_db_v"].has(map[string]string{"datname": "app2"}) ||
		fams["pg_exporter_server_scrape_total_count"].has(map[string]string{"datname": "app2"}) {
		t.Error("dropped database still scraped")
	}
}

func TestRoleChangeDropsCaches(t *testing.T) {
	pg := testenv.StartPostgres(t)
	e := newTestExporter(t, pg, nil, nil)
	_ = gather(t, e.Registry())
	// Simulate what a demotion looks like to the collector: the recorded
	// recovery state differs from what the next precheck reads.
	e.pg.mu.Lock()
	e.pg.facts.inRecovery = true
	e.pg.mu.Unlock()
	fams := gather(t, e.Registry())
	if hits, _ := fams["pg_exporter_query_scrape_hit_count"].value(map[string]string{"datname": "postgres", "query": "pg_db"}); hits != 0 {
		t.Errorf("cache survived a role change: hits %v", hits)
	}
}
