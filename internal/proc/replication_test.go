package proc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// replicaOpts starts a node as a replica of up using its member slot.
func replicaOpts(self string, up *testNode) cluster.StartOptions {
	return cluster.StartOptions{AsReplica: true, Recovery: cluster.RecoveryConfig{
		Upstream:        up.source(),
		SlotName:        cluster.SlotName(self),
		ApplicationName: self,
	}}
}

// waitRow waits until n sees the row id in t.
func waitRow(t *testing.T, ctx context.Context, n *testNode, id int) {
	t.Helper()
	eventually(t, 30*time.Second, n.cfg.Name+" sees row", func() (bool, string) {
		v, err := n.queryOne(ctx, "SELECT count(*) FROM t WHERE id = $1", id)
		return err == nil && v == "1", v + errString(err)
	})
}

func TestCloneStreamPromoteRewind(t *testing.T) {
	a := newTestNode(t, testConfig(t, "pg-a"))
	bcfg := testConfig(t, "pg-b")
	// -R writes primary_conninfo into postgresql.auto.conf; Start must remove it.
	bcfg.BasebackupOptions = []any{"write-recovery-conf", map[string]any{"max-rate": "1000M"}}
	b := newTestNode(t, bcfg)
	ctx := opCtx(t)

	// Primary a with a replication role and a slot for b.
	a.initAndStartPrimary(ctx)
	a.must(a.p.execSQL(ctx, "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '"+strings.ReplaceAll(testReplPassword, "'", "''")+"'"), "create role")
	a.must(a.p.execSQL(ctx, "SELECT pg_create_physical_replication_slot($1)", cluster.SlotName("pg-b")), "create slot")
	a.must(a.p.execSQL(ctx, "CREATE TABLE t (id int primary key)"), "create table")
	a.must(a.p.execSQL(ctx, "INSERT INTO t VALUES (1)"), "insert 1")

	// Clone b and start it as a streaming replica.
	b.must(b.p.Clone(ctx, a.source(), cluster.CloneOptions{}), "clone")
	if empty, _ := b.p.DataDirEmpty(); empty {
		t.Fatal("data dir empty after clone")
	}
	b.must(b.p.Start(ctx, replicaOpts("pg-b", a)), "start replica")
	if !exists(filepath.Join(b.cfg.DataDir, standbySignal)) {
		t.Error("standby.signal missing on the replica")
	}
	checkPgpass(t, b.cfg.PgPass)
	if auto, _ := os.ReadFile(filepath.Join(b.cfg.DataDir, "postgresql.auto.conf")); strings.Contains(string(auto), "primary_conninfo") {
		t.Errorf("postgresql.auto.conf still sets primary_conninfo:\n%s", auto)
	}
	if ci, err := b.queryOne(ctx, "SHOW primary_conninfo"); err != nil || !strings.Contains(ci, "application_name=pg-b") || !strings.Contains(ci, "passfile=") {
		t.Errorf("primary_conninfo = %q, %v", ci, err)
	}
	eventually(t, 30*time.Second, "replica streaming", func() (bool, string) {
		o := b.p.Observe(ctx)
		return o.Ready && o.InRecovery && o.Streaming && o.Timeline == 1 && o.ReceiverTLI == 1, string(o.State) + o.Err
	})
	a.must(a.p.execSQL(ctx, "INSERT INTO t VALUES (2)"), "insert 2")
	waitRow(t, ctx, b, 2)
	eventually(t, 10*time.Second, "primary lists the replica", func() (bool, string) {
		o := a.p.Observe(ctx)
		for _, r := range o.Replication {
			if r.ApplicationName == "pg-b" && r.State == "streaming" && r.UseName == "replicator" && r.ClientAddr == "127.0.0.1" && r.ReplayLSN > 0 {
				return true, ""
			}
		}
		return false, ""
	})
	ob := b.p.Observe(ctx)
	if ob.ReceivedLSN == 0 || ob.ReplayedLSN == 0 || ob.ReplayedAt == nil || ob.ReceiverLatest == 0 || ob.WALPosition() == 0 {
		t.Errorf("replica positions: %+v", ob)
	}
	if slot, err := a.queryOne(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", cluster.SlotName("pg-b")); err != nil || slot != "t" {
		t.Errorf("slot active = %q, %v", slot, err)
	}

	// Promote b: it leaves recovery on timeline 2.
	start := time.Now()
	b.must(b.p.Promote(ctx), "promote")
	t.Logf("promotion visible after %s", time.Since(start))
	ob = b.p.Observe(ctx)
	if ob.InRecovery || ob.Timeline != 2 || !ob.IsRunningPrimary() {
		t.Fatalf("after promote: %+v", ob)
	}
	b.must(b.p.Promote(ctx), "promote a primary (no-op)")

	// Split brain: a still takes a write that must vanish after the rewind.
	a.must(a.p.execSQL(ctx, "INSERT INTO t VALUES (99)"), "insert on old primary")
	a.must(a.p.Stop(ctx, cluster.StopImmediate), "stop old primary") // unclean: needs crash recovery first
	if cd, _ := a.p.ControlData(ctx); cd.ClusterState != "in production" {
		t.Logf("old primary state after immediate stop: %q", cd.ClusterState)
	}
	b.must(b.p.execSQL(ctx, "INSERT INTO t VALUES (3)"), "insert on new primary")
	b.must(b.p.execSQL(ctx, "SELECT pg_create_physical_replication_slot($1)", cluster.SlotName("pg-a")), "slot for a")

	b.must(b.p.execSQL(ctx, "CHECKPOINT"), "checkpoint new primary") // pg_rewind reads the new timeline from pg_control
	a.must(a.p.Rewind(ctx, b.source()), "rewind")
	a.must(a.p.Start(ctx, replicaOpts("pg-a", b)), "start old primary as replica")
	waitRow(t, ctx, a, 3)
	if v, err := a.queryOne(ctx, "SELECT count(*) FROM t WHERE id = 99"); err != nil || v != "0" {
		t.Errorf("split-brain row after rewind: %q, %v", v, err)
	}
	eventually(t, 30*time.Second, "rewound replica streams on timeline 2", func() (bool, string) {
		o := a.p.Observe(ctx)
		return o.InRecovery && o.Streaming && o.Timeline == 2, o.Err
	})
	// Our pg_hba.conf survived pg_rewind's copy of the source's files.
	hba, _ := os.ReadFile(filepath.Join(a.cfg.DataDir, hbaName))
	if string(hba) != string(renderLines(a.cfg.PgHBA)) {
		t.Errorf("pg_hba.conf after rewind = %q", hba)
	}
}

func TestStandaloneReplicaAndCrashRecovery(t *testing.T) {
	n := newTestNode(t, testConfig(t, "pg-solo"))
	ctx := opCtx(t)
	n.initAndStartPrimary(ctx)
	n.must(n.p.execSQL(ctx, "CREATE TABLE t (id int)"), "create")
	pid := n.p.Observe(ctx).PostmasterPID
	exited := n.p.Exited()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(exited, 5*time.Second); err != nil {
		t.Fatal("kill not detected")
	}
	// Empty upstream: read-only standby without primary_conninfo.
	eventually(t, 30*time.Second, "start read-only standby", func() (bool, string) {
		err := n.p.Start(ctx, cluster.StartOptions{AsReplica: true})
		return err == nil, errString(err)
	})
	o := n.p.Observe(ctx)
	if !o.Ready || !o.InRecovery || o.Streaming {
		t.Errorf("standalone standby: %+v", o)
	}
	if err := n.p.execSQL(ctx, "INSERT INTO t VALUES (1)"); err == nil {
		t.Error("write accepted by a read-only standby")
	}
	if v, _ := n.queryOne(ctx, "SHOW primary_conninfo"); v != "" {
		t.Errorf("primary_conninfo = %q", v)
	}
	n.must(n.p.Promote(ctx), "promote standalone")
	n.must(n.p.execSQL(ctx, "INSERT INTO t VALUES (1)"), "write after promote")
}

// checkPgpass requires the password file to be 0600 and owned by the postgres user.
func checkPgpass(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("pgpass: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("pgpass mode = %v", st.Mode().Perm())
	}
	u, _ := lookupOSUser(DefaultOSUser)
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != u.uid {
		t.Errorf("pgpass owner uid = %d, want %d", sys.Uid, u.uid)
	}
}
