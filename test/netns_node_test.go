//go:build integration

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// Fixed ports: every node has its own namespace, so they never collide.
const (
	nsPGPort     = 5432
	nsAPIPort    = 8008
	nsMetricPort = 9630
)

// ClusterOptions configures the pgnoded nodes of a Topology.
type ClusterOptions struct {
	// Timing is the bootstrap DCS timing.
	Timing Timing
	// VIP enables the vip section (Topology.VIP on each node's veth).
	VIP bool
	// Failsafe is bootstrap.dcs.failsafe_mode (Pigsty renders true).
	Failsafe bool
	// PermanentSlot, when set, is a permanent physical slot in bootstrap.dcs.slots.
	PermanentSlot string
	// Secure puts restapi.authentication and HTTPS with client certificates
	// (verify_client: required) from a private CA on every node, and the
	// matching ctl section; the test's own REST clients use the CA and a client certificate.
	Secure bool
}

// NsCluster is one pgnoded + postgres per node namespace of a Topology,
// sharing the topology's etcd; tests reach it from the client namespace.
type NsCluster struct {
	t     testing.TB
	Topo  *Topology
	Scope string
	Nodes []*NsNode
	Opts  ClusterOptions

	http *http.Client
	etcd *clientv3.Client
}

// NsNode is one pgnoded (and its postgres) running inside a node namespace.
type NsNode struct {
	Name       string
	NS         *NetNS
	Dir        string
	ConfigPath string
	LogPath    string
	// Proc is pgnoded (nil before the first Start).
	Proc *NsProc

	c *NsCluster
}

// StartPGCluster writes a config per node namespace and starts every pgnoded
// at once (they race to bootstrap). The etcd members must be running.
func (tp *Topology) StartPGCluster(opts ClusterOptions) *NsCluster {
	tp.t.Helper()
	if len(tp.etcdMembs) == 0 {
		tp.t.Fatal("StartPGCluster: start etcd first (Topology.StartEtcd)")
	}
	bin := testenv.PGBinDir(tp.t)
	uid, gid := testenv.PGUserIDs(tp.t)
	c := &NsCluster{t: tp.t, Topo: tp, Opts: opts, Scope: "pgt" + tp.Tag}
	var secure func(ns *NetNS) *nodeconf.Security
	if opts.Secure {
		pki := newRESTPKI(tp.t, filepath.Join(tp.Dir, "pki"))
		tp.Client.tls = pki.clientTLS()
		secure = pki.forNode
	}
	c.http = tp.Client.HTTPClient(2 * time.Second)
	c.etcd = tp.EtcdClient()
	tp.OnTeardown(c.http.CloseIdleConnections) // an open socket would keep the client namespace alive
	for i, ns := range tp.Nodes {
		n := &NsNode{Name: fmt.Sprintf("n%d", i+1), NS: ns, c: c, Dir: filepath.Join(tp.Dir, ns.Role)}
		n.ConfigPath = filepath.Join(n.Dir, "pgnoded.yml")
		n.LogPath = filepath.Join(n.Dir, "pgnoded.log")
		if err := os.Mkdir(n.Dir, 0o700); err != nil {
			tp.t.Fatal(err)
		}
		if err := os.Chown(n.Dir, uid, gid); err != nil {
			tp.t.Fatal(err)
		}
		o := nodeconf.Options{
			Namespace: "/itest/", Scope: c.Scope, Name: n.Name, Listen: "0.0.0.0", Host: ns.IP.String(), Subnet: tp.Subnet.String(),
			APIPort: nsAPIPort, PGPort: nsPGPort, MetricPort: nsMetricPort,
			Etcd: tp.EtcdHosts(), Dir: n.Dir, BinDir: bin, Passwords: testPasswords,
			TTL: opts.Timing.TTL, LoopWait: opts.Timing.LoopWait, RetryTimeout: opts.Timing.RetryTimeout,
			VIP:      &nodeconf.VIP{Enabled: opts.VIP, Address: tp.VIP().String(), Interface: ns.Ifname, ARPInterval: "500ms"},
			Failsafe: opts.Failsafe, PermanentSlot: opts.PermanentSlot,
		}
		if secure != nil {
			o.Secure = secure(ns)
		}
		writeConfig(tp.t, n.ConfigPath, o)
		c.Nodes = append(c.Nodes, n)
		tp.OnTeardown(n.dumpLogOnFailure)
	}
	for _, n := range c.Nodes {
		n.Start()
	}
	return c
}

// Start runs pgnoded inside the node's namespace (again, after a kill).
func (n *NsNode) Start() {
	n.c.t.Helper()
	if n.Proc == nil {
		n.Proc = n.c.Topo.StartProc(n.NS, "pgnoded "+n.Name, n.LogPath, pgnodedBin, "--config", n.ConfigPath)
		return
	}
	n.Proc.Restart(n.c.Topo)
}

// KillPgnoded kills pgnoded with SIGKILL; postgres and the fence guard keep running.
func (n *NsNode) KillPgnoded() { n.Proc.Kill() }

// PostmasterPID reads postmaster.pid; 0 if absent.
func (n *NsNode) PostmasterPID() int { return postmasterPID(n.Dir) }

// KillPostmaster kills the postmaster with SIGKILL.
func (n *NsNode) KillPostmaster() { killPostmaster(n.Dir) }

// Crash emulates the node's machine dying: SIGKILL to pgnoded, then to every
// other process in the namespace (postgres, fence guard), and its link goes
// down (a dead machine answers nothing, not even ARP for addresses it held).
func (n *NsNode) Crash() {
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
func (n *NsNode) Revive() {
	n.c.t.Helper()
	if n.c.Opts.VIP {
		if has, _ := n.NS.HasAddr(n.c.Topo.VIP()); has {
			n.c.Topo.ipCmd("-n", n.NS.Name, "addr", "del", n.c.Topo.VIP().String(), "dev", n.NS.Ifname)
		}
	}
	n.c.Topo.SetLink(n.NS, true)
	n.Start()
}

// HasVIP reports whether the VIP is on the node's interface (netlink).
func (n *NsNode) HasVIP() (bool, error) { return n.NS.HasAddr(n.c.Topo.VIP()) }

func (n *NsNode) url(path string) string {
	scheme := "http"
	if n.c.Opts.Secure {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(n.NS.IP.String(), fmt.Sprint(nsAPIPort)), path)
}

// Check sends OPTIONS <path> to the node's REST API from the client namespace; 0 when unreachable.
func (n *NsNode) Check(path string) int { return optionsStatus(n.c.http, n.url(path)) }

// Get fetches a REST document from the client namespace.
func (n *NsNode) Get(path string) (int, []byte) { return getDoc(n.c.http, n.url(path)) }

// Role is the role in the node's /patroni document ("" when unreachable).
func (n *NsNode) Role(hc *http.Client) string {
	resp, err := hc.Get(n.url("/patroni"))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var doc struct {
		Role string `json:"role"`
	}
	if json.NewDecoder(resp.Body).Decode(&doc) != nil {
		return ""
	}
	return doc.Role
}

// Conn connects to the node's postgres from the client namespace.
func (n *NsNode) Conn(ctx context.Context) (*pgx.Conn, error) {
	return n.c.ConnTo(ctx, n.NS.IP.String(), 2*time.Second)
}

// Writable reports whether the node's postgres runs and is not in recovery.
func (n *NsNode) Writable(ctx context.Context) bool { return isWritable(ctx, n.Conn) }

// LogLine returns the last line of the node's pgnoded log containing s ("" if none).
func (n *NsNode) LogLine(s string) string {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return ""
	}
	last := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			last = l
		}
	}
	return last
}

func (n *NsNode) dumpLogOnFailure() {
	if n.c.t.Failed() {
		logTail(n.c.t, n.Name, n.LogPath, 8000)
	}
}

// ConnTo connects as the superuser to host:5432 from the client namespace.
func (c *NsCluster) ConnTo(ctx context.Context, host string, timeout time.Duration) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=postgres password=%s dbname=postgres sslmode=disable",
		host, nsPGPort, superPassword))
	if err != nil {
		return nil, err
	}
	cfg.DialFunc = c.Topo.Client.DialContext
	cfg.ConnectTimeout = timeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// Primary returns the single node answering 200 on /primary, or nil.
func (c *NsCluster) Primary() *NsNode { return primaryOf(c.t, c.Nodes) }

// WaitPrimary waits until exactly one node answers /primary with 200, optionally not `not`.
func (c *NsCluster) WaitPrimary(timeout time.Duration, not *NsNode) *NsNode {
	c.t.Helper()
	return waitPrimaryOf(c.t, timeout, c.Nodes, not)
}

// WaitHealthyReplicas waits until every node but p (and those in skip) answers /replica with 200.
func (c *NsCluster) WaitHealthyReplicas(timeout time.Duration, p *NsNode, skip ...*NsNode) {
	c.t.Helper()
	except := append([]*NsNode{p}, skip...)
	WaitFor(c.t, timeout, "replicas healthy", func() bool { return allAnswer200(nodesExcept(c.Nodes, except...), "/replica") })
}

// Others returns every node except those given.
func (c *NsCluster) Others(not ...*NsNode) []*NsNode { return nodesExcept(c.Nodes, not...) }

// EtcdKey reads a raw key under the cluster prefix.
func (c *NsCluster) EtcdKey(ctx context.Context, rel string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return etcdValue(ctx, c.etcd, "/itest/"+c.Scope+"/"+rel)
}

// LeaderLease returns the leader key's value and the seconds its lease has left (-1 when unknown).
func (c *NsCluster) LeaderLease(ctx context.Context) (string, int64) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.etcd.Get(ctx, "/itest/"+c.Scope+"/leader")
	if err != nil || len(resp.Kvs) == 0 {
		return "", -1
	}
	kv := resp.Kvs[0]
	ttl, err := c.etcd.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil {
		return string(kv.Value), -1
	}
	return string(kv.Value), ttl.TTL
}
