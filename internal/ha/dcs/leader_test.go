package dcs

import (
	"errors"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// TestAcquireLeaderRace: two members race for the leader key; exactly one wins,
// and the loser's leader-guarded writes fail with ErrNotLeader (an error, not false).
func TestAcquireLeaderRace(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	stores := []*testStore{
		startStore(t, e, base, "pg1", 10*time.Second),
		startStore(t, e, base, "pg2", 10*time.Second),
	}
	ctx := ctxT(t)
	for round := range 5 {
		var wg sync.WaitGroup
		won := make([]bool, 2)
		errs := make([]error, 2)
		for i, s := range stores {
			wg.Go(func() { won[i], errs[i] = s.AcquireLeader(ctx) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: errors %v", round, errs)
		}
		if won[0] == won[1] {
			t.Fatalf("round %d: won = %v, want exactly one winner", round, won)
		}
		w, l := stores[0], stores[1]
		if won[1] {
			w, l = l, w
		}
		if got := l.View().Leader; got == nil || got.Name != w.cfg.Name {
			t.Errorf("round %d: loser's view leader = %+v, want %s", round, got, w.cfg.Name)
		}
		if err := l.SetStatus(ctx, cluster.StatusKey{Optime: 1}); !errors.Is(err, ErrNotLeader) {
			t.Errorf("loser SetStatus = %v, want ErrNotLeader", err)
		}
		if err := l.SetHistory(ctx, nil); !errors.Is(err, ErrNotLeader) {
			t.Errorf("loser SetHistory = %v, want ErrNotLeader", err)
		}
		if err := l.SetFailsafe(ctx, map[string]string{"x": "y"}); !errors.Is(err, ErrNotLeader) {
			t.Errorf("loser SetFailsafe = %v, want ErrNotLeader", err)
		}
		if ok, err := l.UpdateLeader(ctx); err != nil || ok {
			t.Errorf("loser UpdateLeader = %v, %v; want false", ok, err)
		}
		if err := l.ReleaseLeader(ctx); err != nil {
			t.Errorf("loser ReleaseLeader = %v", err)
		}
		if ok, err := w.UpdateLeader(ctx); err != nil || !ok {
			t.Errorf("winner UpdateLeader = %v, %v", ok, err)
		}
		if err := w.SetStatus(ctx, cluster.StatusKey{Optime: int64(round + 10)}); err != nil {
			t.Errorf("winner SetStatus = %v", err)
		}
		if err := w.ReleaseLeader(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "both views unlocked", func() bool {
			return stores[0].View().Leader == nil && stores[1].View().Leader == nil
		})
	}
}

// TestLeaseExpiryDropsLeader: a member that stops renewing loses its leader
// and member keys after the TTL; the other member's view and Changed show it.
func TestLeaseExpiryDropsLeader(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	a := startStore(t, e, base, "pg1", 2*time.Second)
	b := startStore(t, e, base, "pg2", 2*time.Second)
	ctx := ctxT(t)
	if ok, err := a.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader = %v, %v", ok, err)
	}
	if err := a.TouchMember(ctx, cluster.Member{State: "running", Role: "master"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b sees pg1 lead", func() bool {
		v := b.View()
		return v.Leader != nil && v.Leader.Name == "pg1" && len(v.Members) == 1
	})
	drain(b.Changed())
	stopped := time.Now()
	a.stop(t) // no revoke: the keys must expire with the lease

	deadline := time.After(15 * time.Second)
	for b.View().Leader != nil {
		select {
		case <-b.Changed():
		case <-deadline:
			t.Fatal("leader key did not expire / Changed did not fire")
		}
	}
	t.Logf("leader key gone %s after keepalives stopped (ttl 2s)", time.Since(stopped).Round(10*time.Millisecond))
	waitFor(t, 5*time.Second, "member key expired", func() bool { return len(b.View().Members) == 0 })
	if ok, err := b.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("b AcquireLeader after expiry = %v, %v", ok, err)
	}
}

// TestRestartAdoptsLease: pgnoded restarted within the TTL takes its live
// leader key back on the same lease; the key is never absent, and a later TTL
// change moves it to a new lease without a gap either.
func TestRestartAdoptsLease(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	a := startStore(t, e, base, "pg1", 10*time.Second)
	ctx := ctxT(t)
	if ok, err := a.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader = %v, %v", ok, err)
	}
	v := a.View()
	oldLease := v.Leader.LeaseID

	c := e.Client()
	wctx := ctxT(t)
	events := c.Watch(wctx, base+"/leader", clientv3.WithPrefix(), clientv3.WithRev(v.Leader.ModRevision+1))
	a.stop(t) // pgnoded crash: no revoke

	a2 := startStore(t, e, base, "pg1", 10*time.Second)
	if ok, err := a2.UpdateLeader(ctx); err != nil || !ok {
		t.Fatalf("UpdateLeader after restart = %v, %v", ok, err)
	}
	if got := rawKeys(t, c, base)["leader"].lease; got != oldLease {
		t.Errorf("leader key lease = %x, want the adopted %x", got, oldLease)
	}
	if vu := a2.LeaseValidUntil(); time.Until(vu) < 5*time.Second {
		t.Errorf("LeaseValidUntil = %v, want ~10s ahead", vu)
	}

	// A TTL change: new lease, key re-attached by UpdateLeader.
	a2.SetTTL(12 * time.Second)
	if ok, err := a2.UpdateLeader(ctx); err != nil || !ok {
		t.Fatalf("UpdateLeader after SetTTL = %v, %v", ok, err)
	}
	newLease := rawKeys(t, c, base)["leader"].lease
	if newLease == oldLease || newLease == 0 {
		t.Errorf("leader key lease after SetTTL = %x (old %x)", newLease, oldLease)
	}
	ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(newLease))
	if err != nil || ttl.GrantedTTL != 12 {
		t.Errorf("new lease granted TTL = %+v, %v; want 12", ttl, err)
	}

	// Fence the watch with a marker put, then check no delete of the leader key was seen.
	if _, err := c.Put(ctx, base+"/leader-marker", "x"); err != nil {
		t.Fatal(err)
	}
	puts := 0
	for marker := false; !marker; {
		select {
		case resp := <-events:
			if resp.Err() != nil {
				t.Fatal(resp.Err())
			}
			for _, ev := range resp.Events {
				switch {
				case string(ev.Kv.Key) != base+"/leader":
					marker = true
				case ev.Type == clientv3.EventTypeDelete:
					t.Errorf("leader key deleted at revision %d", ev.Kv.ModRevision)
				default:
					puts++
				}
			}
		case <-wctx.Done():
			t.Fatal("watch did not reach the marker")
		}
	}
	if puts != 1 {
		t.Errorf("leader key puts = %d, want 1 (only the re-attach after SetTTL)", puts)
	}
}
