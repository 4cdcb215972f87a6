package dcs

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// TestEtcdOutage: with etcd stopped, keepalives fail (LeaseLost fires,
// LeaseValidUntil stops advancing) and the view goes stale (ReadAt stops,
// Changed fires for the lost watch); once etcd is back the store recovers on
// its own: watch restored, lease renewed or replaced, leadership kept.
func TestEtcdOutage(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	const ttl = 2 * time.Second
	a := startStore(t, e, base, "pg1", ttl)
	ctx := ctxT(t)
	if ok, err := a.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader = %v, %v", ok, err)
	}
	// Progress notifications keep the view current without any key changing.
	quiet := time.Now()
	waitFor(t, 5*time.Second, "ReadAt advanced by progress notifications", func() bool {
		return a.View().ReadAt.After(quiet.Add(ttl / 2))
	})

	assertWatchStable(t, a.Store, ttl)

	drain(a.LeaseLost())
	drain(a.Changed())
	e.Stop()
	stopped := time.Now()

	select {
	case <-a.LeaseLost():
	case <-time.After(10 * time.Second):
		t.Fatal("LeaseLost did not fire with etcd stopped")
	}
	select {
	case <-a.Changed():
	case <-time.After(10 * time.Second):
		t.Fatal("Changed did not fire for the lost watch")
	}
	until := a.LeaseValidUntil()
	if until.After(stopped.Add(ttl)) {
		t.Errorf("LeaseValidUntil %v is later than the stop + ttl %v", until, stopped.Add(ttl))
	}
	waitFor(t, 10*time.Second, "the lease could have expired", func() bool { return time.Now().After(until) })
	if got := a.LeaseValidUntil(); !got.Equal(until) {
		t.Errorf("LeaseValidUntil moved to %v with etcd down", got)
	}
	waitFor(t, 10*time.Second, "view stale", func() bool { v := a.View(); return !v.Valid(time.Now(), ttl) })
	if v := a.View(); v.ReadAt.After(stopped) {
		t.Errorf("ReadAt %v is after etcd stopped at %v", v.ReadAt, stopped)
	}
	if _, err := a.KeepAlive(ctxT(t)); err == nil {
		t.Error("KeepAlive succeeded with etcd stopped")
	}

	drain(a.Changed())
	e.Start()
	restarted := time.Now()
	waitFor(t, 20*time.Second, "view current again", func() bool { return a.View().ReadAt.After(restarted) })
	// reload stores the view and then fires Changed; give the notify the
	// moment between the two.
	select {
	case <-a.Changed():
	case <-time.After(2 * time.Second):
		t.Error("Changed did not fire when the watch was restored")
	}
	waitFor(t, 20*time.Second, "lease renewed", func() bool { return a.LeaseValidUntil().After(restarted) })
	t.Logf("recovered %s after etcd restart", time.Since(restarted).Round(10*time.Millisecond))
	assertWatchStable(t, a.Store, ttl)

	ctx = ctxT(t)
	if ok, err := a.UpdateLeader(ctx); err != nil || !ok {
		t.Fatalf("UpdateLeader after the outage = %v, %v", ok, err)
	}
	if err := a.SetStatus(ctx, cluster.StatusKey{Optime: 42}); err != nil {
		t.Fatalf("SetStatus after the outage: %v", err)
	}
	a.mu.Lock()
	lease := a.lease.id
	a.mu.Unlock()
	if got := rawKeys(t, e.Client(), base)["leader"]; string(got.value) != "pg1" || got.lease != lease {
		t.Errorf("leader key after the outage = %s on %x, want pg1 on %x", got.value, got.lease, lease)
	}
}

// assertWatchStable checks that an idle watch keeps being confirmed by
// progress notifications, without being declared lost and re-created.
func assertWatchStable(t *testing.T, s *Store, ttl time.Duration) {
	t.Helper()
	// A reload stamps ReadAt before the watch that follows it starts; the next
	// confirmation can only come from that watch, so count from there.
	read := s.View().ReadAt
	waitFor(t, 10*time.Second, "the watch confirmed the view", func() bool { return s.View().ReadAt.After(read) })
	gen := s.watchGen.Load()
	from := time.Now()
	waitFor(t, 10*time.Second, "ReadAt confirmed well past the loss threshold", func() bool {
		return s.View().ReadAt.After(from.Add(2 * lostAfter(ttl)))
	})
	if got := s.watchGen.Load(); got != gen {
		t.Errorf("watch re-created %d times while etcd was healthy and idle", got-gen)
	}
}

// TestIdleWatchNotPolled: on an idle cluster the answered lease keepalives
// confirm the view, so the watch's staleness check is pushed ahead by each
// of them and does not wake up (a ticker would fire every progressEvery);
// the view still stays current. With etcd stopped the check fires again and
// the watch is declared stale (TestEtcdOutage).
func TestIdleWatchNotPolled(t *testing.T) {
	e := testenv.StartEtcd(t)
	const ttl = 4 * time.Second // keepalives and checks both every second
	a := startStore(t, e, basePath(t), "pg1", ttl)
	read := a.View().ReadAt
	waitFor(t, 10*time.Second, "a keepalive confirmed the view", func() bool { return a.View().ReadAt.After(read) })
	const window = 6 * time.Second
	before, gen, from := a.watchChecks.Load(), a.watchGen.Load(), time.Now()
	time.Sleep(window)
	fired := a.watchChecks.Load() - before
	// A ticker fires window/progressEvery = 6 times; allow for keepalive
	// answers delayed past the check's slack on a loaded machine.
	if limit := uint64(window / progressEvery(ttl) / 3); fired > limit {
		t.Errorf("the watch's staleness check fired %d times in %s of keepalives, want ≤ %d", fired, window, limit)
	}
	if v := a.View(); !v.ReadAt.After(from.Add(window - 2*keepaliveEvery(ttl))) {
		t.Errorf("view last confirmed at %v, %s before the window's end", v.ReadAt, time.Since(v.ReadAt))
	}
	if got := a.watchGen.Load(); got != gen {
		t.Errorf("watch re-created %d times while idle", got-gen)
	}
	t.Logf("staleness check fired %d times in %s", fired, window)
}
