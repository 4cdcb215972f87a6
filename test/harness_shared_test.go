//go:build integration

package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// Helpers shared by the loopback harness (Node, Cluster) and the namespace
// harness (Node, Cluster).

// configEdit changes a node's config options before the file is written
// (e.g. PGExtra: lines added to the postgresql section; PGParams: lines
// added to postgresql.parameters, indented by four spaces).
type configEdit func(o *nodeconf.Options)

// testPasswords are the database roles' passwords of every test cluster.
var testPasswords = nodeconf.Passwords{Superuser: superPassword, Replication: "itest-repl", Rewind: "itest-rewind"}

// writeConfig renders o (internal/testenv/nodeconf) into path.
func writeConfig(t testing.TB, path string, o nodeconf.Options) {
	t.Helper()
	b, err := nodeconf.Render(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// logTail logs the last n bytes of the pgnoded log of node name at path, if it can be read.
func logTail(t testing.TB, name, path string, n int) {
	if b, err := os.ReadFile(path); err == nil {
		t.Logf("---- pgnoded log of %s (last %d bytes) ----\n%s", name, n, tail(b, n))
	}
}

// postmasterPID reads postmaster.pid in the data directory under dir; 0 if absent.
func postmasterPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscanf(string(b), "%d", &pid)
	return pid
}

// killPostmaster kills the postmaster of the data directory under dir with SIGKILL.
func killPostmaster(dir string) {
	if pid := postmasterPID(dir); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// optionsStatus sends OPTIONS url like HAProxy does; 0 when unreachable.
func optionsStatus(hc *http.Client, url string) int {
	req, _ := http.NewRequest(http.MethodOptions, url, nil)
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// getDoc fetches url; 0 and nil when unreachable.
func getDoc(hc *http.Client, url string) (int, []byte) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// isWritable reports whether the postgres connect reaches runs and is not in recovery.
func isWritable(ctx context.Context, connect func(context.Context) (*pgx.Conn, error)) bool {
	conn, err := connect(ctx)
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var rec bool
	return conn.QueryRow(qctx, "select pg_is_in_recovery()").Scan(&rec) == nil && !rec
}

// etcdValue reads one key; false when absent or unreadable.
func etcdValue(ctx context.Context, cli *clientv3.Client, key string) (string, bool) {
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

// allAnswer200 reports whether every node answers OPTIONS path with 200 (it stops at the first that does not).
func allAnswer200(nodes []*Node, path string) bool {
	for _, n := range nodes {
		if n.Check(path) != 200 {
			return false
		}
	}
	return true
}

// nodesExcept returns nodes without those in not, in order.
func nodesExcept(nodes []*Node, not ...*Node) []*Node {
	var out []*Node
	for _, m := range nodes {
		if !slices.Contains(not, m) {
			out = append(out, m)
		}
	}
	return out
}

// createWritesTable creates table (id bigint primary key, at timestamptz) on
// the postgres connect reaches, the primary named name.
func createWritesTable(ctx context.Context, name string, connect func(context.Context) (*pgx.Conn, error), table string) error {
	conn, err := connect(ctx)
	if err != nil {
		return fmt.Errorf("connect to primary %s: %w", name, err)
	}
	_, err = conn.Exec(ctx, "create table if not exists "+table+" (id bigint primary key, at timestamptz default now())")
	conn.Close(ctx)
	if err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	return nil
}

// presentIDs reads the ids in table on the postgres connect reaches, node name's.
func presentIDs(ctx context.Context, name string, connect func(context.Context) (*pgx.Conn, error), table string) (map[int64]bool, error) {
	conn, err := connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "select id from "+table)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", table, name, err)
	}
	present := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		present[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return present, nil
}

// everyTick calls fn every d until ctx ends; fn is not called once ctx has ended.
func everyTick(ctx context.Context, d time.Duration, fn func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if ctx.Err() != nil {
			return
		}
		fn()
	}
}
