package proc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// Postgres implements the HA loop's port; a test file may import internal/ha
// (scripts/check-deps.sh checks only non-test imports).
var _ ha.Postgres = (*Postgres)(nil)

const (
	testSuperPassword = "su-secret"
	testReplPassword  = "repl 'secret'"
)

// testNode is one postgres under test: its config, a running Postgres and helpers.
type testNode struct {
	t   testing.TB
	cfg Config
	p   *Postgres
	ctx context.Context
	// stopRun cancels Run and waits for it.
	stopRun func()
}

// testConfig makes a config on fresh directories owned by the postgres user.
func testConfig(t testing.TB, name string) Config {
	t.Helper()
	testenv.RequireRoot(t)
	bin := testenv.PGBinDir(t)
	base := testenv.PGDir(t)
	return Config{
		Name:            name,
		Scope:           "proc-test",
		DataDir:         filepath.Join(base, "data"),
		BinDir:          bin,
		ListenAddresses: "127.0.0.1",
		Port:            testenv.FreePort(t),
		SocketDir:       base,
		PgPass:          filepath.Join(base, "pgpass"),
		Superuser:       Credentials{Username: "postgres", Password: testSuperPassword},
		Replication:     Credentials{Username: "replicator", Password: testReplPassword},
		Parameters: map[string]any{
			"shared_buffers":   "16MB",
			"fsync":            "off",
			"log_min_messages": "warning",
		},
		PgHBA: []string{
			"local all all trust",
			"host replication replicator 127.0.0.1/32 scram-sha-256",
			"host all all 127.0.0.1/32 scram-sha-256",
		},
		InitdbOptions: []any{map[string]any{"encoding": "UTF8"}, map[string]any{"locale": "C"}},
		Logger:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// newTestNode builds a Postgres for cfg, runs it, and makes sure every
// postmaster on its data directory is killed when the test ends.
func newTestNode(t testing.TB, cfg Config) *testNode {
	t.Helper()
	n := &testNode{t: t, cfg: cfg}
	// Registered first, so it runs last: Run stops after the postmaster is killed
	// (its watcher reaps the child).
	n.startRun()
	t.Cleanup(func() { killPostmaster(t, cfg.DataDir) })
	return n
}

// startRun creates a fresh Postgres on the node's config and runs it.
func (n *testNode) startRun() {
	n.t.Helper()
	p, err := New(n.cfg)
	if err != nil {
		n.t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once bool
	stop := func() {
		if once {
			return
		}
		once = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				n.t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			n.t.Errorf("Run did not return within 10s")
		}
	}
	n.p, n.ctx, n.stopRun = p, ctx, stop
	n.t.Cleanup(stop)
}

// opCtx is the bound for one operation in tests.
func opCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// killPostmaster SIGKILLs whatever postmaster runs on dataDir and waits for it to go.
func killPostmaster(t testing.TB, dataDir string) {
	b, err := os.ReadFile(filepath.Join(dataDir, pidFileName))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || !processAlive(pid) || !isPostmasterOf(pid, dataDir) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if processAlive(pid) {
		t.Errorf("postmaster %d still alive after SIGKILL", pid)
	}
}

// eventually polls cond every 20 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, info := cond()
		if ok {
			return
		}
		last = info
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s (last: %s)", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *testNode) must(err error, what string) {
	n.t.Helper()
	if err != nil {
		n.t.Fatalf("%s %s: %v", n.cfg.Name, what, err)
	}
}

// initAndStartPrimary runs initdb and starts postgres as a primary.
func (n *testNode) initAndStartPrimary(ctx context.Context) {
	n.t.Helper()
	n.must(n.p.Initdb(ctx), "initdb")
	n.must(n.p.Start(ctx, cluster.StartOptions{}), "start")
}

// queryOne returns the single value of a one-row, one-column query.
func (n *testNode) queryOne(ctx context.Context, sql string, args ...any) (string, error) {
	rows, err := n.p.querySQL(ctx, sql, args...)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return "", fmt.Errorf("query %q returned %v", sql, rows)
	}
	return rows[0][0], nil
}

// source is how other nodes reach this one over TCP.
func (n *testNode) source() cluster.ConnInfo {
	return cluster.ConnInfo{Host: "127.0.0.1", Port: n.cfg.Port}
}

// waitFor returns an error if ch is not closed within d.
func waitFor(ch <-chan struct{}, d time.Duration) error {
	select {
	case <-ch:
		return nil
	case <-time.After(d):
		return errors.New("timeout")
	}
}

func TestEncodeParams(t *testing.T) {
	got, err := encodeParams([]any{"a", []string{`x`, `y"z`, `b\s`}, 7, int64(-3), true, nil})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", `{"x","y\"z","b\\s"}`, "7", "-3", "true", ""}
	for i, w := range want {
		if string(got[i]) != w {
			t.Errorf("param %d = %q, want %q", i+1, got[i], w)
		}
	}
	if got[5] != nil {
		t.Errorf("nil argument = %q, want NULL", got[5])
	}
	if _, err := encodeParams([]any{3.5}); err == nil {
		t.Error("a float argument was accepted")
	}
}
