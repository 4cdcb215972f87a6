//go:build integration

package test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// Fixed ports: every node has its own namespace, so they never collide.
const (
	nsPGPort     = 5432
	nsAPIPort    = 8008
	nsMetricPort = 9630
)

// nsNet is the Network of a Topology: node i lives in namespace Topology.Nodes[i]
// with the fixed ports, the test's clients in the client namespace.
type nsNet struct {
	*Topology
	c      *Cluster
	secure func(ns *NetNS) *nodeconf.Security
}

// StartPGCluster writes a config per node namespace and starts every node's
// daemon (opts.Daemon: pgnoded, or Patroni 3.0.2 to check a scenario against
// it) at once (they race to bootstrap). The etcd members must be running.
func (tp *Topology) StartPGCluster(opts ClusterOptions) *Cluster {
	tp.t.Helper()
	if len(tp.etcdMembs) == 0 {
		tp.t.Fatal("StartPGCluster: start etcd first (Topology.StartEtcd)")
	}
	if opts.Daemon == DaemonPatroni && (opts.VIP || opts.Secure) {
		tp.t.Fatal("StartPGCluster: Patroni's nodes are written without the VIP and REST security")
	}
	version := ""
	if opts.Daemon == DaemonPatroni {
		version = requirePatroni(tp.t)
	}
	c := newCluster(tp.t, &nsNet{Topology: tp}, "pgt"+tp.Tag, opts.Daemon, len(tp.Nodes), opts, nil)
	c.Version = version
	c.StartAll()
	return c
}

func (n *nsNet) attach(c *Cluster) {
	c.Topo, n.c = n.Topology, c
	if c.Opts.Secure {
		pki := newRESTPKI(n.t, filepath.Join(n.Dir, "pki"))
		n.Client.tls = pki.clientTLS()
		n.secure = pki.forNode
	}
}

func (n *nsNet) place(nd *Node, i int) {
	ns := n.Nodes[i]
	nd.NS, nd.Host, nd.Dir = ns, ns.IP.String(), filepath.Join(n.Dir, ns.Role)
	nd.PGPort, nd.APIPort, nd.MetricPort = nsPGPort, nsAPIPort, nsMetricPort
	uid, gid := testenv.PGUserIDs(n.t)
	if err := os.Mkdir(nd.Dir, 0o700); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Chown(nd.Dir, uid, gid); err != nil {
		n.t.Fatal(err)
	}
}

func (n *nsNet) configure(nd *Node, o *nodeconf.Options) {
	o.Listen, o.Subnet = "0.0.0.0", n.Subnet.String()
	if n.c.Daemon == DaemonPatroni {
		return // Patroni has no vip section; StartPGCluster refuses Secure for it
	}
	o.VIP = &nodeconf.VIP{Enabled: n.c.Opts.VIP, Address: n.VIP().String(), Interface: nd.NS.Ifname, ARPInterval: "500ms"}
	if n.secure != nil {
		o.Secure = n.secure(nd.NS)
	}
}

func (n *nsNet) adopt(nd *Node) {
	n.OnTeardown(nd.dumpLogOnFailure)
	n.Topology.adopt(nd.Proc)
}

// HTTPClient dials from the client namespace; its idle connections are closed
// at teardown (an open socket would keep the client namespace alive).
func (n *nsNet) HTTPClient(timeout time.Duration) *http.Client {
	hc := n.Client.HTTPClient(timeout)
	n.OnTeardown(hc.CloseIdleConnections)
	return hc
}

func (n *nsNet) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return n.Client.DialContext(ctx, network, addr)
}

// Crash emulates the node's machine dying: SIGKILL to pgnoded, then to every
// other process in the namespace (postgres, fence guard), and its link goes
// down (a dead machine answers nothing, not even ARP for addresses it held).
func (n *Node) Crash() {
	n.c.t.Helper()
	n.Proc.Signal(syscall.SIGKILL)
	if err := killAllIn(n.NS.Name, 10*time.Second); err != nil {
		n.c.t.Fatalf("crash %s: %v", n.Name, err)
	}
	n.c.Topo.SetLink(n.NS, false)
	n.Proc.WaitExit(10 * time.Second)
}

// Revive emulates the crashed machine booting again: the addresses pgnoded
// added are gone (not persistent across a reboot), the link comes up, and
// pgnoded starts.
func (n *Node) Revive() {
	n.c.t.Helper()
	if n.c.Opts.VIP {
		if has, _ := n.NS.HasAddr(n.c.Topo.VIP()); has {
			n.c.Topo.ipCmd("-n", n.NS.Name, "addr", "del", n.c.Topo.VIP().String(), "dev", n.NS.Ifname)
		}
	}
	n.c.Topo.SetLink(n.NS, true)
	n.Start()
}
