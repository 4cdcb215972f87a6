package dcs

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// TestWriteDeleteSyncCAS: the sync key is written and deleted only with a
// compare on its revision (absent for a create) and only by the leader; the
// value is Patroni's compact JSON and the view carries its revision.
func TestWriteDeleteSyncCAS(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	a := startStore(t, e, base, "pg1", 10*time.Second)
	b := startStore(t, e, base, "pg2", 10*time.Second)
	ctx := ctxT(t)
	if ok, err := a.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if ok, err := b.WriteSync(ctx, cluster.SyncState{Leader: "pg2"}, 0); err != nil || ok {
		t.Fatalf("a non-leader wrote the sync key: %v %v", ok, err)
	}
	if ok, err := a.WriteSync(ctx, cluster.SyncState{Leader: "pg1"}, 0); err != nil || !ok {
		t.Fatalf("create: %v %v", ok, err)
	}
	if ok, err := a.WriteSync(ctx, cluster.SyncState{Leader: "pg1"}, 0); err != nil || ok {
		t.Fatalf("a second create succeeded: %v %v", ok, err)
	}
	v := a.View()
	if v.Sync == nil || v.Sync.Leader != "pg1" || v.Sync.SyncStandby != nil || v.Sync.ModRevision == 0 {
		t.Fatalf("view sync = %+v", v.Sync)
	}
	rev := v.Sync.ModRevision
	standby := "pg2"
	if ok, err := a.WriteSync(ctx, cluster.SyncState{Leader: "pg1", SyncStandby: &standby}, rev-1); err != nil || ok {
		t.Fatalf("a stale revision was accepted: %v %v", ok, err)
	}
	if ok, err := a.WriteSync(ctx, cluster.SyncState{Leader: "pg1", SyncStandby: &standby}, rev); err != nil || !ok {
		t.Fatalf("CAS write: %v %v", ok, err)
	}
	resp, err := e.Client().Get(ctx, base+"/sync")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != `{"leader":"pg1","sync_standby":"pg2"}` {
		t.Fatalf("stored value: %v %v", resp, err)
	}
	waitFor(t, 5*time.Second, "the other view sees the standby", func() bool {
		s := b.View().Sync
		return s != nil && s.SyncStandby != nil && *s.SyncStandby == "pg2"
	})
	// Patroni 4.x's spelling carries "quorum" between leader and sync_standby, and reads back.
	zero := 0
	if ok, err := a.WriteSync(ctx, cluster.SyncState{Leader: "pg1", Quorum: &zero}, a.View().Sync.ModRevision); err != nil || !ok {
		t.Fatalf("4.x write: %v %v", ok, err)
	}
	resp, err = e.Client().Get(ctx, base+"/sync")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != `{"leader":"pg1","quorum":0,"sync_standby":null}` {
		t.Fatalf("stored 4.x value: %v %v", resp, err)
	}
	if q := a.View().Sync.Quorum; q == nil || *q != 0 {
		t.Fatalf("quorum read back as %v", q)
	}
	rev = a.View().Sync.ModRevision - 1
	if ok, err := a.DeleteSync(ctx, rev); err != nil || ok {
		t.Fatalf("delete with a stale revision: %v %v", ok, err)
	}
	if ok, err := a.DeleteSync(ctx, a.View().Sync.ModRevision); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if a.View().Sync != nil {
		t.Fatalf("sync key still in the view: %+v", a.View().Sync)
	}
}
