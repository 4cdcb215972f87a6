//go:build integration

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// pgnodedBin is the binary under test: $PGNODED_BIN (set by `make test-integration`)
// or built once by TestMain into a temp dir.
var pgnodedBin string

func TestMain(m *testing.M) {
	pgnodedBin = os.Getenv("PGNODED_BIN")
	var cleanup func()
	if pgnodedBin == "" {
		dir, err := os.MkdirTemp("", "pgnoded-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		cleanup = func() { os.RemoveAll(dir) }
		pgnodedBin = filepath.Join(dir, "pgnoded")
		// Built as make build does (no cgo, stripped), so that footprint
		// figures are those of the binary that ships.
		// The guard binary lands next to pgnoded, where pgnoded looks for it.
		cmd := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags", "-s -w", "-o", dir+"/",
			"../cmd/pgnoded", "../cmd/pgnoded-fence-guard")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build pgnoded:", err)
			os.Exit(2)
		}
	}
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	os.Exit(code)
}

// Timing is the dynamic timing a test cluster bootstraps with.
type Timing struct{ TTL, LoopWait, RetryTimeout int }

// Fast is the timing the failure tests use; Patroni's defaults are 30/10/10.
var Fast = Timing{TTL: 10, LoopWait: 2, RetryTimeout: 4}

const superPassword = "itest-super"

// Cluster is an etcd plus N nodes, wherever they live (Network: loopback
// ports or one network namespace per node) and whichever daemon runs them
// (Daemon: pgnoded, or Patroni 3.0.2 for the side-by-side benchmarks).
type Cluster struct {
	t     testing.TB
	Scope string
	Nodes []*Node
	// Net is where the nodes live.
	Net Network
	// Opts are the options the nodes were configured with.
	Opts ClusterOptions
	// Daemon runs every node.
	Daemon Daemon
	// Etcd is the embedded etcd of a loopback cluster (nil in namespaces).
	Etcd *testenv.Etcd
	// Topo is the network of a namespace cluster (nil on loopback).
	Topo *Topology
	// Version is `patroni --version` when Daemon is DaemonPatroni.
	Version string

	http *http.Client // REST checks (2 s)
	ops  *http.Client // requests that block: a switchover waits up to 2×max(10, loop_wait) s

	etcdOnce sync.Once
	etcd     *clientv3.Client
}

// ClusterOptions configures the nodes of a Cluster.
type ClusterOptions struct {
	// Timing is the bootstrap DCS timing.
	Timing Timing
	// VIP enables the vip section (namespaces only: Topology.VIP on each node's veth).
	VIP bool
	// Failsafe is bootstrap.dcs.failsafe_mode (Pigsty renders true).
	Failsafe bool
	// PermanentSlot, when set, is a permanent physical slot in bootstrap.dcs.slots.
	PermanentSlot string
	// Secure puts restapi.authentication and HTTPS with client certificates
	// (verify_client: required) from a private CA on every node, and the
	// matching ctl section; the test's own REST clients use the CA and a
	// client certificate (namespaces only).
	Secure bool
	// Sync, when set, turns synchronous_mode on in bootstrap.dcs (nodeconf.Sync).
	Sync *nodeconf.Sync
	// Daemon runs the nodes of a namespace cluster (Topology.StartPGCluster;
	// the zero value is pgnoded). Patroni's nodes have no VIP and no REST security.
	Daemon Daemon
}

// Node is one daemon (pgnoded or Patroni) and its postgres.
type Node struct {
	t    testing.TB
	Name string
	// Dir holds the data directory (Dir/data), the config and the daemon's log.
	Dir        string
	ConfigPath string
	LogPath    string
	// Host is the address the node announces and tests dial.
	Host       string
	PGPort     int
	APIPort    int
	MetricPort int
	// NS is the node's namespace (nil on loopback).
	NS *NetNS
	// Proc is the daemon (started by Start).
	Proc *Proc

	c *Cluster
}

// Daemon is the program that runs a node.
type Daemon int

// The daemons.
const (
	DaemonPgnoded Daemon = iota
	DaemonPatroni        // Debian's Patroni 3.0.2 (patroni_harness_test.go)
)

func (d Daemon) String() string {
	if d == DaemonPatroni {
		return "patroni"
	}
	return "pgnoded"
}

// StartCluster writes configs for n pgnoded nodes on loopback and starts them all at once (they race to bootstrap).
func StartCluster(t testing.TB, n int, timing Timing) *Cluster {
	t.Helper()
	return startClusterWith(t, n, timing, nil)
}

// startClusterWith is StartCluster with extra changing each node's config options.
func startClusterWith(t testing.TB, n int, timing Timing, extra configEdit) *Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	c := newCluster(t, newLoopback(t), fmt.Sprintf("it%d-%d", os.Getpid(), time.Now().UnixNano()%100000),
		DaemonPgnoded, n, ClusterOptions{Timing: timing}, extra)
	c.StartAll()
	return c
}

// newCluster lays out n nodes of daemon on net and writes their configs; nothing is started.
func newCluster(t testing.TB, net Network, scope string, daemon Daemon, n int, opts ClusterOptions, extra configEdit) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Scope: scope, Net: net, Opts: opts, Daemon: daemon}
	net.attach(c)
	c.http, c.ops = net.HTTPClient(2*time.Second), net.HTTPClient(90*time.Second)
	bin := testenv.PGBinDir(t)
	for i := range n {
		nd := &Node{t: t, c: c, Name: fmt.Sprintf("n%d", i+1)}
		net.place(nd, i)
		if daemon == DaemonPatroni {
			nd.MetricPort = nd.APIPort // Patroni serves GET /metrics on its REST API
		}
		nd.ConfigPath = filepath.Join(nd.Dir, daemon.String()+".yml")
		nd.LogPath = filepath.Join(nd.Dir, daemon.String()+".log")
		o := nodeconf.Options{
			Namespace: "/itest/", Scope: scope, Name: nd.Name, Host: nd.Host,
			APIPort: nd.APIPort, PGPort: nd.PGPort, MetricPort: nd.MetricPort, Etcd: net.EtcdHosts(),
			Dir: nd.Dir, BinDir: bin, Passwords: testPasswords,
			TTL: opts.Timing.TTL, LoopWait: opts.Timing.LoopWait, RetryTimeout: opts.Timing.RetryTimeout,
			Failsafe: opts.Failsafe, PermanentSlot: opts.PermanentSlot, Sync: opts.Sync,
		}
		net.configure(nd, &o)
		if daemon == DaemonPatroni {
			o.Flavour = nodeconf.Patroni
		}
		if extra != nil {
			extra(&o)
		}
		writeConfig(t, nd.ConfigPath, o)
		nd.Proc = newProc(daemon.String()+" "+nd.Name, nd.NS, nd.LogPath, daemon.spec(t, nd))
		c.Nodes = append(c.Nodes, nd)
		net.adopt(nd)
	}
	return c
}

// StartAll starts every node at once (they race to bootstrap).
func (c *Cluster) StartAll() {
	c.t.Helper()
	for _, nd := range c.Nodes {
		nd.Start()
	}
}

// Start runs the node's daemon (again, after a kill).
func (n *Node) Start() {
	n.t.Helper()
	n.Proc.Restart(n.t)
}

// Signal sends sig to the daemon (not to postgres).
func (n *Node) Signal(sig syscall.Signal) { n.Proc.Signal(sig) }

// WaitExit waits for the daemon to exit.
func (n *Node) WaitExit(timeout time.Duration) bool { return n.Proc.WaitExit(timeout) }

// KillPgnoded kills the daemon with SIGKILL and waits for it to be gone; postgres keeps running.
func (n *Node) KillPgnoded() { n.Proc.Kill() }

// NodeLoss kills the node like BenchmarkFailoverNodeLoss does: the daemon
// first (so it cannot restart postgres), then the postmaster and all its
// backends at once.
func (n *Node) NodeLoss() {
	n.KillPgnoded()
	killPostgresTree(n)
}

// PostmasterPID reads postmaster.pid; 0 if absent.
func (n *Node) PostmasterPID() int { return postmasterPID(n.Dir) }

// KillPostmaster kills the postmaster with SIGKILL.
func (n *Node) KillPostmaster() { killPostmaster(n.Dir) }

// destroy stops everything a loopback node started: the daemon, the fence guard, postgres.
func (n *Node) destroy() {
	n.Proc.Kill()
	// The fence guard and postgres run in their own sessions; find them by data dir.
	killMatching(n.Dir)
	n.dumpLogOnFailure()
}

// dumpLogOnFailure logs the tail of the daemon's log if the test failed.
func (n *Node) dumpLogOnFailure() {
	if n.t.Failed() {
		n.DumpLog(8000)
	}
}

// DumpLog logs the last limit bytes of the daemon's log (Patroni's includes postgres' stderr).
func (n *Node) DumpLog(limit int) {
	if b, err := os.ReadFile(n.LogPath); err == nil {
		n.t.Logf("---- %s log of %s (last %d bytes) ----\n%s", n.c.Daemon, n.Name, limit, tail(b, limit))
	}
}

// DumpLogs dumps every node's log (used when a run ends without a measurement).
func (c *Cluster) DumpLogs(limit int) {
	for _, nd := range c.Nodes {
		nd.DumpLog(limit)
	}
}

// LogCount counts the lines of the daemon's log that contain s.
func (n *Node) LogCount(s string) int {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

// LogLine returns the last line of the daemon's log containing s ("" if none).
func (n *Node) LogLine(s string) string {
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

// killMatching SIGKILLs every process whose command line mentions dir (postgres, fence guard).
func killMatching(dir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte(dir)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// httpClient is the loopback network's REST client (2 s).
var httpClient = &http.Client{Timeout: 2 * time.Second}

// url is path on the node's REST API.
func (n *Node) url(path string) string {
	scheme := "http"
	if n.c.Opts.Secure {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(n.Host, strconv.Itoa(n.APIPort)), path)
}

// Check sends OPTIONS <path> to the node's REST API like HAProxy does; 0 when unreachable.
func (n *Node) Check(path string) int { return optionsStatus(n.c.http, n.url(path)) }

// Get fetches a REST document.
func (n *Node) Get(path string) (int, []byte) { return getDoc(n.c.http, n.url(path)) }

// Role is the role in the node's /patroni document ("" when unreachable), fetched with hc.
func (n *Node) Role(hc *http.Client) string {
	code, b := getDoc(hc, n.url("/patroni"))
	var doc struct {
		Role string `json:"role"`
	}
	if code == 0 || json.Unmarshal(b, &doc) != nil {
		return ""
	}
	return doc.Role
}

// DSN is a TCP connection string to this node's postgres as the superuser.
func (n *Node) DSN() string {
	return fmt.Sprintf("host=%s port=%d user=postgres password=%s dbname=postgres connect_timeout=2 sslmode=disable", n.Host, n.PGPort, superPassword)
}

// Conn opens a connection to the node's postgres with a short deadline.
func (n *Node) Conn(ctx context.Context) (*pgx.Conn, error) {
	return n.c.connect(ctx, n.Host, n.PGPort, 2*time.Second)
}

// Writable reports whether the node's postgres runs and is not in recovery.
func (n *Node) Writable(ctx context.Context) bool { return isWritable(ctx, n.Conn) }

// HasVIP reports whether the VIP is on the node's interface (netlink; namespaces only).
func (n *Node) HasVIP() (bool, error) { return n.NS.HasAddr(n.c.Topo.VIP()) }

// ConnTo connects as the superuser to host on the nodes' postgres port (a
// namespace cluster's: every node and the VIP listen on the same port).
func (c *Cluster) ConnTo(ctx context.Context, host string, timeout time.Duration) (*pgx.Conn, error) {
	return c.connect(ctx, host, nsPGPort, timeout)
}

// connect connects as the superuser to host:port, dialled through the cluster's network.
func (c *Cluster) connect(ctx context.Context, host string, port int, timeout time.Duration) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=postgres password=%s dbname=postgres sslmode=disable",
		host, port, superPassword))
	if err != nil {
		return nil, err
	}
	cfg.DialFunc = c.Net.DialContext
	cfg.ConnectTimeout = timeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// Primary returns the single node answering 200 on /primary, or nil.
// It reports a test error when two nodes answer 200.
func (c *Cluster) Primary() *Node {
	var found *Node
	for _, n := range c.Nodes {
		if n.Check("/primary") == 200 {
			if found != nil {
				c.t.Errorf("two nodes answer 200 on /primary: %s and %s", found.Name, n.Name)
				return nil
			}
			found = n
		}
	}
	return found
}

// WaitPrimary waits until exactly one node answers /primary with 200, optionally not `not`.
func (c *Cluster) WaitPrimary(timeout time.Duration, not *Node) *Node {
	c.t.Helper()
	var p *Node
	WaitFor(c.t, timeout, "one primary", func() bool {
		p = c.Primary()
		return p != nil && p != not
	})
	return p
}

// WaitHealthyReplicas waits until every node but p (and those in skip) answers /replica with 200 (running, streaming).
func (c *Cluster) WaitHealthyReplicas(timeout time.Duration, p *Node, skip ...*Node) {
	c.t.Helper()
	except := append([]*Node{p}, skip...)
	WaitFor(c.t, timeout, "all replicas healthy", func() bool { return allAnswer200(nodesExcept(c.Nodes, except...), "/replica") })
}

// Others returns every node except those given.
func (c *Cluster) Others(not ...*Node) []*Node { return nodesExcept(c.Nodes, not...) }

// etcdClient is the cluster's etcd client, made on first use.
func (c *Cluster) etcdClient() *clientv3.Client {
	c.etcdOnce.Do(func() { c.etcd = c.Net.EtcdClient() })
	return c.etcd
}

// EtcdKey reads a raw key under the cluster prefix.
func (c *Cluster) EtcdKey(ctx context.Context, rel string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return etcdValue(ctx, c.etcdClient(), "/itest/"+c.Scope+"/"+rel)
}

// LeaderLease returns the leader key's value and the seconds its lease has left (-1 when unknown).
func (c *Cluster) LeaderLease(ctx context.Context) (string, int64) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.etcdClient().Get(ctx, "/itest/"+c.Scope+"/leader")
	if err != nil || len(resp.Kvs) == 0 {
		return "", -1
	}
	kv := resp.Kvs[0]
	ttl, err := c.etcdClient().TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil {
		return string(kv.Value), -1
	}
	return string(kv.Value), ttl.TTL
}

// Close kills every node's daemon and postgres now (the cleanups do it again,
// harmlessly, and remove the directories), so that a benchmark's next run
// does not share the machine with this cluster's survivors.
func (c *Cluster) Close() {
	for _, nd := range c.Nodes {
		nd.Proc.Kill()
		killMatching(nd.Dir)
	}
}
