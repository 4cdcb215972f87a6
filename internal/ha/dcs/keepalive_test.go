package dcs

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// TestKeepAliveOneStream: renewals go over one long-lived LeaseKeepAlive
// stream, each moving LeaseValidUntil to its own send time + TTL and firing
// Renewed; the stream survives a renewal whose caller gave up.
func TestKeepAliveOneStream(t *testing.T) {
	e := testenv.StartEtcd(t)
	s := startStore(t, e, basePath(t), "pg1", 30*time.Second)
	ctx := ctxT(t)
	drain(s.Renewed())
	var first *kaStream
	var last time.Time
	for i := 0; i < 3; i++ {
		sent := time.Now()
		until, err := s.KeepAlive(ctx)
		if err != nil {
			t.Fatalf("KeepAlive %d: %v", i, err)
		}
		if until.Before(sent.Add(30*time.Second)) || until.After(time.Now().Add(30*time.Second)) || !until.After(last) {
			t.Errorf("KeepAlive %d: valid until %v, want send time + 30s (sent %v), after %v", i, until, sent, last)
		}
		last = until
		s.mu.Lock()
		ka := s.ka
		s.mu.Unlock()
		if ka == nil {
			t.Fatalf("no keepalive stream after a renewal")
		}
		if first == nil {
			first = ka
		} else if ka != first {
			t.Errorf("renewal %d opened a new stream", i)
		}
		select {
		case <-s.Renewed():
		default:
			t.Errorf("Renewed did not fire after renewal %d", i)
		}
	}
}

// TestKeepAliveConfirmsTheView: on an idle cluster a keepalive answered by
// the watch's member at a revision the cache already has confirms the view
// current as of its send time; after a change the watch has not delivered,
// or answered by another member, it does not.
func TestKeepAliveConfirmsTheView(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	s := startStore(t, e, base, "pg1", 30*time.Second)
	ctx := ctxT(t)
	member := func() uint64 { s.mu.Lock(); defer s.mu.Unlock(); return s.watchMember }
	waitFor(t, 10*time.Second, "the watch named its member", func() bool { return member() != 0 })
	sent := time.Now()
	if _, err := s.KeepAlive(ctx); err != nil {
		t.Fatal(err)
	}
	if at := s.View().ReadAt; at.Before(sent) {
		t.Errorf("ReadAt %v after an idle keepalive sent at %v", at, sent)
	}
	// A confirmation at a revision beyond what the cache holds is refused.
	s.mu.Lock()
	rev, before := s.cache.watchRev, s.cache.readAt
	s.mu.Unlock()
	s.confirmKeepAlive(time.Now().Add(time.Hour), rev+1, member())
	if at := s.View().ReadAt; !at.Equal(before) && at.After(time.Now()) {
		t.Errorf("a keepalive at revision %d (cache has %d) confirmed the view: ReadAt %v", rev+1, rev, at)
	}
	// So is one answered by another member than the watch's.
	s.confirmKeepAlive(time.Now().Add(time.Hour), rev, member()+1)
	if at := s.View().ReadAt; !at.Equal(before) && at.After(time.Now()) {
		t.Errorf("a keepalive answered by member %x (the watch is on %x) confirmed the view: ReadAt %v", member()+1, member(), at)
	}
	// A write by someone else arrives through the watch, then confirms again.
	c := e.Client()
	if _, err := c.Put(ctx, base+"/members/pg9", `{"state":"running"}`, clientv3.WithPrevKV()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the watch delivered the write", func() bool { _, ok := s.View().Members["pg9"]; return ok })
	sent = time.Now()
	if _, err := s.KeepAlive(ctx); err != nil {
		t.Fatal(err)
	}
	if at := s.View().ReadAt; at.Before(sent) {
		t.Errorf("ReadAt %v after a keepalive sent at %v with the cache current", at, sent)
	}
}
