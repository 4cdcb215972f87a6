//go:build integration

package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// A launcher for real Patroni clusters (Debian package `patroni`, 3.0.2) on
// loopback, against the same embedded etcd and with the same settings as
// StartCluster, so the benchmarks in bench_patroni_test.go can measure Patroni
// with pgnoded's measurement code. The nodes are ordinary *Node values (their
// REST, postgres and data-dir helpers work unchanged); only the process that
// runs them differs, so Node.Start/KillPgnoded must not be used on them.

const (
	patroniPython = "/usr/bin/python3" // the python3 on PATH may be a shim without Patroni's modules
	patroniScript = "/usr/bin/patroni"
)

// PatroniCluster is an etcd plus N Patroni nodes.
type PatroniCluster struct {
	*Cluster
	Version string // `patroni --version`, e.g. "patroni 3.0.2"

	procs map[*Node]*patroniProc
}

// patroniProc is one running Patroni (python) process of a node.
type patroniProc struct {
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// requirePatroni skips unless root and Patroni's script and python are installed;
// it returns Patroni's version line.
func requirePatroni(tb testing.TB) string {
	tb.Helper()
	testenv.RequireRoot(tb)
	for _, f := range []string{patroniPython, patroniScript} {
		if _, err := os.Stat(f); err != nil {
			tb.Skipf("skipping: %s not found (apt-get install -y patroni): %v", f, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, patroniPython, patroniScript, "--version").CombinedOutput()
	if err != nil {
		tb.Skipf("skipping: %s --version: %v: %s", patroniScript, err, out)
	}
	return strings.TrimSpace(string(out))
}

// StartPatroniCluster writes a Patroni YAML per node and starts all n at once
// (they race to bootstrap, as StartCluster's pgnodeds do). Everything is killed
// and removed at test end, the logs are dumped if the test failed.
func StartPatroniCluster(tb testing.TB, n int, tm Timing) *PatroniCluster {
	tb.Helper()
	return startPatroniClusterWith(tb, n, tm, nil)
}

// startPatroniClusterWith is StartPatroniCluster with extra changing each
// node's config options (PGExtra: lines added to the postgresql section).
func startPatroniClusterWith(tb testing.TB, n int, tm Timing, extra configEdit) *PatroniCluster {
	tb.Helper()
	version := requirePatroni(tb)
	bin := testenv.PGBinDir(tb)
	uid, gid := testenv.PGUserIDs(tb)
	c := &PatroniCluster{
		Cluster: &Cluster{t: tb, Scope: fmt.Sprintf("pt%d-%d", os.Getpid(), time.Now().UnixNano()%100000), Etcd: testenv.StartEtcd(tb)},
		Version: version,
		procs:   map[*Node]*patroniProc{},
	}
	for i := 1; i <= n; i++ {
		nd := &Node{t: tb, Name: fmt.Sprintf("n%d", i), Dir: testenv.PGDir(tb), PGPort: testenv.FreePort(tb), APIPort: testenv.FreePort(tb)}
		nd.MetricPort = nd.APIPort // Patroni serves GET /metrics on its REST API
		nd.ConfigPath = filepath.Join(nd.Dir, "patroni.yml")
		// The same settings as StartCluster's nodes, without pgnoded's own sections (exporter, vip).
		o := loopbackOptions(c.Scope, nd.Name, nd.Dir, bin, c.Etcd.HostPort(), nd.PGPort, nd.APIPort, nd.MetricPort, tm)
		o.Flavour = nodeconf.Patroni
		if extra != nil {
			extra(&o)
		}
		writeConfig(tb, nd.ConfigPath, o)
		if err := os.Chown(nd.ConfigPath, uid, gid); err != nil {
			tb.Fatal(err)
		}
		c.Nodes = append(c.Nodes, nd)
		c.procs[nd] = &patroniProc{logPath: filepath.Join(nd.Dir, "patroni.log")}
		tb.Cleanup(func() { c.destroy(nd) })
	}
	for _, nd := range c.Nodes {
		c.StartNode(nd)
	}
	return c
}

// StartNode runs Patroni for nd as the postgres OS user, logging to <dir>/patroni.log.
func (c *PatroniCluster) StartNode(nd *Node) {
	c.t.Helper()
	pp := c.procs[nd]
	pp.mu.Lock()
	defer pp.mu.Unlock()
	uid, gid := testenv.PGUserIDs(c.t)
	logf, err := os.OpenFile(pp.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(patroniPython, patroniScript, nd.ConfigPath)
	cmd.Dir = nd.Dir
	cmd.Env = []string{"PATH=" + testenv.PGBinDir(c.t) + ":/usr/bin:/bin", "HOME=" + nd.Dir, "LANG=C.UTF-8", "LC_ALL=C.UTF-8"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start patroni %s: %v", nd.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	pp.cmd, pp.done = cmd, done
}

// PatroniPID is the pid of nd's Patroni process (0 when not running).
func (c *PatroniCluster) PatroniPID(nd *Node) int {
	pp := c.procs[nd]
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.cmd == nil || pp.cmd.Process == nil {
		return 0
	}
	select {
	case <-pp.done:
		return 0
	default:
		return pp.cmd.Process.Pid
	}
}

// KillPatroni SIGKILLs nd's Patroni (and whatever shares its process group;
// postgres runs in its own session) and waits for it to be gone.
func (c *PatroniCluster) KillPatroni(nd *Node) {
	pp := c.procs[nd]
	pp.mu.Lock()
	cmd, done := pp.cmd, pp.done
	pp.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// NodeLoss kills nd like BenchmarkFailoverNodeLoss kills a pgnoded node:
// the supervisor first (so it cannot restart postgres), then the postmaster
// and all its backends at once.
func (c *PatroniCluster) NodeLoss(nd *Node) {
	c.KillPatroni(nd)
	killPostgresTree(nd)
}

// destroy kills nd's Patroni and postgres and, if the test failed, dumps its log.
func (c *PatroniCluster) destroy(nd *Node) {
	c.KillPatroni(nd)
	killMatching(nd.Dir) // postgres (own session), a leftover postmaster-start helper
	if c.t.Failed() {
		c.DumpLog(nd, 6000)
	}
}

// DumpLog logs the last limit bytes of nd's Patroni log (which includes postgres' stderr).
func (c *PatroniCluster) DumpLog(nd *Node, limit int) {
	if b, err := os.ReadFile(c.procs[nd].logPath); err == nil {
		c.t.Logf("---- patroni log of %s (last %d bytes) ----\n%s", nd.Name, limit, tail(b, limit))
	}
}

// DumpLogs dumps every node's log (used when a run ends without a measurement).
func (c *PatroniCluster) DumpLogs(limit int) {
	for _, nd := range c.Nodes {
		c.DumpLog(nd, limit)
	}
}

// primaryNoErr is Cluster.Primary without the test error on two 200s (used
// while a cluster may still be settling; the failover runs check it separately).
func primaryNoErr(c *Cluster) (*Node, int) {
	var found *Node
	count := 0
	for _, n := range c.Nodes {
		if n.Check("/primary") == 200 {
			found, count = n, count+1
		}
	}
	return found, count
}

// StreamingReplicas counts the replicas p's postgres sees streaming (pg_stat_replication).
func StreamingReplicas(p *Node) int {
	s, err := p.QueryString("select count(*)::text from pg_stat_replication where state = 'streaming'")
	if err != nil {
		return -1
	}
	var n int
	fmt.Sscanf(s, "%d", &n)
	return n
}

// WaitUp waits (without failing) for one primary and every other node answering
// /replica with 200 and streaming from it; it returns the primary or nil.
func (c *PatroniCluster) WaitUp(timeout time.Duration) *Node {
	var p *Node
	ok := pollFor(timeout, func() bool {
		var n int
		p, n = primaryNoErr(c.Cluster)
		if n != 1 {
			return false
		}
		for _, o := range c.Others(p) {
			if o.Check("/replica") != 200 {
				return false
			}
		}
		return StreamingReplicas(p) == len(c.Nodes)-1
	})
	if !ok {
		return nil
	}
	return p
}

// LogCount counts the lines of nd's Patroni log that contain s.
func (c *PatroniCluster) LogCount(nd *Node, s string) int {
	b, err := os.ReadFile(c.procs[nd].logPath)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

// Close kills every node's Patroni and postgres now (t.Cleanup does it again,
// harmlessly, and removes the directories), so that a benchmark's next run
// does not share the machine with this cluster's survivors.
func (c *PatroniCluster) Close() {
	for _, nd := range c.Nodes {
		c.KillPatroni(nd)
		killMatching(nd.Dir)
	}
}
