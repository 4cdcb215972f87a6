//go:build integration

package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"text/template"
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
		cmd := exec.Command("go", "build", "-tags", "grpcnotrace", "-o", pgnodedBin, "../cmd/pgnoded")
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

var configTmpl = template.Must(template.New("cfg").Parse(`scope: {{.Scope}}
namespace: /itest/
name: {{.Name}}
restapi:
  listen: 127.0.0.1:{{.APIPort}}
  connect_address: 127.0.0.1:{{.APIPort}}
etcd3:
  hosts: {{.Etcd}}
bootstrap:
  dcs:
    ttl: {{.TTL}}
    loop_wait: {{.LoopWait}}
    retry_timeout: {{.RetryTimeout}}
    maximum_lag_on_failover: 1048576
    failsafe_mode: false
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 127.0.0.1:{{.PGPort}}
  connect_address: 127.0.0.1:{{.PGPort}}
  data_dir: {{.Dir}}/data
  bin_dir: {{.BinDir}}
  pgpass: {{.Dir}}/pgpass
  authentication:
    superuser: {username: postgres, password: ` + superPassword + `}
    replication: {username: replicator, password: itest-repl}
    rewind: {username: rewinder, password: itest-rewind}
  parameters:
    unix_socket_directories: {{.Dir}}
    max_connections: 50
    shared_buffers: 32MB
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 md5
    - host replication replicator 127.0.0.1/32 md5
tags:
  nofailover: false
  noloadbalance: false
exporter:
  listen: 127.0.0.1:{{.MetricPort}}
vip:
  enabled: false
`))

// StartCluster writes configs for n nodes and starts them all at once (they race to bootstrap).
func StartCluster(t testing.TB, n int, timing Timing) *Cluster {
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
		var buf bytes.Buffer
		err := configTmpl.Execute(&buf, map[string]any{
			"Scope": c.Scope, "Name": nd.Name, "APIPort": nd.APIPort, "PGPort": nd.PGPort,
			"MetricPort": nd.MetricPort, "Etcd": c.Etcd.HostPort(), "Dir": nd.Dir, "BinDir": bin,
			"TTL": timing.TTL, "LoopWait": timing.LoopWait, "RetryTimeout": timing.RetryTimeout,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(nd.ConfigPath, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
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
func (n *Node) PostmasterPID() int {
	b, err := os.ReadFile(filepath.Join(n.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscanf(string(b), "%d", &pid)
	return pid
}

// KillPostmaster kills the postmaster with SIGKILL.
func (n *Node) KillPostmaster() {
	if pid := n.PostmasterPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// destroy stops everything this node started: pgnoded, the fence guard, postgres.
func (n *Node) destroy() {
	n.Signal(syscall.SIGKILL)
	n.WaitExit(10 * time.Second)
	// The fence guard and postgres run in their own sessions; find them by data dir.
	killMatching(n.Dir)
	if n.t.Failed() {
		if b, err := os.ReadFile(n.logPath); err == nil {
			n.t.Logf("---- pgnoded log of %s (last 6000 bytes) ----\n%s", n.Name, tail(b, 6000))
		}
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
	req, _ := http.NewRequest(http.MethodOptions, fmt.Sprintf("http://127.0.0.1:%d%s", n.APIPort, path), nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Get fetches a REST document.
func (n *Node) Get(path string) (int, []byte) {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d%s", n.APIPort, path))
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
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
func (n *Node) Writable(ctx context.Context) bool {
	conn, err := n.Conn(ctx)
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var rec bool
	if err := conn.QueryRow(qctx, "select pg_is_in_recovery()").Scan(&rec); err != nil {
		return false
	}
	return !rec
}

// WaitFor polls cond every 100 ms until it is true or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

// Primary returns the single node answering 200 on /primary, or nil.
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

// WaitHealthyReplicas waits until every node but p answers /replica with 200 (running, streaming).
func (c *Cluster) WaitHealthyReplicas(timeout time.Duration, p *Node) {
	c.t.Helper()
	WaitFor(c.t, timeout, "all replicas healthy", func() bool {
		for _, n := range c.Nodes {
			if n != p && n.Check("/replica") != 200 {
				return false
			}
		}
		return true
	})
}

// Others returns every node except n.
func (c *Cluster) Others(n *Node) []*Node {
	var out []*Node
	for _, m := range c.Nodes {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

// EtcdKey reads a raw key under the cluster prefix.
func (c *Cluster) EtcdKey(ctx context.Context, rel string) (string, bool) {
	if c.etcdClient == nil {
		c.etcdClient = c.Etcd.Client()
	}
	resp, err := c.etcdClient.Get(ctx, "/itest/"+c.Scope+"/"+rel)
	if err != nil || len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}
