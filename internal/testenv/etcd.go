package testenv

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is a single-member etcd server embedded in the test process.
type Etcd struct {
	t         testing.TB
	dir       string
	clientURL string
	peerURL   string
	name      string
	srv       *embed.Etcd
}

// StartEtcd starts a one-member etcd on free loopback ports; it is stopped at test end.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	e := &Etcd{
		t:         t,
		dir:       t.TempDir(),
		clientURL: fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
		peerURL:   fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
		name:      fmt.Sprintf("testetcd%d", os.Getpid()),
	}
	e.Start()
	t.Cleanup(e.Stop)
	return e
}

// Endpoint is the client URL, e.g. http://127.0.0.1:23790.
func (e *Etcd) Endpoint() string { return e.clientURL }

// HostPort is the client address as host:port (Patroni's etcd3.host form).
func (e *Etcd) HostPort() string {
	u, _ := url.Parse(e.clientURL)
	return u.Host
}

// Start (re)starts the server on the same ports and data directory.
func (e *Etcd) Start() {
	e.t.Helper()
	if e.srv != nil {
		return
	}
	cfg := embed.NewConfig()
	cfg.Name = e.name
	cfg.Dir = filepath.Join(e.dir, "data")
	cu, _ := url.Parse(e.clientURL)
	pu, _ := url.Parse(e.peerURL)
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", e.name, e.peerURL)
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Fast elections and ticks, as Pigsty configures etcd (heartbeat 100ms, election 1000ms).
	cfg.TickMs = 100
	cfg.ElectionMs = 1000
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		e.t.Fatalf("start embedded etcd: %v", err)
	}
	select {
	case <-srv.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		srv.Close()
		e.t.Fatalf("embedded etcd not ready after 30s")
	}
	e.srv = srv
}

// Stop stops the server; the data directory is kept so Start can resume it.
func (e *Etcd) Stop() {
	if e.srv == nil {
		return
	}
	e.srv.Close()
	e.srv = nil
}

// Client returns a client connected to the server, closed at test end.
func (e *Etcd) Client() *clientv3.Client {
	e.t.Helper()
	return ClientOn(e.t, []string{e.clientURL})
}

// ClientOn returns a client of the given etcd endpoints, closed at test end.
func ClientOn(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
