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
		return s.View().ReadAt.After(from.Add(2 * (watchHold(ttl, true) + watchGiveUp(ttl))))
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
	for _, tc := range []struct {
		ttl, window time.Duration
		limit       uint64 // fires allowed for keepalive answers delayed on a loaded machine
	}{
		// Keepalives and checks both every second; a ticker would fire 6 times.
		{4 * time.Second, 6 * time.Second, 2},
		// Keepalives every 5 s, checks every 2 s: confirmations held for 1.5
		// checks (3 s) instead of a keepalive period fire 3 times.
		{20 * time.Second, 16 * time.Second, 1},
	} {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			t.Parallel()
			a := startStore(t, e, basePath(t), "pg1", tc.ttl)
			read := a.View().ReadAt
			waitFor(t, 2*keepaliveEvery(tc.ttl)+5*time.Second, "a keepalive confirmed the view", func() bool { return a.View().ReadAt.After(read) })
			before, gen, from := a.watchChecks.Load(), a.watchGen.Load(), time.Now()
			time.Sleep(tc.window)
			fired := a.watchChecks.Load() - before
			if fired > tc.limit {
				t.Errorf("the watch's staleness check fired %d times in %s of keepalives, want ≤ %d", fired, tc.window, tc.limit)
			}
			if v := a.View(); !v.ReadAt.After(from.Add(tc.window - 2*keepaliveEvery(tc.ttl))) {
				t.Errorf("view last confirmed at %v, %s before the window's end", v.ReadAt, time.Since(v.ReadAt))
			}
			if got := a.watchGen.Load(); got != gen {
				t.Errorf("watch re-created %d times while idle", got-gen)
			}
			t.Logf("staleness check fired %d times in %s", fired, tc.window)
		})
	}
}

// TestWatchTimings pins the watch's staleness timings: unchanged at ttl 10 s
// and below, and at longer ttls a keepalive's hold long enough for keepalives
// alone to confirm an idle view, with the watch given up well inside the ttl.
func TestWatchTimings(t *testing.T) {
	for _, tc := range []struct {
		ttl, every, short, long, giveUp time.Duration
	}{
		{time.Second, 250 * time.Millisecond, 375 * time.Millisecond, 375 * time.Millisecond, 375 * time.Millisecond},
		{3 * time.Second, 750 * time.Millisecond, 1125 * time.Millisecond, 1125 * time.Millisecond, 1125 * time.Millisecond},
		{10 * time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second},
		{20 * time.Second, 2 * time.Second, 3 * time.Second, 5500 * time.Millisecond, 3 * time.Second},
		{30 * time.Second, 2 * time.Second, 3 * time.Second, 8 * time.Second, 3 * time.Second},
	} {
		every, short, long, giveUp := progressEvery(tc.ttl), watchHold(tc.ttl, false), watchHold(tc.ttl, true), watchGiveUp(tc.ttl)
		if every != tc.every || short != tc.short || long != tc.long || giveUp != tc.giveUp {
			t.Errorf("ttl %s: progressEvery %s, holds %s / %s (keepalive), give-up %s; want %s, %s / %s, %s",
				tc.ttl, every, short, long, giveUp, tc.every, tc.short, tc.long, tc.giveUp)
		}
		if ka := keepaliveEvery(tc.ttl); long < ka {
			t.Errorf("ttl %s: a keepalive holds %s, shorter than the keepalive period %s", tc.ttl, long, ka)
		}
		if lost := long + giveUp; lost > tc.ttl-keepaliveEvery(tc.ttl) {
			t.Errorf("ttl %s: a frozen watch is given up %s after a keepalive, not before a lease it could miss the end of", tc.ttl, lost)
		}
	}
	// At ttl 10 s and below every hold is what it always was: 1.5 × progressEvery.
	for ttl := time.Millisecond; ttl <= 10*time.Second; ttl += time.Millisecond {
		every := progressEvery(ttl)
		if s, l := watchHold(ttl, false), watchHold(ttl, true); s != every+every/2 || l != s {
			t.Fatalf("ttl %s: holds %s / %s (keepalive), want %s", ttl, s, l, every+every/2)
		}
	}
}

// TestWatchTimingsFollowTTL: a ttl changed while the watch runs reaches its
// check at once, and the next keepalive holds it for the new ttl's period.
func TestWatchTimingsFollowTTL(t *testing.T) {
	e := testenv.StartEtcd(t)
	s := startStore(t, e, basePath(t), "pg1", 30*time.Second)
	hold := func() time.Duration { s.mu.Lock(); defer s.mu.Unlock(); return s.cache.heldUntil.Sub(s.cache.readAt) }
	if _, err := s.KeepAlive(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a keepalive held the check for ttl 30's period", func() bool { return hold() == watchHold(30*time.Second, true) })
	before := s.watchChecks.Load()
	s.SetTTL(20 * time.Second)
	waitFor(t, 5*time.Second, "the check re-read the ttl", func() bool { return s.watchChecks.Load() > before })
	if _, err := s.KeepAlive(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a keepalive held the check for ttl 20's period", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.cache.heldUntil.After(s.cache.readAt.Add(watchHold(20*time.Second, true)))
	})
}
