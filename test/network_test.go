//go:build integration

package test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// Network is where a Cluster's nodes live: loopback ports on 127.0.0.1 with
// an embedded etcd (loopbackNet), or one network namespace per node with a
// VIP, links that go down and etcd members of their own (nsNet over a Topology).
// Everything else about a node (its config, daemon, REST and SQL helpers) is
// the same on both.
type Network interface {
	// attach makes the network known to c (Cluster.Etcd or Cluster.Topo) before any node is placed.
	attach(c *Cluster)
	// place sets node i's directory, address, ports and namespace.
	place(n *Node, i int)
	// configure sets what the network decides in the node's config: where
	// it listens, whom pg_hba trusts, the VIP, REST security.
	configure(n *Node, o *nodeconf.Options)
	// adopt makes the network's cleanup stop the node and dump its log on failure.
	adopt(n *Node)
	// HTTPClient returns a client that reaches the nodes' REST APIs.
	HTTPClient(timeout time.Duration) *http.Client
	// DialContext dials addr from where the test's clients live.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	// EtcdHosts is the nodes' etcd3.hosts value.
	EtcdHosts() string
	// EtcdClient returns an etcd client the test can use; it is closed at cleanup.
	EtcdClient() *clientv3.Client
}

// loopbackHosts puts every node on its own free ports of 127.0.0.1 and reaches
// them directly; the loopback networks embed it and add their etcd.
type loopbackHosts struct{ t testing.TB }

func (l loopbackHosts) place(n *Node, _ int) {
	n.Dir, n.Host = testenv.PGDir(l.t), "127.0.0.1"
	n.PGPort, n.APIPort, n.MetricPort = testenv.FreePort(l.t), testenv.FreePort(l.t), testenv.FreePort(l.t)
}

func (l loopbackHosts) configure(_ *Node, o *nodeconf.Options) { o.Listen = "127.0.0.1" }

func (l loopbackHosts) adopt(n *Node) { l.t.Cleanup(n.destroy) }

func (l loopbackHosts) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout}
}

func (l loopbackHosts) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// loopbackNet is loopbackHosts with one embedded etcd of its own.
type loopbackNet struct {
	loopbackHosts
	etcd *testenv.Etcd
}

// newLoopback starts the embedded etcd of a loopback cluster.
func newLoopback(t testing.TB) *loopbackNet {
	return &loopbackNet{loopbackHosts: loopbackHosts{t: t}, etcd: testenv.StartEtcd(t)}
}

func (l *loopbackNet) attach(c *Cluster) { c.Etcd = l.etcd }

func (l *loopbackNet) EtcdHosts() string { return l.etcd.HostPort() }

func (l *loopbackNet) EtcdClient() *clientv3.Client { return l.etcd.Client() }
