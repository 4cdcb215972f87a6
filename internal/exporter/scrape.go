package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// pgCollector is the prometheus.Collector for postgres: it runs the planned
// collectors against the main database and every discovered one. Databases are
// scraped at once, and the collectors of a database over up to its pool's
// connections, with at most Config.Concurrency queries in flight overall (sem).
// Scrapes are serialized by mu, so concurrent scrapes share the per-collector
// caches instead of querying twice.
type pgCollector struct {
	cfg        Config
	base       context.Context // canceled by Exporter.Close
	log        *slog.Logger
	run        runner
	collectors []*compiled
	perDB      bool        // some collector runs per database
	plain      atomic.Bool // every name of collectors is a legacy one (plainNames)
	newPool    func(dbname string) *connPool
	started    time.Time
	health     *healthState
	sem        chan struct{} // one slot per query in flight
	buildInfo  prometheus.Metric

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

// catalogFactsSQL reads a database's extensions and schemas.
const catalogFactsSQL = `SELECT ` + catalogFactsColumns

const catalogFactsColumns = `to_json(ARRAY(SELECT extname::text FROM pg_extension)),
	to_json(ARRAY(SELECT nspname::text FROM pg_namespace))`

// precheckSQL reads what planning needs, the databases to discover and the
// main database's catalog facts in one round trip. Lists of names come as
// JSON arrays, which any name can be read back from.
const precheckSQL = `SELECT current_setting('server_version_num')::int, pg_is_in_recovery(),
	current_user::text, current_database()::text,
	to_json(ARRAY(SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname)),
	` + catalogFactsColumns

// precheck runs the precheck on the main database: the server's facts (with
// the configured tags) and the databases to scrape.
func (c *pgCollector) precheck(ctx context.Context) (serverFacts, []string, error) {
	row, err := c.run.queryRow(ctx, c.main.pool, precheckSQL)
	if err != nil {
		return serverFacts{}, nil, err
	}
	f, dbs, err := readPrecheck(row)
	f.tags = c.cfg.Tags
	if err == nil {
		err = c.main.setCatalogFacts(row[5], row[6], c.cfg.Now())
	}
	return f, dbs, err
}

// targetsFor points the targets at the main database f.dbname and the
// discovered databases dbs, and returns every target with its facts, the main
// database first, the others by name.
func (c *pgCollector) targetsFor(f serverFacts, dbs []string) ([]*target, []serverFacts) {
	c.main.dbname = f.dbname
	c.syncTargets(dbs, f.dbname)
	targets := []*target{c.main}
	facts := []serverFacts{f}
	for _, name := range sortedKeys(c.others) {
		tf := f
		tf.dbname = name
		targets = append(targets, c.others[name])
		facts = append(facts, tf)
	}
	return targets, facts
}

// readPrecheck reads precheckSQL's row.
func readPrecheck(row [][]byte) (f serverFacts, dbs []string, err error) {
	if len(row) != 7 || row[0] == nil || row[1] == nil {
		return f, nil, errors.New("precheck: unexpected row")
	}
	f.version, err = strconv.Atoi(string(row[0]))
	if err != nil {
		return f, nil, fmt.Errorf("precheck: server_version_num: %w", err)
	}
	f.inRecovery = string(row[1]) == "t"
	f.user, f.dbname = string(row[2]), string(row[3])
	if err := json.Unmarshal(row[4], &dbs); err != nil {
		return f, nil, fmt.Errorf("precheck: databases: %w", err)
	}
	return f, dbs, nil
}

// plainNames reports whether the collectors' names can be written by textSink.
func (c *pgCollector) plainNames() bool { return c.plain.Load() }

// useCollectors sets the collectors of the next scrape; the caller holds c.mu
// or has not shared c yet.
func (c *pgCollector) useCollectors(set *collectorSet) {
	c.collectors, c.perDB = set.collectors, set.perDB
	plain := true
	for _, cc := range set.collectors {
		plain = plain && plainNames(cc)
	}
	c.plain.Store(plain)
}

// Describe sends nothing: the metric set depends on the collector file and the server.
func (c *pgCollector) Describe(chan<- *prometheus.Desc) {}

// Collect scrapes postgres (bounded by ScrapeTimeout) and emits the results and self metrics.
func (c *pgCollector) Collect(ch chan<- prometheus.Metric) { c.collectInto(chanSink(ch)) }

// collectInto is Collect sending to out.
func (c *pgCollector) collectInto(out metricSink) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.base, c.cfg.ScrapeTimeout)
	defer cancel()
	start := c.cfg.Now()
	c.up = c.scrape(ctx, out)
	c.health.record(c.up, c.facts.inRecovery, c.cfg.Now())
	c.scrapes++
	if !c.up {
		c.failures++
	}
	c.lastDur = c.cfg.Now().Sub(start)
	c.lastAt = start
	c.emitSelf(out)
}

// scrape returns whether postgres answered and no fatal collector failed on the main database.
func (c *pgCollector) scrape(ctx context.Context, out metricSink) bool {
	f, dbs, err := c.precheck(ctx)
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
	c.facts, c.known = f, true
	targets, facts := c.targetsFor(f, dbs)
	oks := make([]bool, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { oks[i] = c.scrapeTarget(ctx, t, facts[i], out) })
	}
	wg.Wait()
	return oks[0] // a failing discovered database does not take pg_up down
}

// scrapeTarget runs every applicable collector against t in priority order
// between fatal collectors: a fatal collector runs after every collector before
// it has finished, and when it fails the rest are skipped and false returned.
// Fresh cached results are sent at once. The stale collectors run in waves
// (runWave): a fatal collector leads the wave of the collectors after it, up
// to the next fatal one, and runs first on its connection.
func (c *pgCollector) scrapeTarget(ctx context.Context, t *target, f serverFacts, out metricSink) bool {
	start := c.cfg.Now()
	defer func() {
		t.lastDuration = c.cfg.Now().Sub(start)
		t.totalSeconds += t.lastDuration.Seconds()
		t.totalCount++
	}()
	// When t's extensions and schemas must be read again, the collectors
	// gated on them wait, and the read rides in the first pipeline (facts).
	var (
		facts    *pipeStmt
		factsRow rowReader
		deferred map[*compiled]bool
	)
	if !t.main && t.catalogStale(c.cfg.Now()) {
		deferred = c.deferrable(t, f)
	}
	if len(deferred) > 0 {
		facts = &pipeStmt{sql: catalogFactsSQL, timeout: c.run.defaultTimeout, read: factsRow.read}
		f.extensions, f.schemas = map[string]bool{}, map[string]bool{} // gated collectors are left out below
	}
	t.planned = c.plan(ctx, t, f, t.planned[:0])
	if !c.runWaves(ctx, t, t.planned, facts, out) {
		return false
	}
	if facts == nil {
		return true
	}
	if row := factsRow.row; facts.err != nil || !facts.done || len(row) != 2 {
		if err := c.catalogFacts(ctx, t, &f); err != nil { // read alone, as plan does
			c.log.Warn("reading extensions and schemas failed", "datname", t.dbname, "err", err)
		}
	} else if err := t.setCatalogFacts(row[0], row[1], c.cfg.Now()); err != nil {
		c.log.Warn("reading extensions and schemas failed", "datname", t.dbname, "err", err)
	}
	f.extensions, f.schemas = nil, nil
	t.planned = c.plan(ctx, t, f, t.planned[:0]) // in priority order, the facts now fresh
	var gated []*compiled
	for _, cc := range t.planned {
		if deferred[cc] {
			gated = append(gated, cc)
		}
	}
	return c.runWaves(ctx, t, gated, nil, out)
}

// deferrable returns the collectors of t gated on its extensions or schemas,
// when none of them is fatal (a fatal collector keeps its place in the order).
func (c *pgCollector) deferrable(t *target, f serverFacts) map[*compiled]bool {
	gated := map[*compiled]bool{}
	for _, cc := range c.collectors {
		if cc.spec.ClusterLevel() && !t.main || !cc.spec.needsCatalogFacts() {
			continue
		}
		if cc.spec.Fatal {
			return nil
		}
		gated[cc] = true
	}
	return gated
}

// runWaves runs planned, collectors of t in priority order, in waves
// (runWave), a fatal collector leading the wave after it; first, when not
// nil, rides in the first pipeline. It reports false when a fatal one failed.
func (c *pgCollector) runWaves(ctx context.Context, t *target, planned []*compiled, first *pipeStmt, out metricSink) bool {
	var wave []*compiled
	lead := false // wave[0] is a fatal collector
	for _, cc := range planned {
		if c.run.fromCache(t.stateOf(cc.spec.Branch), out) { // created here: waves only read t.state
			continue
		}
		if !cc.spec.Fatal {
			wave = append(wave, cc)
			continue
		}
		if len(wave) > 0 {
			if errs := c.runWave(ctx, t, wave, lead, first, out); lead && errs[0] != nil {
				t.errorCount++
				return false
			}
			first = nil
		}
		wave, lead = append(wave[:0], cc), true
	}
	if errs := c.runWave(ctx, t, wave, lead, first, out); lead && errs[0] != nil {
		t.errorCount++
		return false
	}
	return true
}

// plan appends to dst the collectors that apply to t on a server with facts f,
// in priority order, reading t's extensions and schemas when a predicate needs them.
func (c *pgCollector) plan(ctx context.Context, t *target, f serverFacts, dst []*compiled) []*compiled {
	gathered := false
	for _, cc := range c.collectors {
		if cc.spec.ClusterLevel() && !t.main {
			continue
		}
		if cc.spec.needsCatalogFacts() && !gathered && f.extensions == nil { // else given
			gathered = true
			if err := c.catalogFacts(ctx, t, &f); err != nil {
				c.log.Warn("reading extensions and schemas failed", "datname", t.dbname, "err", err)
			}
		}
		if cc.spec.applies(f) {
			dst = append(dst, cc)
		}
	}
	return dst
}

// runWave refreshes jobs, collectors of t whose caches are stale, and returns
// their outcomes. They run in pipelines (runner.pipelineJobs): one on a
// connection of t's pool, opened if need be, and one more on each connection
// that is idle already, up to t.workers, the jobs shared out by their last
// durations. A scrape thus opens at most one connection per database, and
// pays one round trip per pipeline rather than per statement; each pipeline
// holds one of the scrape's query slots.
//
// With lead, jobs[0] is a fatal collector: it runs first on the first
// connection, and when it fails only it is recorded and the others' results
// are dropped, as if they had not run.
//
// first, when not nil, rides at the head of the first connection's first pipeline.
func (c *pgCollector) runWave(ctx context.Context, t *target, jobs []*compiled, lead bool, first *pipeStmt, out metricSink) []error {
	errs := make([]error, len(jobs))
	if len(jobs) == 0 {
		return errs
	}
	conn0, err := t.pool.acquire(ctx)
	if err != nil {
		for i, cc := range jobs {
			errs[i] = c.run.record(t, cc, t.state[cc.spec.Branch], c.cfg.Now(), 0, nil, fmt.Errorf("query: %w", err), out)
			if lead {
				break // the rest is skipped
			}
		}
		return errs
	}
	conns := []*pgconn.PgConn{conn0}
	for len(conns) < min(t.workers, len(jobs)) {
		conn := t.pool.acquireIdle()
		if conn == nil {
			break
		}
		conns = append(conns, conn)
	}
	rest := jobs
	if lead {
		rest = jobs[1:]
	}
	shares := shareJobs(rest, len(conns), func(cc *compiled) time.Duration { return t.state[cc.spec.Branch].lastDuration })
	if lead {
		for n := range shares {
			for k := range shares[n].index {
				shares[n].index[k]++
			}
		}
		shares[0].jobs = append([]*compiled{jobs[0]}, shares[0].jobs...)
		shares[0].index = append([]int{0}, shares[0].index...)
	}
	outs := make([]jobOutcome, len(jobs))
	var wg sync.WaitGroup
	for n, conn := range conns {
		wg.Go(func() {
			defer t.pool.release(conn)
			share := shares[n]
			var shareOuts []jobOutcome
			err := c.withSlot(ctx, func() error {
				var pre *pipeStmt
				if n == 0 {
					pre = first
				}
				shareOuts = c.run.pipelineJobs(ctx, conn, t, share.jobs, pre)
				return nil
			})
			for k, i := range share.index {
				if err != nil {
					outs[i] = jobOutcome{start: c.cfg.Now(), err: fmt.Errorf("query: %w", err)}
					continue
				}
				outs[i] = shareOuts[k]
			}
		})
	}
	wg.Wait()
	for i, cc := range jobs {
		o := outs[i]
		errs[i] = c.run.record(t, cc, t.state[cc.spec.Branch], o.start, o.took, o.metrics, o.err, out)
		if lead && i == 0 && errs[0] != nil {
			break // the rest is skipped
		}
	}
	return errs
}

// jobShare is the part of a wave one pipeline runs: the jobs and their
// indexes in the wave.
type jobShare struct {
	jobs  []*compiled
	index []int
}

// shareJobs splits jobs into n shares of about equal total cost (the longest
// first, each to the share with the least so far), each share in the jobs'
// order. Before any run every cost is 0: the jobs are dealt in turn.
func shareJobs(jobs []*compiled, n int, cost func(*compiled) time.Duration) []jobShare {
	shares := make([]jobShare, n)
	if n == 1 {
		shares[0].jobs = jobs
		for i := range jobs {
			shares[0].index = append(shares[0].index, i)
		}
		return shares
	}
	order := make([]int, len(jobs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return cost(jobs[order[a]]) > cost(jobs[order[b]]) })
	load := make([]time.Duration, n)
	owner := make([]int, len(jobs))
	for k, i := range order {
		best := k % n // dealt in turn while costs are equal
		for s := range load {
			if load[s] < load[best] {
				best = s
			}
		}
		owner[i] = best
		load[best] += cost(jobs[i])
	}
	for i, cc := range jobs {
		s := owner[i]
		shares[s].jobs = append(shares[s].jobs, cc)
		shares[s].index = append(shares[s].index, i)
	}
	return shares
}

// withSlot runs fn holding one of the scrape's query slots; it gives up when
// ctx ends first.
func (c *pgCollector) withSlot(ctx context.Context, fn func() error) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	return fn()
}

// catalogStale reports whether t's extensions and schemas must be read again at now.
func (t *target) catalogStale(now time.Time) bool {
	return t.catalog.extensions == nil || !now.Before(t.catalog.expires)
}

// catalogFactsTTL is how long a database's extensions and schemas are reused
// for planning (they change with DDL only).
const catalogFactsTTL = 10 * time.Second

// catalogFacts fills f's extensions and schemas from t, read at most once per
// catalogFactsTTL.
func (c *pgCollector) catalogFacts(ctx context.Context, t *target, f *serverFacts) error {
	now := c.cfg.Now()
	if t.catalogStale(now) {
		row, err := c.run.queryRow(ctx, t.pool, catalogFactsSQL)
		if err == nil {
			err = t.setCatalogFacts(row[0], row[1], now)
		}
		if err != nil {
			return err
		}
	}
	f.extensions, f.schemas = t.catalog.extensions, t.catalog.schemas
	return nil
}

// setCatalogFacts keeps t's extensions and schemas, read as JSON arrays at
// now, for catalogFactsTTL.
func (t *target) setCatalogFacts(extensions, schemas []byte, now time.Time) error {
	var exts, nsps []string
	if err := errors.Join(json.Unmarshal(extensions, &exts), json.Unmarshal(schemas, &nsps)); err != nil {
		return fmt.Errorf("catalog facts: %w", err)
	}
	t.catalog.extensions = make(map[string]bool, len(exts))
	for _, e := range exts {
		t.catalog.extensions[e] = true
	}
	t.catalog.schemas = make(map[string]bool, len(nsps))
	for _, n := range nsps {
		t.catalog.schemas[n] = true
	}
	t.catalog.expires = now.Add(catalogFactsTTL)
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
			t.pool.close()
			delete(c.others, name)
		}
	}
	for name := range want {
		if _, ok := c.others[name]; ok {
			continue
		}
		c.log.Info("database discovered", "datname", name)
		c.others[name] = newTarget(name, c.newPool(name), false, 1)
	}
}

// close releases every pool but the main one (the Exporter owns that).
func (c *pgCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, t := range c.others {
		t.pool.close()
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
