package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// target is one database the exporter queries: the main one (cluster-level and
// per-database collectors) or a discovered one (per-database collectors only).
type target struct {
	dbname  string
	pool    *connPool
	main    bool
	workers int                        // pipelines (connections) a wave of this database uses at most
	state   map[string]*collectorState // by branch
	// planned are the collectors that applied in the last scrape, for self metrics.
	planned []*compiled
	// catalog is the database's extensions and schemas, reused until expires.
	catalog struct {
		extensions, schemas map[string]bool
		expires             time.Time
	}

	lastDuration time.Duration
	totalSeconds float64
	totalCount   float64
	errorCount   float64 // scrapes of this database ended by a fatal collector
}

func newTarget(dbname string, pool *connPool, main bool, workers int) *target {
	return &target{dbname: dbname, pool: pool, main: main, workers: max(workers, 1), state: map[string]*collectorState{}}
}

// collectorState is the cache and statistics of one collector in one database.
type collectorState struct {
	cached  []prometheus.Metric
	text    []famChunk // cached in the text format, encoded at its first text scrape
	expires time.Time  // cached is valid before this instant
	preds   map[int]predicateResult

	total, errors, hits, predSkips float64
	lastDuration                   time.Duration
	metricCount                    int
	success                        bool
	failing                        bool // last run failed (logged once per failure streak)
}

type predicateResult struct {
	ok      bool
	expires time.Time
}

func (t *target) stateOf(branch string) *collectorState {
	st := t.state[branch]
	if st == nil {
		st = &collectorState{preds: map[int]predicateResult{}}
		t.state[branch] = st
	}
	return st
}

// dropCaches forgets every cached result (after a role change).
func (t *target) dropCaches() {
	t.catalog.extensions, t.catalog.schemas = nil, nil
	for _, st := range t.state {
		st.cached, st.text, st.expires = nil, nil, time.Time{}
		clear(st.preds)
	}
}

// runner executes collectors; it carries what every run needs.
type runner struct {
	now            func() time.Time
	defaultTimeout time.Duration
	log            *slog.Logger
}

// errPredicateFalse marks a collector skipped by its predicate queries.
var errPredicateFalse = errors.New("predicate false")

// fromCache emits st's cached metrics when they are still fresh.
func (r *runner) fromCache(st *collectorState, out metricSink) bool {
	if st.cached == nil || !r.now().Before(st.expires) {
		return false
	}
	st.total++
	st.hits++
	out.addCached(st)
	return true
}

// record books one run of cc that started at start and took took: its
// statistics, its cache (for its TTL) and its metrics, sent to out; it
// returns err, but nil for a predicate skip.
func (r *runner) record(t *target, cc *compiled, st *collectorState, start time.Time, took time.Duration, metrics []prometheus.Metric, err error, out metricSink) error {
	st.total++
	st.lastDuration = took
	switch {
	case errors.Is(err, errPredicateFalse):
		st.predSkips++
		st.success = true
		st.metricCount = 0
		return nil
	case err != nil:
		st.errors++
		st.success = false
		st.cached, st.text, st.expires = nil, nil, time.Time{}
		if !st.failing {
			r.log.Warn("collector failed", "collector", cc.spec.Branch, "datname", t.dbname, "err", err)
		} else {
			r.log.Debug("collector failed", "collector", cc.spec.Branch, "datname", t.dbname, "err", err)
		}
		st.failing = true
		return err
	}
	if st.failing {
		r.log.Info("collector recovered", "collector", cc.spec.Branch, "datname", t.dbname)
	}
	st.failing, st.success = false, true
	st.metricCount = len(metrics)
	if cc.spec.TTL > 0 {
		if metrics == nil {
			metrics = []prometheus.Metric{} // an empty result is cached too (nil means none)
		}
		st.cached, st.text, st.expires = metrics, nil, start.Add(cc.spec.TTL)
		out.addCached(st)
		return nil
	}
	st.cached, st.text = nil, nil
	out.add(metrics...)
	return nil
}

func (r *runner) timeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d == 0 {
		d = r.defaultTimeout
	}
	if d < 0 {
		return context.WithCancel(ctx) // no own timeout: the scrape deadline still applies
	}
	return context.WithTimeout(ctx, d)
}

// execute checks the predicates, then runs the query, each on its own on
// conn, which the caller holds (the pipelines' rerun of a stale statement).
func (r *runner) execute(ctx context.Context, conn *pgconn.PgConn, dbname string, cc *compiled, st *collectorState) ([]prometheus.Metric, error) {
	for i, p := range cc.spec.Predicates {
		ok, err := r.predicate(ctx, conn, cc.spec, i, p, st)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errPredicateFalse
		}
	}
	qctx, cancel := r.timeout(ctx, cc.spec.Timeout)
	defer cancel()
	var metrics []prometheus.Metric
	err := queryOn(qctx, conn, cc.spec.Query, func(rr *pgconn.ResultReader) (err error) {
		metrics, err = cc.collectRows(rr, dbname)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return metrics, nil
}

// predicate runs (or reuses) predicate query i: one row, one boolean column.
func (r *runner) predicate(ctx context.Context, conn *pgconn.PgConn, c *Collector, i int, p Predicate, st *collectorState) (bool, error) {
	now := r.now()
	if res, ok := st.preds[i]; ok && now.Before(res.expires) {
		return res.ok, nil
	}
	qctx, cancel := r.timeout(ctx, c.Timeout)
	defer cancel()
	var pr predicateReader
	if err := queryOn(qctx, conn, p.Query, pr.read); err != nil {
		return false, fmt.Errorf("predicate %q: %w", p.Name, err)
	}
	ok, err := pr.result()
	if err != nil {
		return false, fmt.Errorf("predicate %q: %w", p.Name, err)
	}
	if p.TTL > 0 {
		st.preds[i] = predicateResult{ok: ok, expires: now.Add(p.TTL)}
	}
	return ok, nil
}

// predicateReader reads a predicate query's result: one row, one boolean
// column (NULL is false).
type predicateReader struct {
	rows  int
	value bool
}

func (p *predicateReader) read(rr *pgconn.ResultReader) error {
	fields := rr.FieldDescriptions()
	for rr.NextRow() {
		p.rows++
		vals := rr.Values()
		if len(vals) != 1 {
			return fmt.Errorf("want one column, got %d", len(vals))
		}
		if vals[0] == nil {
			p.value = false
			continue
		}
		if fields[0].DataTypeOID != oidBool {
			return fmt.Errorf("want a boolean, got type OID %d", fields[0].DataTypeOID)
		}
		p.value = len(vals[0]) > 0 && vals[0][0] == 't'
	}
	return nil
}

// result is the predicate's outcome: true only for one row holding true.
func (p *predicateReader) result() (bool, error) {
	if p.rows > 1 {
		return false, fmt.Errorf("want one row, got %d", p.rows)
	}
	return p.rows == 1 && p.value, nil
}

// queryRow runs a query that returns one row with a timeout (prechecks and
// facts) and returns its values in text format.
func (r *runner) queryRow(ctx context.Context, pool *connPool, sql string) ([][]byte, error) {
	qctx, cancel := r.timeout(ctx, 0)
	defer cancel()
	var rr rowReader
	if err := pool.query(qctx, sql, rr.read); err != nil {
		return nil, err
	}
	if rr.row == nil {
		return nil, errors.New("no rows")
	}
	return rr.row, nil
}

// rowReader reads a result of at most one row, its values copied (text format).
type rowReader struct{ row [][]byte }

func (r *rowReader) read(rr *pgconn.ResultReader) error {
	for rr.NextRow() {
		if r.row != nil {
			return errors.New("more than one row")
		}
		r.row = make([][]byte, len(rr.Values()))
		for i, v := range rr.Values() {
			if v != nil {
				r.row[i] = append([]byte{}, v...)
			}
		}
	}
	return nil
}
