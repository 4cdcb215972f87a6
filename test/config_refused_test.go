//go:build integration

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// A setting pgnoded refuses (docs/config-keys.md), written into a running
// cluster's /config behind pgnoded's back (as `patronictl edit-config` or a
// hand-made etcdctl put would): every node logs it as an error and exports
// pgnoded_config_refused{key="synchronous_mode"} 1; when the primary dies no
// node promotes; a node started meanwhile exits 2 naming the key; removing
// the setting brings leader elections back. PATCH /config refuses the same
// kind of setting with 400 and leaves the key as it was.
func TestConfigRefusedInEtcd(t *testing.T) {
	c := StartCluster(t, 3, Fast)
	p := c.WaitPrimary(90*time.Second, nil)
	c.WaitHealthyReplicas(60*time.Second, p)
	ctx := context.Background()
	before, _ := c.EtcdKey(ctx, "config")

	// PATCH /config with synchronous_node_count: 0 is refused, with the reason, and changes nothing.
	code, text := p.Call(t, "PATCH", "/config", map[string]any{"synchronous_mode": true, "synchronous_node_count": 0, "ttl": 12})
	if code != 400 || !strings.Contains(text, "synchronous_node_count: pgnoded does not support synchronous_node_count") {
		t.Fatalf("PATCH synchronous_node_count=0: %d %q, want 400 with the reason", code, text)
	}
	if after, _ := c.EtcdKey(ctx, "config"); after != before {
		t.Fatalf("config key changed by a refused PATCH:\nbefore %s\nafter  %s", before, after)
	}
	t.Logf("PATCH /config {synchronous_node_count: 0} -> %d %s", code, text)

	// synchronous_mode: quorum written into /config through etcd directly.
	var doc map[string]any
	if err := json.Unmarshal([]byte(before), &doc); err != nil {
		t.Fatalf("config key %q: %v", before, err)
	}
	doc["synchronous_mode"] = "quorum"
	putConfig(t, c, doc)

	for _, n := range c.Nodes {
		WaitFor(t, 20*time.Second, n.Name+" exports pgnoded_config_refused{key=\"synchronous_mode\"} 1", func() bool {
			return strings.Contains(scrape(n), `pgnoded_config_refused{key="synchronous_mode"} 1`)
		})
	}
	for _, n := range c.Nodes {
		WaitFor(t, 10*time.Second, n.Name+" logs the refusal as an error", func() bool {
			b, _ := os.ReadFile(n.LogPath)
			return strings.Contains(string(b), "ERROR: /config: synchronous_mode: pgnoded does not support quorum commit")
		})
	}

	// Kill the primary (pgnoded and postgres): nobody may take over while the setting stands.
	p.KillPgnoded()
	p.KillPostmaster()
	killed := time.Now()
	WaitFor(t, time.Duration(2*Fast.TTL)*time.Second, "the dead primary's leader key to expire", func() bool { return c.LeaderKey() == "" })
	t.Logf("leader key gone %.1fs after the kill", time.Since(killed).Seconds())
	watchUntil := time.Now().Add(time.Duration(3*Fast.LoopWait+Fast.RetryTimeout) * time.Second)
	for time.Now().Before(watchUntil) {
		if l := c.LeaderKey(); l != "" {
			t.Fatalf("%s took the leader key while synchronous_mode: quorum stands in /config", l)
		}
		for _, n := range c.Others(p) {
			if n.Writable(ctx) {
				t.Fatalf("%s promoted while synchronous_mode: quorum stands in /config", n.Name)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A node started now exits 2 naming the key.
	p.Start()
	if !p.WaitExit(60 * time.Second) {
		t.Fatalf("%s kept running with synchronous_mode: quorum in /config", p.Name)
	}
	if ec := p.exitCode(); ec != 2 {
		t.Fatalf("%s exit code %d, want 2", p.Name, ec)
	}
	if b, _ := os.ReadFile(p.LogPath); !strings.Contains(string(b), "/config: synchronous_mode: pgnoded does not support quorum commit") {
		t.Fatalf("%s's output does not name the refused key:\n%s", p.Name, tail(b, 2000))
	}

	// Removing it restores normal behaviour: a new primary is elected.
	delete(doc, "synchronous_mode")
	putConfig(t, c, doc)
	removed := time.Now()
	np := c.WaitPrimary(60*time.Second, p)
	t.Logf("new primary %s %.1fs after synchronous_mode: quorum was removed", np.Name, time.Since(removed).Seconds())
	for _, n := range c.Others(p) {
		WaitFor(t, 10*time.Second, n.Name+" drops pgnoded_config_refused", func() bool {
			return !strings.Contains(scrape(n), "pgnoded_config_refused{")
		})
	}
}

// putConfig writes the config key directly into etcd.
func putConfig(t *testing.T, c *Cluster, doc map[string]any) {
	t.Helper()
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.etcdClient().Put(ctx, "/itest/"+c.Scope+"/config", string(raw)); err != nil {
		t.Fatalf("put config: %v", err)
	}
}

// scrape returns the node's :9630-style exporter page ("" when unreachable).
func scrape(n *Node) string {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", n.MetricPort))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// exitCode is pgnoded's exit status after WaitExit (-1 when unknown).
func (n *Node) exitCode() int { return n.Proc.ExitCode() }
