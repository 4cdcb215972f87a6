package ctl

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func i64(v int64) *int64 { return &v }

func str(s string) *string { return &s }

const mib = 1 << 20

// fixtureView is a three-member cluster: a leader, a sync standby with a tag,
// and a cascading replica that lags 3.5 MiB and must not be promoted.
func fixtureView() cluster.View {
	optime := int64(100 * mib)
	return cluster.View{
		Leader:     &cluster.LeaderKey{Name: "pg-test-1"},
		Initialize: str("7300000000000000001"),
		Members: map[string]cluster.Member{
			"pg-test-1": {ConnURL: "postgres://10.10.10.11:5432/postgres", APIURL: "http://10.10.10.11:8008/patroni",
				State: "running", Role: "master", Version: "3.0.2", XLogLocation: i64(optime), Timeline: 2},
			"pg-test-2": {ConnURL: "postgres://10.10.10.12:5432/postgres", APIURL: "http://10.10.10.12:8008/patroni",
				State: "streaming", Role: "replica", Version: "3.0.2", XLogLocation: i64(optime), Timeline: 2,
				Tags: map[string]any{"clonefrom": true}},
			"pg-test-3": {ConnURL: "postgres://10.10.10.13:5432/postgres", APIURL: "http://10.10.10.13:8008/patroni",
				State: "streaming", Role: "replica", Version: "3.0.2", XLogLocation: i64(optime - 3*mib - mib/2), Timeline: 2,
				Tags: map[string]any{"replicatefrom": "pg-test-2", "nofailover": true}},
		},
		Sync:    &cluster.SyncState{Leader: "pg-test-1", SyncStandby: str("pg-test-2")},
		Status:  &cluster.StatusKey{Optime: optime},
		Config:  &cluster.DynamicConfig{TTL: 30, LoopWait: 10, Raw: map[string]any{}},
		History: []cluster.HistoryEntry{{Timeline: 1, LSN: 25165984, Reason: "no recovery target specified", Timestamp: "2024-05-01T10:00:00.123456+00:00", NewLeader: "pg-test-1"}},
	}
}

// fakeStore serves a fixed view and records config and failover writes.
type fakeStore struct {
	views     map[string]cluster.View
	configs   []string
	failovers []cluster.Failover
	casFail   bool
}

func (f *fakeStore) ReadView(_ context.Context, name string) (cluster.View, error) {
	return f.views[name], nil
}

func (f *fakeStore) SetConfig(_ context.Context, _ string, raw []byte, _ int64) (bool, error) {
	if f.casFail {
		return false, nil
	}
	f.configs = append(f.configs, string(raw))
	return true, nil
}

func (f *fakeStore) SetFailover(_ context.Context, _ string, fo cluster.Failover) error {
	f.failovers = append(f.failovers, fo)
	return nil
}

func (f *fakeStore) Close() error { return nil }

// fixedNow is the clock of every test: 2024-05-01 12:00:00 UTC.
func fixedNow() time.Time { return time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC) }

// result is the outcome of one Run.
type result struct {
	code           int
	stdout, stderr string
}

// runCtl runs pgnodectl with a config file naming scope pg-test, the given
// store (nil: a real etcd connection) and stdin.
func runCtl(t *testing.T, st store, stdin string, env []string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Environ: env, Now: fixedNow, poll: 10 * time.Millisecond,
	}
	if st != nil {
		e.openStore = func(etcdTarget) (store, error) { return st, nil }
	}
	code := Run(context.Background(), args, e)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// writeConfig writes a minimal pgnodectl configuration and returns its path.
func writeConfig(t *testing.T, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pgnodectl.yml")
	body := "scope: pg-test\nnamespace: /service\netcd3:\n  host: 127.0.0.1:2379\n" + extra
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
