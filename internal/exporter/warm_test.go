package exporter

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// warmCollectorFile has a per-database collector and two cluster collectors,
// one gated by a true predicate and one by a false one. The queries count
// their runs in sequences.
const warmCollectorFile = `
per_db:
  query: SELECT nextval('warm_runs') AS v
  metrics: [ { v: { usage: GAUGE, description: runs so far } } ]
gated:
  query: SELECT 2 AS v
  tags: [cluster]
  predicate_queries: [ { name: yes, query: SELECT true } ]
  metrics: [ { v: { usage: GAUGE, description: two } } ]
skipped:
  query: SELECT nextval('warm_skipped') AS v
  tags: [cluster]
  predicate_queries: [ { name: no, query: SELECT false } ]
  metrics: [ { v: { usage: GAUGE, description: never } } ]
`

// idleConns returns the statements prepared on each idle connection of p.
func idleConns(p *connPool) []map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]string
	for _, ic := range p.idle {
		out = append(out, statementsOf(ic.conn).names)
	}
	return out
}

// sequenceValue reads how often nextval ran on seq in database db (0: never).
func sequenceValue(t *testing.T, pg *testenv.PG, db, seq string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var (
		last   int
		called bool
	)
	if err := conn.QueryRow(ctx, "SELECT last_value, is_called FROM "+seq).Scan(&last, &called); err != nil {
		t.Fatal(err)
	}
	if !called {
		return 0
	}
	return last
}

func TestWarmPreparesEveryScrapeConnection(t *testing.T) {
	pg := testenv.StartPostgres(t)
	execSQL(t, pg, "", "CREATE SEQUENCE warm_runs", "CREATE SEQUENCE warm_skipped", "CREATE DATABASE app1")
	execSQL(t, pg, "app1", "CREATE SEQUENCE warm_runs")
	path := writeCollectors(t, warmCollectorFile)
	e := newTestExporter(t, pg, func(c *Config) { c.CollectorFile = path }, nil)

	done, err := e.pg.warm(context.Background())
	if err != nil || !done {
		t.Fatalf("warm = %v, %v; want done", done, err)
	}
	// Both scrape connections of the main database, and app1's one, hold
	// every applicable statement prepared.
	main := idleConns(e.pool)
	if len(main) != DefaultPoolSize-1 {
		t.Fatalf("main database: %d idle connections after warm, want %d", len(main), DefaultPoolSize-1)
	}
	for i, names := range main {
		for _, sql := range []string{"SELECT nextval('warm_runs') AS v", "SELECT 2 AS v", "SELECT true"} {
			if names[sql] == "" {
				t.Errorf("main connection %d: %q not prepared (have %v)", i, sql, names)
			}
		}
		if names["SELECT nextval('warm_skipped') AS v"] != "" {
			t.Errorf("main connection %d: a collector whose predicate is false was prepared", i)
		}
	}
	e.pg.mu.Lock()
	app1 := e.pg.others["app1"]
	e.pg.mu.Unlock()
	if app1 == nil {
		t.Fatal("app1 not discovered by warm")
	}
	if conns := idleConns(app1.pool); len(conns) != 1 || conns[0]["SELECT nextval('warm_runs') AS v"] == "" {
		t.Errorf("app1: idle connections after warm %v, want one with per_db prepared", conns)
	}
	// Each statement ran once per connection, and never behind a false predicate.
	if n := sequenceValue(t, pg, "", "warm_runs"); n != DefaultPoolSize-1 {
		t.Errorf("per_db ran %d times in postgres during warm, want %d", n, DefaultPoolSize-1)
	}
	if n := sequenceValue(t, pg, "app1", "warm_runs"); n != 1 {
		t.Errorf("per_db ran %d times in app1 during warm, want 1", n)
	}
	if n := sequenceValue(t, pg, "", "warm_skipped"); n != 0 {
		t.Errorf("a collector behind a false predicate ran %d times", n)
	}

	// The first scrape still runs every query: nothing came from a cache,
	// and no statistics count the warm-up.
	fams := gather(t, e.Registry())
	if !fams["per_db_v"].has(map[string]string{"datname": "postgres"}) || fams["gated_v"] == nil {
		t.Fatalf("first scrape after warm lacks collectors: %v", fams["per_db_v"])
	}
	for i, s := range fams["per_db_v"].series {
		if s["datname"] == "postgres" && fams["per_db_v"].values[i] != DefaultPoolSize {
			t.Errorf("per_db in postgres = %v, want %d (run again by the scrape)", fams["per_db_v"].values[i], DefaultPoolSize)
		}
	}
	for _, name := range []string{"pg_exporter_query_scrape_total_count", "pg_exporter_query_scrape_hit_count"} {
		for i, s := range fams[name].series {
			want := 1.0
			if name == "pg_exporter_query_scrape_hit_count" {
				want = 0
			}
			if s["query"] == "per_db" && fams[name].values[i] != want {
				t.Errorf("%s%v = %v after warm and one scrape, want %v", name, s, fams[name].values[i], want)
			}
		}
	}
	if v := fams["pg_up"].values[0]; v != 1 {
		t.Errorf("pg_up = %v", v)
	}
	// Once a scrape found postgres up, warm has nothing left to do.
	if done, err := e.pg.warm(context.Background()); done || err != nil {
		t.Errorf("warm after a scrape = %v, %v; want false, nil", done, err)
	}
}

func TestWarmWithPostgresDown(t *testing.T) {
	e, err := New(Config{DSN: deadDSN(t), Logger: testLogger(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if done, err := e.pg.warm(context.Background()); done || err == nil {
		t.Fatalf("warm with postgres down = %v, %v; want an error", done, err)
	}
	// Scrapes report postgres down as before: warm recorded nothing.
	if v := gather(t, e.Registry())["pg_up"].values[0]; v != 0 {
		t.Errorf("pg_up = %v", v)
	}
}

// TestRunWarmsOncePostgresAnswers starts the exporter while nothing listens
// on its postgres port, then opens the port (a TCP relay to a real server):
// Run's warm-up retries and readies the scrape connections without a scrape.
func TestRunWarmsOncePostgresAnswers(t *testing.T) {
	pg := testenv.StartPostgres(t)
	port := testenv.FreePort(t)
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable connect_timeout=2", port, pg.User)
	var logs logBuffer
	e, err := New(Config{Listen: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), DSN: dsn, Logger: logs.logger()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer startRun(t, e)()

	waitUntil(t, 30*time.Second, "the first warm-up attempt finds no postgres", func() bool {
		return strings.Contains(logs.String(), "postgres not reachable yet")
	})
	if n := len(idleConns(e.pool)); n != 0 {
		t.Fatalf("%d connections while postgres was unreachable", n)
	}
	t.Cleanup(relay(t, "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+strconv.Itoa(pg.Port))) // after Run ended
	waitUntil(t, 60*time.Second, "scrape connections warmed after postgres came up", func() bool {
		return len(idleConns(e.pool)) >= DefaultPoolSize-1
	})
	for i, names := range idleConns(e.pool) {
		if len(names) == 0 {
			t.Errorf("connection %d warmed without prepared statements", i)
		}
	}
}

// relay forwards TCP connections from listen to target until stop is called.
func relay(t *testing.T, listen, target string) (stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			track(in)
			track(out)
			wg.Go(func() { _, _ = io.Copy(out, in); out.Close() })
			wg.Go(func() { _, _ = io.Copy(in, out); in.Close() })
		}
	})
	return func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// TestRunWarmsWhenHASeesPostgresRunning: with the HA loop's snapshot, the
// warm-up waits for the loop to report postgres running, then runs at once.
func TestRunWarmsWhenHASeesPostgresRunning(t *testing.T) {
	pg := testenv.StartPostgres(t)
	var running atomic.Bool
	var reads atomic.Int32
	snap := func() *cluster.Snapshot {
		reads.Add(1)
		s := fixedSnapshot()
		if running.Load() {
			s.PG.State = cluster.StateRunning
		} else {
			s.PG.State = cluster.StateStarting
		}
		return s
	}
	e, err := New(Config{Listen: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), DSN: pg.DSN(""), Logger: testLogger(t)}, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer startRun(t, e)()
	// Postgres answers, but the HA loop has not seen it running: a few polls go by.
	waitUntil(t, 30*time.Second, "the warm-up polls the snapshot", func() bool { return reads.Load() >= 3 })
	if n := len(idleConns(e.pool)); n != 0 {
		t.Fatalf("warmed (%d connections) before the HA loop saw postgres running", n)
	}
	running.Store(true)
	waitUntil(t, 30*time.Second, "warmed after the HA loop saw postgres running", func() bool {
		return len(idleConns(e.pool)) >= DefaultPoolSize-1
	})
}

// startRun runs e until the returned stop is called; Run must end without error.
func startRun(t *testing.T, e *Exporter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	return func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}
