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
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fsOutage is how long etcd stays down in the failsafe scenarios.
const fsOutage = 20 * time.Second

// fsPatchConfig sends PATCH /config to n and fails the test unless it is accepted.
func fsPatchConfig(t *testing.T, n *Node, patch map[string]any) {
	t.Helper()
	b, _ := json.Marshal(patch)
	req, err := http.NewRequest(http.MethodPatch, fmt.Sprintf("http://127.0.0.1:%d/config", n.APIPort), bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("PATCH /config on %s: %v", n.Name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH /config on %s: %d %s", n.Name, resp.StatusCode, body)
	}
}

// fsDumpFenceLogs logs every node's fence guard log when the test failed.
func fsDumpFenceLogs(t *testing.T, c *Cluster) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range c.Nodes {
			b, _ := os.ReadFile(filepath.Join(n.Dir, "pgnoded-fence.log"))
			t.Logf("---- fence log of %s ----\n%s", n.Name, tail(b, 3000))
		}
	})
}

// fsCheckKeyStable checks that the leader does not rewrite an unchanged failsafe key.
func fsCheckKeyStable(t *testing.T, c *Cluster) {
	t.Helper()
	cli := c.Etcd.Client()
	rev := func() int64 {
		resp, err := cli.Get(context.Background(), "/itest/"+c.Scope+"/failsafe")
		if err != nil || len(resp.Kvs) == 0 {
			t.Fatalf("read failsafe key: %v", err)
		}
		return resp.Kvs[0].ModRevision
	}
	before := rev()
	time.Sleep(time.Duration(3*Fast.LoopWait) * time.Second) // several leader cycles; nothing to wait for
	if after := rev(); after != before {
		t.Errorf("failsafe key rewritten without a change: mod_revision %d -> %d", before, after)
	}
}

// fsCheckPost checks POST /failsafe answers: 500 on the primary, 200 with an
// lsn header on a replica, 400 for a malformed body.
func fsCheckPost(t *testing.T, c *Cluster, p *Node) {
	t.Helper()
	post := func(n *Node, body string) (int, string, http.Header) {
		resp, err := httpClient.Post(fmt.Sprintf("http://127.0.0.1:%d/failsafe", n.APIPort), "application/json",
			bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatalf("POST /failsafe to %s: %v", n.Name, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	good := fmt.Sprintf(`{"name":%q,"conn_url":"postgres://127.0.0.1:%d/postgres","api_url":"http://127.0.0.1:%d/patroni","slots":{}}`,
		p.Name, p.PGPort, p.APIPort)
	if code, text, _ := post(p, good); code != http.StatusInternalServerError || !strings.Contains(text, "Running as a leader") {
		t.Errorf("POST /failsafe to the primary: %d %q, want 500 Running as a leader", code, text)
	}
	r := c.Others(p)[0]
	if code, text, h := post(r, good); code != http.StatusOK || h.Get("lsn") == "" {
		t.Errorf("POST /failsafe to replica %s: %d %q lsn=%q, want 200 with an lsn header", r.Name, code, text, h.Get("lsn"))
	}
	if code, _, _ := post(r, `{"conn_url":1}`); code != http.StatusBadRequest {
		t.Errorf("malformed POST /failsafe to %s: %d, want 400", r.Name, code)
	}
}

// fsKey decodes the failsafe key ({member: api_url}); nil when absent.
func fsKey(c *Cluster) map[string]string {
	raw, ok := c.EtcdKey(context.Background(), "failsafe")
	if !ok {
		return nil
	}
	var m map[string]string
	if json.Unmarshal([]byte(raw), &m) != nil {
		return nil
	}
	return m
}

// fsActive reads failsafe_mode_is_active from n's /patroni.
func fsActive(n *Node) bool { return failsafeActiveIn(n.Get("/patroni")) }

// TestEtcdLostFailsafeKeepsPrimary: with failsafe_mode turned on through
// PATCH /config, the primary keeps taking writes while etcd is down, and keeps
// its role when etcd returns.
func TestEtcdLostFailsafeKeepsPrimary(t *testing.T) {
	c, p := bootCluster(t, Fast)
	fsDumpFenceLogs(t, c)
	fsPatchConfig(t, p, map[string]any{"failsafe_mode": true})
	WaitFor(t, 30*time.Second, "failsafe key listing all members", func() bool {
		fs := fsKey(c)
		for _, n := range c.Nodes {
			if fs[n.Name] == "" {
				return false
			}
		}
		return true
	})
	WaitFor(t, 10*time.Second, "GET /failsafe answering 200", func() bool {
		code, _ := p.Get("/failsafe")
		return code == http.StatusOK
	})
	fsCheckKeyStable(t, c)
	fsCheckPost(t, c, p)
	chk := StartSplitBrainChecker(t, c)
	w := StartWriter(t, c, p)
	WaitFor(t, 10*time.Second, "some writes", func() bool { return w.Acked() > 20 })

	stoppedAt := time.Now()
	c.Etcd.Stop()
	sawActive := false
	for time.Since(stoppedAt) < fsOutage {
		if fsActive(p) {
			sawActive = true
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !p.Writable(context.Background()) {
		t.Errorf("primary %s not writable after %v without etcd in failsafe mode", p.Name, fsOutage)
	}
	if !sawActive {
		t.Errorf("failsafe_mode_is_active never reported by %s during the outage", p.Name)
	}
	c.Etcd.Start()
	restartedAt := time.Now()
	WaitFor(t, 60*time.Second, "leader key back", func() bool {
		l, ok := c.EtcdKey(context.Background(), "leader")
		return ok && l != ""
	})
	w.WaitWritesResume(t, 30*time.Second, restartedAt)
	time.Sleep(3 * time.Second) // let the cluster settle before judging
	np := c.WaitPrimary(60*time.Second, nil)
	if np != p {
		t.Errorf("primary changed from %s to %s across the etcd outage", p.Name, np.Name)
	}
	if l, _ := c.EtcdKey(context.Background(), "leader"); l != p.Name {
		t.Errorf("leader key = %q after etcd came back, want %s", l, p.Name)
	}
	if overlaps := chk.Stop(); len(overlaps) > 0 {
		t.Errorf("two writable primaries: %v", overlaps)
	}
	t.Logf("failsafe on (ttl %d, loop_wait %d, retry_timeout %d): etcd down %v, longest write gap %v, %d writes acked",
		Fast.TTL, Fast.LoopWait, Fast.RetryTimeout, fsOutage, w.LongestGap(), w.Acked())
	if lost := w.Lost(t, p); len(lost) > 0 {
		t.Errorf("%d acknowledged rows lost", len(lost))
	}
	// Turned off again: the leader deletes the key.
	fsPatchConfig(t, p, map[string]any{"failsafe_mode": false})
	WaitFor(t, 30*time.Second, "the failsafe key deleted once failsafe_mode is off", func() bool {
		_, ok := c.EtcdKey(context.Background(), "failsafe")
		return !ok
	})
}
