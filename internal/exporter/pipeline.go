package exporter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// pipeStmt is one statement of a pipeline: its SQL, the timeout it runs under
// and what reads its rows; err and took are its outcome.
type pipeStmt struct {
	sql     string
	timeout time.Duration // statement_timeout; <= 0 none
	read    func(*pgconn.ResultReader) error

	err   error
	done  bool          // it was sent and its outcome read
	took  time.Duration // from the previous statement's end (the server runs them in turn)
	stale bool          // its prepared statement was stale: rerun it outside the pipeline
}

// pipelineStep is what one sync group of a pipeline stands for.
type pipelineStep struct {
	stmt    int  // index in the statements; -1 for a statement_timeout change
	newName bool // the statement was prepared in this pipeline
}

// runPipeline sends every statement to conn at once in pipeline mode, each in
// its own implicit transaction (a Sync after it: a failing statement fails
// alone), then reads the results in order, so that a database answers all of a
// scrape's statements in one round trip rather than one or two per statement.
// Each statement runs under its own timeout, enforced by postgres
// (statement_timeout, set between statements where it changes and reset at
// the end); the whole pipeline runs under ctx. Statements are prepared on the
// connection in the same round trip the first time they run, and reused after.
// The error is one of the connection (every statement then has it too).
func (r *runner) runPipeline(ctx context.Context, conn *pgconn.PgConn, stmts []*pipeStmt) error {
	if len(stmts) == 0 {
		return nil
	}
	prepared := statementsOf(conn)
	p := conn.StartPipeline(ctx)
	var steps []pipelineStep
	cur := "" // the session's own statement_timeout
	for i, s := range stmts {
		if want := statementTimeout(s.timeout); want != cur {
			p.SendQueryParams("SET statement_timeout = "+want, nil, nil, nil, nil)
			p.SendPipelineSync()
			steps = append(steps, pipelineStep{stmt: -1})
			cur = want
		}
		name, known := prepared.names[s.sql]
		step := pipelineStep{stmt: i}
		if !known && len(prepared.names) < maxStatements {
			prepared.next++
			name = "pgnoded_exporter_" + strconv.Itoa(prepared.next)
			prepared.names[s.sql] = name
			step.newName = true
			p.SendPrepare(name, s.sql, nil)
		}
		if name == "" {
			p.SendQueryParams(s.sql, nil, nil, nil, nil)
		} else {
			p.SendQueryPrepared(name, nil, nil, nil)
		}
		p.SendPipelineSync()
		steps = append(steps, step)
	}
	if cur != "" {
		p.SendQueryParams("RESET statement_timeout", nil, nil, nil, nil)
		p.SendPipelineSync()
		steps = append(steps, pipelineStep{stmt: -1})
	}
	fail := func(from int, err error) error {
		for _, st := range steps[from:] {
			if st.stmt >= 0 && stmts[st.stmt].err == nil {
				stmts[st.stmt].err = err
			}
		}
		_ = p.Close()
		return err
	}
	if err := p.Flush(); err != nil {
		return fail(0, err)
	}
	last := r.now()
	for k, st := range steps {
		var stmtErr error
		parsed := false // the statement's Prepare succeeded
	results:
		for {
			res, err := p.GetResults()
			var pgErr *pgconn.PgError
			switch {
			case errors.As(err, &pgErr):
				if stmtErr == nil {
					stmtErr = err
				}
				continue
			case err != nil:
				return fail(k, err)
			}
			switch res := res.(type) {
			case *pgconn.PipelineSync:
				break results
			case *pgconn.StatementDescription:
				parsed = true
			case *pgconn.ResultReader:
				var rerr error
				if st.stmt >= 0 && stmts[st.stmt].read != nil {
					rerr = stmts[st.stmt].read(res)
				}
				if _, cerr := res.Close(); cerr != nil {
					rerr = cerr
				}
				if rerr != nil && stmtErr == nil {
					stmtErr = rerr
				}
			case nil:
				return fail(k, errors.New("pipeline: results ended early"))
			}
		}
		if st.stmt < 0 {
			if stmtErr != nil { // the timeouts of what follows may not hold: stop here
				return fail(k, fmt.Errorf("set statement_timeout: %w", stmtErr))
			}
			continue
		}
		s := stmts[st.stmt]
		now := r.now()
		s.took, last, s.done = now.Sub(last), now, true
		if stmtErr != nil {
			switch {
			case st.newName && !parsed: // not prepared: prepared again at its next run
				delete(prepared.names, s.sql)
			case !st.newName && stalePlan(stmtErr):
				// Prepared earlier, gone stale: rerun alone (runner.execute),
				// where queryOn deallocates it and prepares it again.
				s.stale = true
			}
			s.err = stmtErr
		}
	}
	if err := p.Close(); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			return err
		}
	}
	return nil
}

// statementTimeout is d as a statement_timeout value: milliseconds, 0 for none.
func statementTimeout(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

// collectorTimeout is the statement timeout of collector c's queries: its
// own, else the default; <= 0 none (the scrape deadline still applies).
func (r *runner) collectorTimeout(c *Collector) time.Duration {
	if c.Timeout == 0 {
		return r.defaultTimeout
	}
	return c.Timeout
}

// jobOutcome is what one run of a collector gave, before it is recorded.
type jobOutcome struct {
	start   time.Time
	took    time.Duration
	metrics []prometheus.Metric
	err     error // errPredicateFalse for a predicate skip
}

// pipelineJobs runs jobs (collectors of t whose caches are stale) on conn,
// which the caller holds: one pipeline for the predicate queries whose
// answers are not cached (when there are any), then one for the queries of the
// collectors whose predicates all hold, in the jobs' order. The caller records
// the outcomes (runner.record).
//
// pre, when not nil, is sent first in the first pipeline.
func (r *runner) pipelineJobs(ctx context.Context, conn *pgconn.PgConn, t *target, jobs []*compiled, pre *pipeStmt) []jobOutcome {
	start := r.now()
	errs := make([]error, len(jobs))
	states := make([]*collectorState, len(jobs))
	// Predicates: every one not answered from its cache, in one pipeline.
	type predKey struct{ job, pred int }
	var predStmts []*pipeStmt
	predOf := map[predKey]*pipeStmt{}
	readers := map[*pipeStmt]*predicateReader{}
	for i, cc := range jobs {
		st := t.state[cc.spec.Branch]
		states[i] = st
		for k, p := range cc.spec.Predicates {
			if res, ok := st.preds[k]; ok && start.Before(res.expires) {
				continue
			}
			pr := &predicateReader{}
			s := &pipeStmt{sql: p.Query, timeout: r.collectorTimeout(cc.spec), read: pr.read}
			predStmts = append(predStmts, s)
			predOf[predKey{i, k}] = s
			readers[s] = pr
		}
	}
	if pre != nil && len(predStmts) > 0 {
		predStmts, pre = append([]*pipeStmt{pre}, predStmts...), nil
	}
	_ = r.runPipeline(ctx, conn, predStmts) // a connection error is every statement's
	// Queries of the collectors whose predicates hold, in one pipeline.
	var (
		queryStmts []*pipeStmt
		queryJob   []int
		results    = make([][]prometheus.Metric, len(jobs))
	)
	for i, cc := range jobs {
		ok, err := r.predicatesHold(cc, states[i], start, func(k int) *pipeStmt { return predOf[predKey{i, k}] }, readers)
		switch {
		case err != nil:
			errs[i] = err
			continue
		case !ok:
			errs[i] = errPredicateFalse
			continue
		}
		s := &pipeStmt{sql: cc.spec.Query, timeout: r.collectorTimeout(cc.spec)}
		s.read = func(rr *pgconn.ResultReader) (err error) {
			results[i], err = cc.collectRows(rr, t.dbname)
			return err
		}
		queryStmts = append(queryStmts, s)
		queryJob = append(queryJob, i)
	}
	if pre != nil {
		queryStmts = append([]*pipeStmt{pre}, queryStmts...)
		queryJob = append([]int{-1}, queryJob...)
	}
	_ = r.runPipeline(ctx, conn, queryStmts)
	took := make([]time.Duration, len(jobs))
	for n, s := range queryStmts {
		i := queryJob[n]
		if i < 0 {
			continue // pre
		}
		took[i] = s.took
		switch {
		case s.stale: // prepared again and run once more, alone
			qstart := r.now()
			results[i], errs[i] = r.execute(ctx, conn, t.dbname, jobs[i], states[i])
			took[i] = r.now().Sub(qstart)
		case s.err != nil:
			errs[i] = fmt.Errorf("query: %w", s.err)
		}
	}
	outs := make([]jobOutcome, len(jobs))
	for i := range jobs {
		outs[i] = jobOutcome{start: start, took: took[i], metrics: results[i], err: errs[i]}
	}
	return outs
}

// predicatesHold evaluates cc's predicates in order, from st's cache or from
// the statement stmtOf(k) ran in the predicate pipeline, caching fresh
// answers for their TTL; the first false or failing predicate decides.
func (r *runner) predicatesHold(cc *compiled, st *collectorState, now time.Time, stmtOf func(int) *pipeStmt, readers map[*pipeStmt]*predicateReader) (bool, error) {
	for k, p := range cc.spec.Predicates {
		s := stmtOf(k)
		if s == nil {
			if !st.preds[k].ok {
				return false, nil
			}
			continue
		}
		if s.err != nil {
			return false, fmt.Errorf("predicate %q: %w", p.Name, s.err)
		}
		ok, err := readers[s].result()
		if err != nil {
			return false, fmt.Errorf("predicate %q: %w", p.Name, err)
		}
		if p.TTL > 0 {
			st.preds[k] = predicateResult{ok: ok, expires: now.Add(p.TTL)}
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}
