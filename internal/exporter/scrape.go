package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// pgCollector is the prometheus.Collector for postgres: it runs the planned
// collectors against the main database and every discovered one. Scrapes are
// serialized by mu, so concurrent scrapes share the per-collector caches instead
// of querying twice.
type pgCollector struct {
	cfg        Config
	base       context.Context // canceled by Exporter.Close
	log        *slog.Logger
	run        runner
	collectors []*compiled
	perDB      bool // some collector runs per database
	newPool    func(dbname string) (*pgxpool.Pool, error)
	started    time.Time
	health     *healthState

	mu       sync.Mutex
	main     *target
	others   map[string]*target
	facts    serverFacts
	known    bool // facts were read at least once
	up       bool
	scrapes  float64
	failures float64
	lastDur  time.Duration
	lastAt   time.Time
}

// precheckSQL reads what planning needs, and the databases to discover, in one round trip.
const precheckSQL = `SELECT current_setting('server_version_num')::int, pg_is_in_recovery(),
	current_user::text, current_database()::text,
	ARRAY(SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname)`

const catalogFactsSQL = `SELECT ARRAY(SELECT extname::text FROM pg_extension),
	ARRAY(SELECT nspname::text FROM pg_namespace)`

// Describe sends nothing: the metric set depends on the collector file and the server.
func (c *pgCollector) Describe(chan<- *prometheus.Desc) {}

// Collect scrapes postgres (bounded by ScrapeTimeout) and emits the results and self metrics.
func (c *pgCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.base, c.cfg.ScrapeTimeout)
	defer cancel()
	start := c.cfg.Now()
	c.up = c.scrape(ctx, ch)
	c.health.record(c.up, c.facts.inRecovery, c.cfg.Now())
	c.scrapes++
	if !c.up {
		c.failures++
	}
	c.lastDur = c.cfg.Now().Sub(start)
	c.lastAt = start
	c.emitSelf(ch)
}

// scrape returns whether postgres answered and no fatal collector failed on the main database.
func (c *pgCollector) scrape(ctx context.Context, ch chan<- prometheus.Metric) bool {
	var (
		f   serverFacts
		dbs []string
	)
	err := c.run.queryRow(ctx, c.main.pool, precheckSQL, &f.version, &f.inRecovery, &f.user, &f.dbname, &dbs)
	if err != nil {
		if c.up || !c.known {
			c.log.Warn("postgres scrape precheck failed", "err", err)
		}
		return false
	}
	if c.known && f.inRecovery != c.facts.inRecovery {
		c.log.Info("postgres role changed, dropping cached results", "in_recovery", f.inRecovery)
		c.main.dropCaches()
		for _, t := range c.others {
			t.dropCaches()
		}
	}
	f.tags = c.cfg.Tags
	c.facts, c.known = f, true
	c.main.dbname = f.dbname
	c.syncTargets(dbs, f.dbname)

	ok := c.scrapeTarget(ctx, c.main, f, ch)
	for _, name := range sortedKeys(c.others) {
		tf := f
		tf.dbname = name
		c.scrapeTarget(ctx, c.others[name], tf, ch) // a failing database does not take pg_up down
	}
	return ok
}

// scrapeTarget runs every applicable collector against t; it returns false when a
// fatal collector failed (the rest of t's collectors are then skipped).
func (c *pgCollector) scrapeTarget(ctx context.Context, t *target, f serverFacts, ch chan<- prometheus.Metric) bool {
	start := c.cfg.Now()
	defer func() {
		t.lastDuration = c.cfg.Now().Sub(start)
		t.totalSeconds += t.lastDuration.Seconds()
		t.totalCount++
	}()
	t.planned = t.planned[:0]
	gathered := false
	for _, cc := range c.collectors {
		if cc.spec.ClusterLevel() && !t.main {
			continue
		}
		if cc.spec.needsCatalogFacts() && !gathered {
			gathered = true
			if err := c.catalogFacts(ctx, t, &f); err != nil {
				c.log.Warn("reading extensions and schemas failed", "datname", t.dbname, "err", err)
			}
		}
		if !cc.spec.applies(f) {
			continue
		}
		t.planned = append(t.planned, cc)
		if err := c.run.run(ctx, t, cc, ch); err != nil && cc.spec.Fatal {
			t.errorCount++
			return false
		}
	}
	return true
}

func (c *pgCollector) catalogFacts(ctx context.Context, t *target, f *serverFacts) error {
	var exts, nsps []string
	if err := c.run.queryRow(ctx, t.pool, catalogFactsSQL, &exts, &nsps); err != nil {
		return fmt.Errorf("catalog facts: %w", err)
	}
	f.extensions = make(map[string]bool, len(exts))
	for _, e := range exts {
		f.extensions[e] = true
	}
	f.schemas = make(map[string]bool, len(nsps))
	for _, n := range nsps {
		f.schemas[n] = true
	}
	return nil
}

// syncTargets opens a one-connection pool per newly discovered database and
// closes the pools of databases that are gone or excluded.
func (c *pgCollector) syncTargets(dbs []string, mainDB string) {
	want := map[string]bool{}
	if c.perDB && !c.cfg.DisableAutoDiscovery {
		for _, db := range dbs {
			if db == mainDB || slices.Contains(c.cfg.ExcludeDatabases, db) {
				continue
			}
			if len(c.cfg.IncludeDatabases) > 0 && !slices.Contains(c.cfg.IncludeDatabases, db) {
				continue
			}
			want[db] = true
		}
	}
	for name, t := range c.others {
		if !want[name] {
			c.log.Info("database no longer scraped", "datname", name)
			t.pool.Close()
			delete(c.others, name)
		}
	}
	for name := range want {
		if _, ok := c.others[name]; ok {
			continue
		}
		pool, err := c.newPool(name)
		if err != nil {
			c.log.Warn("cannot configure pool for discovered database", "datname", name, "err", err)
			continue
		}
		c.log.Info("database discovered", "datname", name)
		c.others[name] = newTarget(name, pool, false)
	}
}

// close releases every pool but the main one (the Exporter owns that).
func (c *pgCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, t := range c.others {
		t.pool.Close()
		delete(c.others, name)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
