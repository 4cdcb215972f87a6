package exporter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Pooled connections idle longer than these are checked, then closed.
const (
	poolPingIdle = time.Second     // pinged before reuse, as pgxpool does
	poolMaxIdle  = 5 * time.Minute // closed instead of reused
)

// errPoolClosed is returned by acquire after close.
var errPoolClosed = errors.New("connection pool closed")

// connPool holds up to max connections to one database, opened on first use
// and kept between scrapes. It uses pgconn directly (text-format results, no
// type registry), which is all the collectors need.
type connPool struct {
	cfg   *pgconn.Config // its Database is the pool's
	slots chan struct{}  // one per connection in use or being opened

	mu     sync.Mutex
	idle   []idleConn // most recently released last
	closed bool
}

type idleConn struct {
	conn  *pgconn.PgConn
	since time.Time
}

func newConnPool(cfg *pgconn.Config, maxConns int) *connPool {
	return &connPool{cfg: cfg, slots: make(chan struct{}, max(maxConns, 1))}
}

// acquire returns a connection of the pool, reusing an idle one when it still
// answers, else opening one; it waits for a free slot until ctx ends. The
// caller hands it back with release.
func (p *connPool) acquire(ctx context.Context) (*pgconn.PgConn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.slots
			return nil, errPoolClosed
		}
		var ic idleConn
		if n := len(p.idle); n > 0 {
			ic = p.idle[n-1]
			p.idle[n-1] = idleConn{}
			p.idle = p.idle[:n-1]
		}
		p.mu.Unlock()
		if ic.conn == nil {
			break
		}
		idle := time.Since(ic.since)
		if idle < poolPingIdle && !ic.conn.IsClosed() {
			return ic.conn, nil
		}
		if idle < poolMaxIdle && ic.conn.Ping(ctx) == nil {
			return ic.conn, nil
		}
		closeConn(ic.conn)
		if ctx.Err() != nil {
			<-p.slots
			return nil, ctx.Err()
		}
	}
	conn, err := pgconn.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.slots
		return nil, fmt.Errorf("connect to database %q: %w", p.cfg.Database, err)
	}
	return conn, nil
}

// acquireIdle returns an idle connection of the pool, or nil when there is
// none or no free slot: it never opens a connection, waits or does I/O (no
// ping: a connection that died fails the statements sent on it, once; acquire
// on the same pool, as the scrape's precheck does first, closes such ones).
func (p *connPool) acquireIdle() *pgconn.PgConn {
	select {
	case p.slots <- struct{}{}:
	default:
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); !p.closed && n > 0 {
		ic := p.idle[n-1]
		if time.Since(ic.since) < poolMaxIdle && !ic.conn.IsClosed() {
			p.idle[n-1] = idleConn{}
			p.idle = p.idle[:n-1]
			return ic.conn
		}
	}
	<-p.slots
	return nil
}

// release hands conn back: kept for reuse when it is still usable, else closed.
func (p *connPool) release(conn *pgconn.PgConn) {
	defer func() { <-p.slots }()
	if conn.IsClosed() || conn.IsBusy() || conn.TxStatus() != 'I' {
		closeConn(conn)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		closeConn(conn)
		return
	}
	p.idle = append(p.idle, idleConn{conn: conn, since: time.Now()})
	p.mu.Unlock()
}

// close closes the idle connections now and those in use when released.
func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, ic := range idle {
		closeConn(ic.conn)
	}
}

// query runs one statement on a pooled connection with text-format results
// and hands its result to read; an error of the statement wins over one of
// read. The statement is prepared on the connection's first use of sql and
// reused afterwards, so postgres parses and plans each collector query once per
// connection rather than at every scrape.
func (p *connPool) query(ctx context.Context, sql string, read func(*pgconn.ResultReader) error) error {
	conn, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer p.release(conn)
	return queryOn(ctx, conn, sql, read)
}

// queryOn is query on a connection the caller holds.
func queryOn(ctx context.Context, conn *pgconn.PgConn, sql string, read func(*pgconn.ResultReader) error) error {
	stmts := statementsOf(conn)
	for attempt := 0; ; attempt++ {
		name, err := stmts.prepare(ctx, conn, sql)
		if err != nil {
			return err
		}
		var rr *pgconn.ResultReader
		if name == "" {
			rr = conn.ExecParams(ctx, sql, nil, nil, nil, nil)
		} else {
			rr = conn.ExecPrepared(ctx, name, nil, nil, nil)
		}
		rerr := read(rr)
		_, err = rr.Close()
		if err != nil && name != "" && stalePlan(err) {
			// Raised at Bind, before any row: prepare again and rerun once.
			stmts.forget(ctx, conn, sql)
			if attempt == 0 {
				continue
			}
		}
		if err != nil {
			return err
		}
		return rerr
	}
}

// maxStatements bounds the statements prepared on one connection (a collector
// file has a few hundred queries at most; reloads add new ones).
const maxStatements = 512

// statements are the statements prepared on one connection, by SQL text.
type statements struct {
	names map[string]string
	next  int
}

const statementsKey = "pgnoded.exporter.statements" // in PgConn.CustomData

func statementsOf(conn *pgconn.PgConn) *statements {
	s, _ := conn.CustomData()[statementsKey].(*statements)
	if s == nil {
		s = &statements{names: map[string]string{}}
		conn.CustomData()[statementsKey] = s
	}
	return s
}

// prepare returns the name sql is prepared under on conn, preparing it first
// if need be; "" when the connection holds maxStatements already (sql then
// runs unprepared).
func (s *statements) prepare(ctx context.Context, conn *pgconn.PgConn, sql string) (string, error) {
	if name, ok := s.names[sql]; ok {
		return name, nil
	}
	if len(s.names) >= maxStatements {
		return "", nil
	}
	s.next++
	name := "pgnoded_exporter_" + strconv.Itoa(s.next)
	if _, err := conn.Prepare(ctx, name, sql, nil); err != nil {
		return "", err
	}
	s.names[sql] = name
	return name, nil
}

// forget deallocates sql's statement, best effort.
func (s *statements) forget(ctx context.Context, conn *pgconn.PgConn, sql string) {
	name, ok := s.names[sql]
	if !ok {
		return
	}
	delete(s.names, sql)
	if !conn.IsClosed() && ctx.Err() == nil {
		_ = conn.Deallocate(ctx, name)
	}
}

// stalePlan reports an error that a prepared statement gives after DDL changed
// what it returns ("cached plan must not change result type") or after it was
// lost: preparing it again fixes it.
func stalePlan(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "0A000" || pgErr.Code == "26000")
}

// ping checks that the database answers, opening a connection if none is idle.
func (p *connPool) ping(ctx context.Context) error {
	conn, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer p.release(conn)
	return conn.Ping(ctx)
}

// closeConn sends Terminate, waiting briefly for a busy socket.
func closeConn(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
