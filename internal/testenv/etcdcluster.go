package testenv

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EtcdCluster is an etcd cluster of several members embedded in the test
// process, each on its own loopback ports; it is stopped at test end.
type EtcdCluster struct {
	clientURLs []string
	members    []*embed.Etcd
}

// StartEtcdCluster starts an n-member etcd cluster and waits until every
// member is ready (a leader elected).
func StartEtcdCluster(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	dir := t.TempDir()
	names := make([]string, n)
	clientURLs := make([]string, n)
	peerURLs := make([]string, n)
	initial := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("m%d", i)
		clientURLs[i] = fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
		peerURLs[i] = fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
		initial[i] = names[i] + "=" + peerURLs[i]
	}
	c := &EtcdCluster{clientURLs: clientURLs, members: make([]*embed.Etcd, n)}
	t.Cleanup(c.stop)
	// Every member must be started before any is ready: a member waits for a
	// quorum to elect a leader.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() { // joined by wg.Wait below
			defer wg.Done()
			cfg := embed.NewConfig()
			cfg.Name = names[i]
			cfg.Dir = filepath.Join(dir, names[i])
			cu, _ := url.Parse(clientURLs[i])
			pu, _ := url.Parse(peerURLs[i])
			cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
			cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
			cfg.InitialCluster = strings.Join(initial, ",")
			cfg.InitialClusterToken = "testenv-cluster"
			cfg.LogLevel = "error"
			cfg.Logger = "zap"
			cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
			cfg.TickMs, cfg.ElectionMs = 100, 1000 // as Pigsty configures etcd
			srv, err := embed.StartEtcd(cfg)
			if err != nil {
				errs[i] = fmt.Errorf("start etcd member %s: %w", names[i], err)
				return
			}
			c.members[i] = srv
			select {
			case <-srv.Server.ReadyNotify():
			case <-time.After(30 * time.Second):
				errs[i] = fmt.Errorf("etcd member %s not ready after 30s", names[i])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// ClientURL is member i's client URL.
func (c *EtcdCluster) ClientURL(i int) string { return c.clientURLs[i] }

// ClientHostPort is member i's client address as host:port.
func (c *EtcdCluster) ClientHostPort(i int) string {
	u, _ := url.Parse(c.clientURLs[i])
	return u.Host
}

// MemberID is member i's ID, as etcd puts it in every response header.
func (c *EtcdCluster) MemberID(i int) uint64 { return uint64(c.members[i].Server.MemberID()) }

// Len is the number of members.
func (c *EtcdCluster) Len() int { return len(c.members) }

func (c *EtcdCluster) stop() {
	for _, m := range c.members {
		if m != nil {
			m.Close()
		}
	}
}
