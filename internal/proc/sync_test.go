package proc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// TestSynchronousStandbyNamesReload sets synchronous_standby_names on a real
// primary through Reload (no restart), sees it in effect and the replica
// reported "sync" in the observation, shows a commit waiting while the listed
// standby is down and released when it comes back, and restores asynchronous
// commits by reloading without it.
func TestSynchronousStandbyNamesReload(t *testing.T) {
	a := newTestNode(t, testConfig(t, "pg-a"))
	b := newTestNode(t, testConfig(t, "pg-sync-b")) // a name that needs quoting
	ctx := opCtx(t)
	a.initAndStartPrimary(ctx)
	a.must(a.p.execSQL(ctx, "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '"+strings.ReplaceAll(testReplPassword, "'", "''")+"'"), "create role")
	a.must(a.p.execSQL(ctx, "SELECT pg_create_physical_replication_slot($1)", cluster.SlotName("pg-sync-b")), "create slot")
	a.must(a.p.execSQL(ctx, "CREATE TABLE t (id int primary key)"), "create table")
	b.must(b.p.Clone(ctx, a.source(), cluster.CloneOptions{}), "clone")
	b.must(b.p.Start(ctx, replicaOpts("pg-sync-b", a)), "start replica")
	pid := a.p.Observe(ctx).PostmasterPID

	set := func(v string) {
		t.Helper()
		a.must(a.p.Reload(ctx, cluster.StartOptions{Params: map[string]any{"synchronous_standby_names": v}}), "reload")
	}
	set(`"pg-sync-b"`)
	eventually(t, 30*time.Second, "the replica is sync with the GUC in effect", func() (bool, string) {
		o := a.p.Observe(ctx)
		for _, r := range o.Replication {
			if r.ApplicationName == "pg-sync-b" && r.State == "streaming" && r.SyncState == "sync" {
				return o.SyncStandbyNames == `"pg-sync-b"`, o.SyncStandbyNames
			}
		}
		return false, o.SyncStandbyNames + o.Err
	})
	if o := a.p.Observe(ctx); o.PostmasterPID != pid || o.PendingRestart {
		t.Fatalf("the GUC change restarted postgres or wants a restart: %+v", o)
	}
	a.must(a.p.execSQL(ctx, "INSERT INTO t VALUES (1)"), "insert acknowledged by the sync standby")

	// The listed standby stops: a commit waits for it.
	b.must(b.p.Stop(ctx, cluster.StopFast), "stop replica")
	cc, err := a.p.connConfig()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// pgnoded's own connection commits locally (synchronous_commit=local);
	// a client's session waits.
	if _, err := conn.Exec(ctx, "SET synchronous_commit TO on").ReadAll(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "INSERT INTO t VALUES (2)").ReadAll()
		done <- err
	}()
	octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
	err = a.p.execSQL(octx, "CREATE ROLE sync_probe LOGIN")
	ocancel()
	if err != nil {
		t.Fatalf("pgnoded's own commit waited for the sync standby: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("commit returned while the sync standby is down: %v", err)
	case <-time.After(2 * time.Second):
	}
	b.must(b.p.Start(ctx, replicaOpts("pg-sync-b", a)), "restart replica")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("commit after the standby came back: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("commit still waits after the sync standby came back")
	}
	waitRow(t, ctx, b, 2)

	// Turned off: asynchronous again, no restart.
	set("")
	eventually(t, 30*time.Second, "the replica is async", func() (bool, string) {
		o := a.p.Observe(ctx)
		for _, r := range o.Replication {
			if r.ApplicationName == "pg-sync-b" && r.SyncState == "async" {
				return o.SyncStandbyNames == "", o.SyncStandbyNames
			}
		}
		return false, o.Err
	})
	b.must(b.p.Stop(ctx, cluster.StopFast), "stop replica again")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.p.execSQL(wctx, "INSERT INTO t VALUES (3)"); err != nil {
		t.Fatalf("an asynchronous commit waited: %v", err)
	}
	if o := a.p.Observe(ctx); o.PostmasterPID != pid {
		t.Fatalf("postgres restarted: pid %d, was %d", o.PostmasterPID, pid)
	}
}
