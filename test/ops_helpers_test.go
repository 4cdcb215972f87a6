//go:build integration

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/ctl"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Helpers of the operator-workflow tests (ops_test.go, ops_switchover_test.go).

// Call sends method path with a JSON body (nil: none) to the node's REST API
// and returns the status and the reply text; 0 when unreachable.
func (n *Node) Call(t testing.TB, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("encode %v: %v", body, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.url(path), rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.c.ops.Do(req)
	if err != nil {
		t.Logf("%s %s on %s: %v", method, path, n.Name, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// Status fetches the node's /patroni document (nil when unreachable).
func (n *Node) Status() map[string]any {
	code, b := n.Get("/patroni")
	if code == 0 {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// QueryString runs a one-value query on the node's postgres ("" and the error on failure).
func (n *Node) QueryString(sql string) (string, error) {
	ctx := context.Background()
	conn, err := n.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var s string
	err = conn.QueryRow(qctx, sql).Scan(&s)
	return s, err
}

// WaitStreaming waits until every node but p runs as a replica streaming WAL.
func (c *Cluster) WaitStreaming(timeout time.Duration, p *Node) {
	c.t.Helper()
	WaitFor(c.t, timeout, "all replicas streaming", func() bool {
		return allAnswer200(nodesExcept(c.Nodes, p), "/replica?replication_state=streaming")
	})
}

// NodeByName returns the node called name.
func (c *Cluster) NodeByName(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no node %q", name)
	return nil
}

// LeaderKey returns the leader key's value ("" when absent).
func (c *Cluster) LeaderKey() string {
	v, _ := c.EtcdKey(context.Background(), "leader")
	return v
}

// MemberLeaseTTL returns the granted TTL (seconds) of the lease members/<name> is attached to.
func (c *Cluster) MemberLeaseTTL(name string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.etcdClient().Get(ctx, "/itest/"+c.Scope+"/members/"+name)
	if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		return 0
	}
	ttl, err := c.etcdClient().TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil {
		return 0
	}
	return ttl.GrantedTTL
}

// SetTag rewrites a boolean tag in the node's config file (the next pgnoded start reads it).
func (n *Node) SetTag(t testing.TB, tag string, value bool) {
	t.Helper()
	b, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), fmt.Sprintf("  %s: %v\n", tag, !value), fmt.Sprintf("  %s: %v\n", tag, value), 1)
	if err := os.WriteFile(n.ConfigPath, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// EditConfig replaces the first old in the node's config file by new (the
// next pgnoded start reads it); a file without old fails the test.
func (n *Node) EditConfig(t testing.TB, old, new string) {
	t.Helper()
	b, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), old, new, 1)
	if s == string(b) {
		t.Fatalf("%s has no %q to replace", n.ConfigPath, old)
	}
	if err := os.WriteFile(n.ConfigPath, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ClusterRoles is GET /cluster's role by member name, asked of n.
func (n *Node) ClusterRoles(t testing.TB) map[string]string {
	t.Helper()
	code, b := n.Get("/cluster")
	var doc struct {
		Members []struct{ Name, Role string } `json:"members"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &doc) != nil {
		t.Fatalf("GET /cluster on %s: %d %s", n.Name, code, b)
	}
	out := map[string]string{}
	for _, m := range doc.Members {
		out[m.Name] = m.Role
	}
	return out
}

// runPgnodectl runs pgnodectl in this process and returns its output; a non-zero exit fails the test.
func runPgnodectl(t testing.TB, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if code := ctl.Run(ctx, args, ctl.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Environ: os.Environ()}); code != ctl.ExitOK {
		t.Fatalf("pgnodectl %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

// startAckWriter creates table ops_writes on primary p and writes through
// p, then through the first node answering 200 on /primary, with 2 ms
// between acknowledged inserts, so that the write outage of each switchover
// can be measured afterwards.
func startAckWriter(t testing.TB, c *Cluster, p *Node) *Writer {
	t.Helper()
	return startNodeWriter(t, p, "ops_writes", 2*time.Millisecond, 5*time.Millisecond, func() *Node {
		for _, n := range c.Nodes {
			if n.Check("/primary") == 200 {
				return n
			}
		}
		return nil
	})
}

// percentile returns the p-th percentile (0..100, nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := (p*len(s) + 99) / 100
	return s[max(k-1, 0)]
}
