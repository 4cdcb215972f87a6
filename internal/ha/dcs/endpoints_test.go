package dcs

import (
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// TestSetEndpointsKeepsLeaseKeyAndWatch: moving the client to other
// endpoints (a reload of etcd3.hosts) keeps the lease, the leader key and
// the watch.
func TestSetEndpointsKeepsLeaseKeyAndWatch(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	s := startStore(t, e, base, "pg1", 10*time.Second)
	ctx := ctxT(t)
	if ok, err := s.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader = %v, %v", ok, err)
	}
	leader := s.View().Leader
	if leader == nil || leader.Name != "pg1" {
		t.Fatalf("leader %+v", leader)
	}
	// The same member under another spelling of its address.
	other := "http://localhost:" + e.HostPort()[strings.LastIndex(e.HostPort(), ":")+1:]
	s.SetEndpoints([]string{other})
	before := s.LeaseValidUntil()
	// The keepalive stream renews on its own schedule (ttl/4): wait for a renewal.
	waitFor(t, 10*time.Second, "a lease renewal after SetEndpoints", func() bool {
		return s.LeaseValidUntil().After(before)
	})
	if ok, err := s.UpdateLeader(ctx); err != nil || !ok {
		t.Fatalf("UpdateLeader after SetEndpoints = %v, %v", ok, err)
	}
	if got := s.View().Leader; got == nil || got.LeaseID != leader.LeaseID {
		t.Errorf("leader key after SetEndpoints = %+v, want lease %d kept", got, leader.LeaseID)
	}
	cli := e.Client()
	if _, err := cli.Put(ctx, base+"/config", `{"ttl":10}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the watch seeing a write after SetEndpoints", func() bool {
		return len(s.View().ConfigRaw) > 0
	})
}
