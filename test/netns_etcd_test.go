//go:build integration

package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// EtcdMember is one real etcd server running in its own namespace.
type EtcdMember struct {
	// Name is the member name ("e1", ...).
	Name string
	// NS is its namespace.
	NS *NetNS
	// DataDir is its data directory.
	DataDir string
	// Proc is the running etcd.
	Proc *Proc

	tp   *Topology
	argv []string
}

var (
	etcdBinOnce sync.Once
	etcdBinPath string
	etcdBinErr  error
)

// etcdBinary is $PGNODED_ETCD_BIN, or the etcd server named by go.mod's tool
// line, built once into Go's build cache (`go tool -n` builds it and prints its path).
func etcdBinary(t testing.TB) string {
	t.Helper()
	etcdBinOnce.Do(func() {
		if p := os.Getenv("PGNODED_ETCD_BIN"); p != "" {
			etcdBinPath = p
			return
		}
		out, err := exec.Command("go", "tool", "-n", "go.etcd.io/etcd/server/v3").Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			etcdBinErr = fmt.Errorf("go tool -n go.etcd.io/etcd/server/v3: %w: %s", err, stderr)
			return
		}
		etcdBinPath = strings.TrimSpace(string(out))
	})
	if etcdBinErr != nil {
		t.Fatalf("etcd binary: %v", etcdBinErr)
	}
	return etcdBinPath
}

// StartEtcd starts one etcd member per etcd namespace (one cluster) and waits until it serves.
func (tp *Topology) StartEtcd() []*EtcdMember {
	tp.t.Helper()
	bin := etcdBinary(tp.t)
	var initial []string
	for i, ns := range tp.Etcd {
		initial = append(initial, fmt.Sprintf("e%d=http://%s:2380", i+1, ns.IP))
	}
	var members []*EtcdMember
	for i, ns := range tp.Etcd {
		m := &EtcdMember{Name: fmt.Sprintf("e%d", i+1), NS: ns, tp: tp,
			DataDir: filepath.Join(tp.Dir, "etcd-"+ns.Role)}
		if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
			tp.t.Fatal(err)
		}
		client, peer := fmt.Sprintf("http://%s:2379", ns.IP), fmt.Sprintf("http://%s:2380", ns.IP)
		m.argv = []string{bin, "--name", m.Name, "--data-dir", m.DataDir,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "pgt" + tp.Tag,
			"--heartbeat-interval", "100", "--election-timeout", "1000", "--log-level", "warn"}
		m.Proc = tp.StartProc(ns, "etcd "+m.Name, filepath.Join(tp.Dir, "etcd-"+ns.Role+".log"), m.argv...)
		members = append(members, m)
	}
	tp.mu.Lock()
	tp.etcdMembs = members
	tp.mu.Unlock()
	cli := tp.EtcdClient()
	WaitFor(tp.t, 60*time.Second, "etcd to serve", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "health")
		return err == nil
	})
	return members
}

// EtcdHosts is the etcd3.hosts value: "ip:2379,ip:2379,...".
func (tp *Topology) EtcdHosts() string {
	var hosts []string
	for _, ns := range tp.Etcd {
		hosts = append(hosts, net.JoinHostPort(ns.IP.String(), "2379"))
	}
	return strings.Join(hosts, ",")
}

// EtcdClient returns an etcd client that dials from the client namespace;
// it is closed at teardown.
func (tp *Topology) EtcdClient() *clientv3.Client {
	tp.t.Helper()
	var eps []string
	for _, ns := range tp.Etcd {
		eps = append(eps, fmt.Sprintf("http://%s:2379", ns.IP))
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(), // its retry warnings are expected noise during faults
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return tp.Client.DialContext(ctx, "tcp", addr)
		})},
	})
	if err != nil {
		tp.t.Fatalf("etcd client: %v", err)
	}
	tp.OnTeardown(func() { cli.Close() })
	return cli
}

// Kill stops the member with SIGKILL (its data stays).
func (m *EtcdMember) Kill() { m.Proc.Kill() }

// Restart starts a killed member again on its data directory.
func (m *EtcdMember) Restart() { m.Proc.Restart(m.tp.t) }

// EtcdMembers returns the members started by StartEtcd.
func (tp *Topology) EtcdMembers() []*EtcdMember {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]*EtcdMember(nil), tp.etcdMembs...)
}

// EtcdLeader returns the member that is the raft leader now, or nil if none answers.
func (tp *Topology) EtcdLeader(cli *clientv3.Client) *EtcdMember {
	for _, m := range tp.EtcdMembers() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, fmt.Sprintf("http://%s:2379", m.NS.IP))
		cancel()
		if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
			return m
		}
	}
	return nil
}
