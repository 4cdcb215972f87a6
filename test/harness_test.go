//go:build integration

package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/testenv"
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

// Node is one pgnoded + postgres on loopback ports.
type Node struct {
	t          testing.TB
	Name       string
	Dir        string
	PGPort     int
	APIPort    int
	MetricPort int
	ConfigPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// Cluster is an etcd plus N nodes.
type Cluster struct {
	t     testing.TB
	Scope string
	Etcd  *testenv.Etcd
	Nodes []*Node

	etcdClient *clientv3.Client
}

const superPassword = "itest-super"

// StartCluster writes configs for n nodes and starts them all at once (they race to bootstrap).
func StartCluster(t testing.TB, n int, timing Timing) *Cluster {
	t.Helper()
	return startClusterWith(t, n, timing, nil)
}

// startClusterWith is StartCluster with extra changing each node's config options.
func startClusterWith(t testing.TB, n int, timing Timing, extra configEdit) *Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	bin := testenv.PGBinDir(t)
	c := &Cluster{t: t, Scope: fmt.Sprintf("it%d-%d", os.Getpid(), time.Now().UnixNano()%100000), Etcd: testenv.StartEtcd(t)}
	for i := 1; i <= n; i++ {
		nd := &Node{
			t: t, Name: fmt.Sprintf("n%d", i), Dir: testenv.PGDir(t),
			PGPort: testenv.FreePort(t), APIPort: testenv.FreePort(t), MetricPort: testenv.FreePort(t),
		}
		nd.ConfigPath = filepath.Join(nd.Dir, "pgnoded.yml")
		nd.logPath = filepath.Join(nd.Dir, "pgnoded.log")
		o := loopbackOptions(c.Scope, nd.Name, nd.Dir, bin, c.Etcd.HostPort(), nd.PGPort, nd.APIPort, nd.MetricPort, timing)
		if extra != nil {
			extra(&o)
		}
		writeConfig(t, nd.ConfigPath, o)
		c.Nodes = append(c.Nodes, nd)
		t.Cleanup(nd.destroy)
	}
	for _, nd := range c.Nodes {
		nd.Start()
	}
	return c
}

// Start runs pgnoded for this node (again, after a kill).
func (n *Node) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	cmd := exec.Command(pgnodedBin, "--config", n.ConfigPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start pgnoded %s: %v", n.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	n.cmd, n.done = cmd, done
}

// Signal sends sig to pgnoded (not to postgres).
func (n *Node) Signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(sig)
	}
}

// WaitExit waits for pgnoded to exit.
func (n *Node) WaitExit(timeout time.Duration) bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// KillPgnoded kills pgnoded with SIGKILL and waits for it to be gone; postgres keeps running.
func (n *Node) KillPgnoded() {
	n.Signal(syscall.SIGKILL)
	n.WaitExit(10 * time.Second)
}

// PostmasterPID reads postmaster.pid; 0 if absent.
func (n *Node) PostmasterPID() int { return postmasterPID(n.Dir) }

// KillPostmaster kills the postmaster with SIGKILL.
func (n *Node) KillPostmaster() { killPostmaster(n.Dir) }

// destroy stops everything this node started: pgnoded, the fence guard, postgres.
func (n *Node) destroy() {
	n.Signal(syscall.SIGKILL)
	n.WaitExit(10 * time.Second)
	// The fence guard and postgres run in their own sessions; find them by data dir.
	killMatching(n.Dir)
	if n.t.Failed() {
		logTail(n.t, n.Name, n.logPath, 6000)
	}
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

var httpClient = &http.Client{Timeout: 2 * time.Second}

// Check sends OPTIONS <path> to the node's REST API like HAProxy does; 0 when unreachable.
func (n *Node) Check(path string) int {
	return optionsStatus(httpClient, fmt.Sprintf("http://127.0.0.1:%d%s", n.APIPort, path))
}

// Get fetches a REST document.
func (n *Node) Get(path string) (int, []byte) {
	return getDoc(httpClient, fmt.Sprintf("http://127.0.0.1:%d%s", n.APIPort, path))
}

// DSN is a TCP connection string to this node's postgres as the superuser.
func (n *Node) DSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=postgres connect_timeout=2 sslmode=disable", n.PGPort, superPassword)
}

// Conn opens a connection with a short deadline.
func (n *Node) Conn(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return pgx.Connect(ctx, n.DSN())
}

// Writable reports whether the node's postgres runs and is not in recovery.
func (n *Node) Writable(ctx context.Context) bool { return isWritable(ctx, n.Conn) }

// Primary returns the single node answering 200 on /primary, or nil.
func (c *Cluster) Primary() *Node { return primaryOf(c.t, c.Nodes) }

// WaitPrimary waits until exactly one node answers /primary with 200, optionally not `not`.
func (c *Cluster) WaitPrimary(timeout time.Duration, not *Node) *Node {
	c.t.Helper()
	return waitPrimaryOf(c.t, timeout, c.Nodes, not)
}

// WaitHealthyReplicas waits until every node but p answers /replica with 200 (running, streaming).
func (c *Cluster) WaitHealthyReplicas(timeout time.Duration, p *Node) {
	c.t.Helper()
	WaitFor(c.t, timeout, "all replicas healthy", func() bool { return allAnswer200(nodesExcept(c.Nodes, p), "/replica") })
}

// Others returns every node except n.
func (c *Cluster) Others(n *Node) []*Node { return nodesExcept(c.Nodes, n) }

// EtcdKey reads a raw key under the cluster prefix.
func (c *Cluster) EtcdKey(ctx context.Context, rel string) (string, bool) {
	if c.etcdClient == nil {
		c.etcdClient = c.Etcd.Client()
	}
	return etcdValue(ctx, c.etcdClient, "/itest/"+c.Scope+"/"+rel)
}
