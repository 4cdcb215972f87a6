//go:build integration

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/testenv"
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

var nsConfigTmpl = template.Must(template.New("nscfg").Parse(`scope: {{.Scope}}
namespace: /itest/
name: {{.Name}}
restapi:
  listen: 0.0.0.0:{{.APIPort}}
  connect_address: {{.IP}}:{{.APIPort}}
etcd3:
  hosts: {{.Etcd}}
bootstrap:
  dcs:
    ttl: {{.TTL}}
    loop_wait: {{.LoopWait}}
    retry_timeout: {{.RetryTimeout}}
    maximum_lag_on_failover: 1048576
    failsafe_mode: {{.Failsafe}}
{{- if .PermanentSlot}}
    slots:
      {{.PermanentSlot}}:
        type: physical
{{- end}}
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 0.0.0.0:{{.PGPort}}
  connect_address: {{.IP}}:{{.PGPort}}
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
    - host all all {{.Subnet}} md5
    - host replication replicator 127.0.0.1/32 md5
    - host replication replicator {{.Subnet}} md5
tags:
  nofailover: false
  noloadbalance: false
exporter:
  listen: {{.IP}}:{{.MetricPort}}
vip:
  enabled: {{.VIPEnabled}}
  address: {{.VIP}}
  interface: {{.Ifname}}
  arp_count: 3
  arp_interval: 500ms
`))

// StartPGCluster writes a config per node namespace and starts every pgnoded
// at once (they race to bootstrap). The etcd members must be running.
func (tp *Topology) StartPGCluster(opts ClusterOptions) *NsCluster {
	tp.t.Helper()
	if len(tp.etcdMembs) == 0 {
		tp.t.Fatal("StartPGCluster: start etcd first (Topology.StartEtcd)")
	}
	bin := testenv.PGBinDir(tp.t)
	uid, gid := testenv.PGUserIDs(tp.t)
	c := &NsCluster{t: tp.t, Topo: tp, Opts: opts, Scope: "pgt" + tp.Tag,
		http: tp.Client.HTTPClient(2 * time.Second)}
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
		var buf bytes.Buffer
		err := nsConfigTmpl.Execute(&buf, map[string]any{
			"Scope": c.Scope, "Name": n.Name, "IP": ns.IP, "Ifname": ns.Ifname, "Subnet": tp.Subnet,
			"APIPort": nsAPIPort, "PGPort": nsPGPort, "MetricPort": nsMetricPort,
			"Etcd": tp.EtcdHosts(), "Dir": n.Dir, "BinDir": bin,
			"TTL": opts.Timing.TTL, "LoopWait": opts.Timing.LoopWait, "RetryTimeout": opts.Timing.RetryTimeout,
			"VIPEnabled": opts.VIP, "VIP": tp.VIP(), "Failsafe": opts.Failsafe,
			"PermanentSlot": opts.PermanentSlot,
		})
		if err != nil {
			tp.t.Fatal(err)
		}
		if err := os.WriteFile(n.ConfigPath, buf.Bytes(), 0o600); err != nil {
			tp.t.Fatal(err)
		}
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
func (n *NsNode) PostmasterPID() int {
	b, err := os.ReadFile(filepath.Join(n.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscanf(string(b), "%d", &pid)
	return pid
}

// KillPostmaster kills the postmaster with SIGKILL.
func (n *NsNode) KillPostmaster() {
	if pid := n.PostmasterPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

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
	return fmt.Sprintf("http://%s%s", net.JoinHostPort(n.NS.IP.String(), fmt.Sprint(nsAPIPort)), path)
}

// Check sends OPTIONS <path> to the node's REST API from the client namespace; 0 when unreachable.
func (n *NsNode) Check(path string) int {
	req, _ := http.NewRequest(http.MethodOptions, n.url(path), nil)
	resp, err := n.c.http.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Get fetches a REST document from the client namespace.
func (n *NsNode) Get(path string) (int, []byte) {
	resp, err := n.c.http.Get(n.url(path))
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

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
func (n *NsNode) Writable(ctx context.Context) bool {
	conn, err := n.Conn(ctx)
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var rec bool
	return conn.QueryRow(qctx, "select pg_is_in_recovery()").Scan(&rec) == nil && !rec
}

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
	if !n.c.t.Failed() {
		return
	}
	if b, err := os.ReadFile(n.LogPath); err == nil {
		n.c.t.Logf("---- pgnoded log of %s (last 8000 bytes) ----\n%s", n.Name, tail(b, 8000))
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
func (c *NsCluster) Primary() *NsNode {
	var found *NsNode
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
func (c *NsCluster) WaitPrimary(timeout time.Duration, not *NsNode) *NsNode {
	c.t.Helper()
	var p *NsNode
	WaitFor(c.t, timeout, "one primary", func() bool {
		p = c.Primary()
		return p != nil && p != not
	})
	return p
}

// WaitHealthyReplicas waits until every node but p (and those in skip) answers /replica with 200.
func (c *NsCluster) WaitHealthyReplicas(timeout time.Duration, p *NsNode, skip ...*NsNode) {
	c.t.Helper()
	WaitFor(c.t, timeout, "replicas healthy", func() bool {
	next:
		for _, n := range c.Nodes {
			for _, s := range skip {
				if n == s {
					continue next
				}
			}
			if n != p && n.Check("/replica") != 200 {
				return false
			}
		}
		return true
	})
}

// Others returns every node except those given.
func (c *NsCluster) Others(not ...*NsNode) []*NsNode {
	var out []*NsNode
next:
	for _, m := range c.Nodes {
		for _, n := range not {
			if m == n {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// EtcdKey reads a raw key under the cluster prefix.
func (c *NsCluster) EtcdKey(ctx context.Context, rel string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.etcd.Get(ctx, "/itest/"+c.Scope+"/"+rel)
	if err != nil || len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
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
