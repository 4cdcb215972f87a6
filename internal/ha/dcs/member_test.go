package dcs

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// TestWatchOnFrozenMemberReplaced: clientv3 spreads streams over the etcd
// members, so the watch can sit on one member while the lease keepalives go
// to another. When the watch's member freezes on an idle cluster, the healthy
// member's keepalive answers must not keep confirming the dead watch: its
// progress requests go unanswered and it is re-created on a live member
// before anything changes, so a change afterwards (the leader key deleted at
// a lease's end) is seen at once, not after the change first went missing.
// gRPC's own connection keepalive would close the frozen connection only
// after max(10 s, ttl/2) + max(2 s, ttl/4) = 12 s here; the watch is
// expected back well before that.
func TestWatchOnFrozenMemberReplaced(t *testing.T) {
	c := testenv.StartEtcdCluster(t, 3)
	proxies := make([]*testenv.FreezeProxy, c.Len())
	endpoints := make([]string, c.Len())
	for i := range proxies {
		proxies[i] = testenv.StartFreezeProxy(t, c.ClientHostPort(i))
		endpoints[i] = "http://" + proxies[i].Addr()
	}
	const ttl = 4 * time.Second // keepalives and checks every second; watch given up after 3 s
	base := basePath(t)
	watchMember := func(s *testStore) uint64 { s.mu.Lock(); defer s.mu.Unlock(); return s.watchMember }

	// Place the watch and the keepalive stream on different members. The
	// balancer picks the member of each new stream in turn, so end the
	// keepalive stream until the next one lands elsewhere.
	s := startStoreOn(t, endpoints, base, "pg1", ttl)
	waitFor(t, 10*time.Second, "the watch and the keepalives named their members", func() bool {
		return watchMember(s) != 0 && s.kaMember.Load() != 0
	})
	for try := 0; watchMember(s) == s.kaMember.Load(); try++ {
		if try == 6 {
			t.Fatalf("the keepalive stream stayed on the watch's member %x through %d new streams", watchMember(s), try)
		}
		s.mu.Lock()
		ka := s.ka
		s.mu.Unlock()
		if ka != nil {
			ka.end(errors.New("test: a new keepalive stream, on the next member"))
		}
		time.Sleep(3 * keepaliveEvery(ttl)) // a renewal or two on the new stream
	}
	ids := make([]uint64, c.Len())
	for i := range ids {
		ids[i] = c.MemberID(i)
	}
	frozen := watchMember(s)
	fi := slices.Index(ids, frozen)
	if fi < 0 {
		t.Fatalf("the watch's member %x is none of the cluster's %x", frozen, ids)
	}
	gen := s.watchGen.Load()
	proxies[fi].Freeze()
	defer proxies[fi].Thaw() // before the store's cleanup, which closes its client through it
	t.Logf("froze member %x (the watch's); keepalives answered by %x", frozen, s.kaMember.Load())

	// Given up ~3.5 s after its last confirmation; the re-read or the new
	// watch may land on the frozen member again (a timeout, or another
	// 3.5 s). Without the member check nothing gives it up: gRPC's
	// connection keepalive ends the frozen connection after 12 s and clientv3
	// resumes the watch by itself, without a new incarnation.
	from := time.Now()
	waitFor(t, 30*time.Second, "the watch re-created on a live member", func() bool {
		m := watchMember(s)
		return s.watchGen.Load() > gen && m != 0 && m != frozen
	})
	t.Logf("watch re-created on member %x %s after the freeze", watchMember(s), time.Since(from).Round(100*time.Millisecond))

	// A change now arrives through the new watch.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := testenv.ClientOn(t, []string{c.ClientURL((fi + 1) % c.Len())})
	if _, err := cl.Put(ctx, base+"/members/pg9", `{"state":"running"}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the new watch delivered a change", func() bool { _, ok := s.View().Members["pg9"]; return ok })
}
