package exporter

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Warm-up retries while postgres does not answer (the daemon usually starts
// the exporter before postgres): the first after warmRetryMin, doubling up to
// warmRetryMax.
const (
	warmRetryMin = time.Second
	warmRetryMax = 16 * time.Second
	// warmSnapshotPoll is how often the HA snapshot is read while postgres is
	// not running yet (an atomic load).
	warmSnapshotPoll = 250 * time.Millisecond
)

// warmUp readies the scrape connections once postgres answers (see
// pgCollector.warm), retrying until it did or until a scrape found postgres
// up (that scrape warmed the connections itself), or until ctx ends. With the
// HA loop's snapshot, each attempt waits until the loop has seen postgres
// running, so the warm-up follows postgres' start rather than a back-off.
// Failures are logged at debug level only: the scrapes report postgres being down.
func (e *Exporter) warmUp(ctx context.Context) {
	wait := warmRetryMin
	for attempt := 1; ; attempt++ {
		if !e.waitPostgresRunning(ctx) {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, e.cfg.ScrapeTimeout)
		start := time.Now()
		done, err := e.pg.warm(wctx)
		cancel()
		switch {
		case err == nil && done:
			e.log.Debug("scrape connections warmed", "took", time.Since(start).Round(time.Millisecond).String())
			return
		case err == nil:
			return // a scrape got there first
		case ctx.Err() != nil:
			return
		case attempt == 1:
			e.log.Debug("postgres not reachable yet; the scrape connections are warmed once it is", "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, warmRetryMax)
	}
}

// waitPostgresRunning waits until the HA loop's snapshot shows postgres
// running (at once without a snapshot function); false when ctx ended first.
func (e *Exporter) waitPostgresRunning(ctx context.Context) bool {
	if e.snap == nil {
		return ctx.Err() == nil
	}
	return cluster.AwaitRunning(ctx, e.snap, warmSnapshotPoll)
}

// warm moves a new backend's one-off costs out of the first scrape: it
// discovers the databases, opens every target's scrape connections and, on
// each, prepares and runs once every collector query that applies (predicates
// first, as a scrape does), discarding the rows. A fresh postgres backend pays
// for loading every catalog entry a statement touches the first time it runs
// it (pg_setting alone takes about 100 ms); after warm the first scrape pays
// only for running the statements. Caches, statistics and pg_up are not
// touched, so the first scrape still runs every query and reports its own
// outcome. It returns false without doing anything once a scrape has found
// postgres up, and an error when postgres does not answer the precheck;
// failures of single statements are left for the scrapes to report.
func (c *pgCollector) warm(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up {
		return false, nil
	}
	f, dbs, err := c.precheck(ctx)
	if err != nil {
		return false, fmt.Errorf("precheck: %w", err)
	}
	targets, facts := c.targetsFor(f, dbs)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { c.warmTarget(ctx, t, facts[i]) })
	}
	wg.Wait()
	return true, nil
}

// warmTarget opens t's scrape connections (up to t.workers, as a scrape
// uses) and runs every collector that applies to t on each of them.
func (c *pgCollector) warmTarget(ctx context.Context, t *target, f serverFacts) {
	planned := c.plan(ctx, t, f, nil)
	if len(planned) == 0 {
		return
	}
	// All connections are held at once, so that each is a backend of its own.
	conns := make([]*pgconn.PgConn, t.workers)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			conn, err := t.pool.acquire(ctx)
			if err != nil {
				c.log.Debug("warm-up: no connection", "datname", t.dbname, "err", err)
				return
			}
			conns[i] = conn
		})
	}
	wg.Wait()
	for _, conn := range conns {
		if conn == nil {
			continue
		}
		wg.Go(func() {
			defer t.pool.release(conn)
			_ = c.withSlot(ctx, func() error {
				c.run.warmPipelined(ctx, conn, t.dbname, planned)
				if conn.IsClosed() {
					c.log.Debug("warm-up: connection lost", "datname", t.dbname)
				}
				return nil
			})
		})
	}
	wg.Wait()
}

// warmPipelined runs planned on conn as a scrape's pipelines do
// (runner.pipelineJobs: the predicates, then the queries of the collectors
// whose predicates all hold), against a scratch target so that no cache or
// statistic of the scrapes is touched; the rows are dropped, and a statement
// that fails is left for the scrapes to report.
func (r *runner) warmPipelined(ctx context.Context, conn *pgconn.PgConn, dbname string, planned []*compiled) {
	scratch := newTarget(dbname, nil, false, 1)
	for _, cc := range planned {
		scratch.stateOf(cc.spec.Branch)
	}
	r.pipelineJobs(ctx, conn, scratch, planned, nil)
}
