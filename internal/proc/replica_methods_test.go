package proc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// shMethod is a custom replica method running script with sh; the script sees
// Patroni's arguments as "$@" and finds the data directory in $datadir.
func shMethod(name, script string) ReplicaMethod {
	return ReplicaMethod{Name: name, Command: []string{"sh", "-c",
		`for a; do case "$a" in --datadir=*) datadir="${a#--datadir=}";; esac; done; ` + script, name}}
}

// TestCloneMethodsInOrder: a failing custom method leaves files behind and the
// next method still gets a clean directory (basebackup builds a replica);
// keep_data keeps what an earlier method left; when every method fails, the
// entries that were there before the clone (lost+found, dot files) stay.
func TestCloneMethodsInOrder(t *testing.T) {
	a := newTestNode(t, testConfig(t, "pg-a"))
	ctx := opCtx(t)
	a.initAndStartPrimary(ctx)
	a.must(a.p.execSQL(ctx, "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '"+strings.ReplaceAll(testReplPassword, "'", "''")+"'"), "create role")

	t.Run("failing method, then basebackup", func(t *testing.T) {
		cfg := testConfig(t, "pg-b")
		args := filepath.Join(filepath.Dir(cfg.DataDir), "args")
		cfg.ReplicaMethods = []ReplicaMethod{
			shMethod("broken", `echo "$@" > `+args+`; echo junk > "$datadir/junk"; exit 3`),
			{Name: BasebackupMethod},
		}
		b := newTestNode(t, cfg)
		b.must(b.p.Clone(ctx, a.source(), cluster.CloneOptions{}), "clone")
		if exists(filepath.Join(cfg.DataDir, "junk")) {
			t.Error("the failed method's file survived: basebackup did not get a clean directory")
		}
		if !exists(filepath.Join(cfg.DataDir, "PG_VERSION")) {
			t.Error("want a cloned data directory")
		}
		got, _ := os.ReadFile(args)
		for _, want := range []string{"--scope=proc-test", "--role=replica", "--datadir=" + cfg.DataDir, "--connstring=dbname=postgres user=replicator host=127.0.0.1"} {
			if !strings.Contains(string(got), want) {
				t.Errorf("the method's arguments %q lack %q", got, want)
			}
		}
		if strings.Contains(string(got), "password") {
			t.Errorf("the connstring carries a password: %q", got)
		}
	})

	t.Run("keep_data keeps what the method before left", func(t *testing.T) {
		cfg := testConfig(t, "pg-c")
		keep := shMethod("check", `test -f "$datadir/junk"`)
		keep.KeepData = true
		cfg.ReplicaMethods = []ReplicaMethod{shMethod("broken", `echo junk > "$datadir/junk"; exit 3`), keep}
		c := newTestNode(t, cfg)
		c.must(c.p.Clone(ctx, a.source(), cluster.CloneOptions{}), "clone")
		if !exists(filepath.Join(cfg.DataDir, "junk")) {
			t.Error("keep_data: the directory was emptied")
		}
	})

	t.Run("every method fails: only what they made is removed, the error names each", func(t *testing.T) {
		cfg := testConfig(t, "pg-d")
		cfg.ReplicaMethods = []ReplicaMethod{shMethod("broken", `echo junk > "$datadir/junk"; exit 7`)}
		d := newTestNode(t, cfg)
		d.must(os.MkdirAll(cfg.DataDir, 0o700), "data dir")
		d.must(os.WriteFile(filepath.Join(cfg.DataDir, ".keepme"), nil, 0o600), "dot file")
		err := d.p.Clone(ctx, a.source(), cluster.CloneOptions{})
		if err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "exited with status 7") {
			t.Fatalf("Clone = %v, want an error naming the method and its exit status", err)
		}
		ents, _ := os.ReadDir(cfg.DataDir)
		if len(ents) != 1 || ents[0].Name() != ".keepme" {
			t.Errorf("data directory after the failure holds %v, want only .keepme", ents)
		}
	})

	t.Run("no source: only no_leader methods, with an empty connstring", func(t *testing.T) {
		cfg := testConfig(t, "pg-e")
		args := filepath.Join(filepath.Dir(cfg.DataDir), "args")
		nl := shMethod("restore", `echo "$@" > `+args)
		nl.NoLeader = true
		cfg.ReplicaMethods = []ReplicaMethod{{Name: BasebackupMethod}, nl}
		e := newTestNode(t, cfg)
		e.must(e.p.Clone(ctx, cluster.ConnInfo{}, cluster.CloneOptions{}), "clone")
		if got, _ := os.ReadFile(args); !strings.HasSuffix(strings.TrimSpace(string(got)), "--connstring=") {
			t.Errorf("arguments %q: want an empty --connstring last", got)
		}
	})
}

// TestCustomBootstrap restores a data directory with a bootstrap command (here
// pg_basebackup of another primary stands in for a backup tool), recovers it
// to the end with recovery_conf, and leaves it stopped and out of recovery, so
// that it starts as a primary with the source's rows. A failing command is an
// error naming it and its exit status, and leaves nothing behind.
func TestCustomBootstrap(t *testing.T) {
	acfg := testConfig(t, "pg-a")
	acfg.PgHBA = append(acfg.PgHBA, "local replication all trust")
	a := newTestNode(t, acfg)
	ctx := opCtx(t)
	a.initAndStartPrimary(ctx)
	a.must(a.p.execSQL(ctx, "CREATE TABLE t (id int primary key)"), "create table")
	a.must(a.p.execSQL(ctx, "INSERT INTO t SELECT generate_series(1, 42)"), "insert")

	t.Run("restore and recover", func(t *testing.T) {
		cfg := testConfig(t, "pg-r")
		cfg.BootstrapMethod = &BootstrapMethod{Name: "copy",
			Command: []string{"sh", "-c", `for a; do case "$a" in --datadir=*) d="${a#--datadir=}";; esac; done; ` +
				`exec "$0" --pgdata="$d" -X stream --checkpoint=fast --dbname="host=` + a.cfg.SocketDir + ` port=` + strconv.Itoa(a.cfg.Port) + ` user=postgres"`,
				filepath.Join(cfg.BinDir, "pg_basebackup")},
			RecoveryConf: map[string]any{"restore_command": "/bin/false", "recovery_target_action": "promote"}}
		r := newTestNode(t, cfg)
		r.must(r.p.CustomBootstrap(ctx, cluster.StartOptions{}), "custom bootstrap")
		if r.p.current() != nil {
			t.Fatal("postgres still runs after the custom bootstrap")
		}
		if exists(filepath.Join(cfg.DataDir, recoverySignal)) || exists(filepath.Join(cfg.DataDir, standbySignal)) {
			t.Error("a signal file survived the end of recovery")
		}
		r.must(r.p.Start(ctx, cluster.StartOptions{}), "start as primary")
		if v, err := r.queryOne(ctx, "SELECT pg_is_in_recovery()::text || ' ' || count(*) FROM t"); err != nil || v != "false 42" {
			t.Errorf("restored primary: %q %v, want \"false 42\"", v, err)
		}
		if v, _ := r.queryOne(ctx, "SHOW hot_standby"); v != "on" {
			t.Errorf("hot_standby after the bootstrap = %q, want on", v)
		}
	})

	t.Run("failing command", func(t *testing.T) {
		cfg := testConfig(t, "pg-f")
		cfg.BootstrapMethod = &BootstrapMethod{Name: "broken", Command: []string{"sh", "-c", "exit 5"}}
		f := newTestNode(t, cfg)
		err := f.p.CustomBootstrap(ctx, cluster.StartOptions{})
		if err == nil || !strings.Contains(err.Error(), "sh -c exit 5") || !strings.Contains(err.Error(), "exited with status 5") {
			t.Fatalf("CustomBootstrap = %v, want an error naming the command and its exit status", err)
		}
		if st := f.p.Observe(ctx).State; st != cluster.StateCustomBootstrapFailed {
			t.Errorf("state = %q, want %q", st, cluster.StateCustomBootstrapFailed)
		}
	})
}
