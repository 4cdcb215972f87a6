//go:build integration

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Synchronous replication made visible (the contract's health rows 7–11,
// /patroni, /cluster, /metrics, patronictl list) on a running loopback
// cluster whose synchronous_mode the test writes into /config through etcd;
// the primary keeps the sync key itself (it picks the standby and drops the
// one that asks for release). pgnoded shows the listed replica as the sync
// standby everywhere Patroni does, and Debian's patronictl 3.0.2 and pgnodectl
// list print it as "Sync Standby". Then the nosync dance: POST /restart to the
// sync standby publishes nosync in its member key and waits, postgres
// untouched, until the primary drops it from the sync key; the restart then
// runs and the tag goes away. SIGTERM (a clean stop) does the same before it
// stops postgres.
func TestSyncStandbyVisibleAndReleased(t *testing.T) {
	timing := Timing{TTL: 20, LoopWait: 5, RetryTimeout: 5} // 2×loop_wait = 10 s: an event wake is told apart from the limit
	c := StartCluster(t, 3, timing)
	p := c.WaitPrimary(120*time.Second, nil)
	c.WaitHealthyReplicas(90*time.Second, p)
	ctx := context.Background()

	raw, _ := c.EtcdKey(ctx, "config")
	var doc map[string]any
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf("config key %q: %v", raw, err)
	}
	doc["synchronous_mode"] = true
	putConfig(t, c, doc)
	syncN := c.WaitSyncListed(t, p, 60*time.Second)
	asyncN := c.Others(p, syncN)[0]

	// Health checks, rows 7–11 (3.0.2: /quorum is unknown, 503).
	want := []struct {
		n    *Node
		path string
		code int
	}{
		{syncN, "/sync", 200}, {syncN, "/synchronous", 200}, {syncN, "/async", 503},
		{syncN, "/read-only-sync", 200}, {syncN, "/quorum", 503},
		{asyncN, "/sync", 503}, {asyncN, "/async", 200}, {asyncN, "/asynchronous", 200},
		{asyncN, "/read-only-sync", 503},
		{p, "/sync", 503}, {p, "/async", 503}, {p, "/read-only-sync", 200},
	}
	WaitFor(t, 30*time.Second, "the health checks to follow the sync key", func() bool {
		for _, w := range want {
			if w.n.Check(w.path) != w.code {
				return false
			}
		}
		return true
	})
	for _, w := range want {
		if got := w.n.Check(w.path); got != w.code {
			t.Errorf("%s OPTIONS %s: %d, want %d", w.n.Name, w.path, got, w.code)
		}
	}
	if st := syncN.Status(); st["sync_standby"] != true {
		t.Errorf("%s /patroni sync_standby = %v, want true", syncN.Name, st["sync_standby"])
	}
	if st := asyncN.Status(); st["sync_standby"] != nil {
		t.Errorf("%s /patroni sync_standby = %v, want absent", asyncN.Name, st["sync_standby"])
	}
	// asyncN's view of the sync key is not proven by the checks above (its
	// answers are the same without it).
	var roles map[string]string
	if !pollFor(10*time.Second, func() bool {
		roles = asyncN.ClusterRoles(t)
		return roles[syncN.Name] == "sync_standby" && roles[asyncN.Name] == "replica" && roles[p.Name] == "leader"
	}) {
		t.Errorf("/cluster roles %v, want %s sync_standby", roles, syncN.Name)
	}
	if _, b := syncN.Get("/metrics"); !regexp.MustCompile(`(?m)^patroni_sync_standby\{[^}]*\} 1$`).Match(b) {
		t.Errorf("%s /metrics: patroni_sync_standby is not 1", syncN.Name)
	}
	WaitFor(t, 20*time.Second, p.Name+" exports pgnoded_sync_standbys 1", func() bool {
		return strings.Contains(scrape(p), "\npgnoded_sync_standbys 1\n")
	})
	if !strings.Contains(scrape(syncN), "\npgnoded_sync_standbys 0\n") {
		t.Errorf("%s (a replica) exports pgnoded_sync_standbys other than 0", syncN.Name)
	}

	// pgnodectl list and Debian's patronictl list.
	out := runPgnodectl(t, "-c", p.ConfigPath, "list")
	if !regexp.MustCompile(`\| ` + syncN.Name + ` +\|[^|]+\| Sync Standby +\|`).MatchString(out) {
		t.Errorf("pgnodectl list does not show %s as Sync Standby:\n%s", syncN.Name, out)
	}
	if regexp.MustCompile(`\| ` + asyncN.Name + ` +\|[^|]+\| Sync Standby`).MatchString(out) {
		t.Errorf("pgnodectl list shows %s as Sync Standby:\n%s", asyncN.Name, out)
	}
	t.Logf("pgnodectl list:\n%s", out)
	if _, err := os.Stat("/usr/bin/patronictl"); err == nil {
		pc := newPatronictl(t, c)
		for _, r := range pc.list(c.Scope) {
			wantRole := map[string]string{p.Name: "Leader", syncN.Name: "Sync Standby", asyncN.Name: "Replica"}[r.Member]
			if r.Role != wantRole {
				t.Errorf("patronictl list: %s role %q, want %q", r.Member, r.Role, wantRole)
			}
		}
		t.Logf("patronictl list:\n%s", pc.must("list", c.Scope))
	} else {
		t.Log("patronictl not installed: its list is not compared")
	}

	// The nosync dance.
	pid := syncN.PostmasterPID()
	reply := make(chan string, 1)
	asked := time.Now()
	go func() {
		code, text := syncN.Call(t, http.MethodPost, "/restart", map[string]any{})
		reply <- fmt.Sprintf("%d %s", code, text)
	}()
	// The primary may release it within milliseconds: the request is seen
	// either as nosync in the member key or by the log line that follows it.
	WaitFor(t, 10*time.Second, syncN.Name+" publishes nosync in its member key", func() bool {
		return svMemberNoSync(c, syncN.Name) || syncN.LogCount(svAsked) > 0
	})
	if tags, _ := syncN.Status()["tags"].(map[string]any); tags["nosync"] != true && syncN.LogCount("released from synchronous standby duty") == 0 {
		t.Errorf("%s /patroni tags %v while asking for release, want nosync: true", syncN.Name, tags)
	}
	// The primary drops it; postgres restarts only after that.
	dropped := svUntilReleased(t, c, syncN, pid, 30*time.Second)
	var r string
	select {
	case r = <-reply:
	case <-time.After(90 * time.Second):
		t.Fatalf("no answer to the restart after the release")
	}
	if r != "200 restarted successfully" {
		t.Fatalf("restart: %q", r)
	}
	t.Logf("restart answered %.1fs after the request, %.1fs after the release (2×loop_wait = %ds)",
		time.Since(asked).Seconds(), time.Since(dropped).Seconds(), 2*timing.LoopWait)
	if syncN.LogCount("released from synchronous standby duty; restarting") == 0 {
		t.Errorf("%s did not restart on the sync key's change (its log lacks the release line)", syncN.Name)
	}
	if syncN.LogCount("did not release us from synchronous standby") != 0 {
		t.Errorf("%s waited out 2×loop_wait although the primary released it", syncN.Name)
	}
	if got := syncN.PostmasterPID(); got == pid || got <= 0 {
		t.Errorf("%s postmaster pid %d after the restart (was %d)", syncN.Name, got, pid)
	}
	WaitFor(t, 30*time.Second, syncN.Name+" withdraws nosync", func() bool { return !svMemberNoSync(c, syncN.Name) })

	// The same dance before a clean stop (SIGTERM, systemctl stop), by
	// whichever replica the primary lists now.
	syncN = c.WaitSyncListed(t, p, 60*time.Second)
	WaitFor(t, 30*time.Second, syncN.Name+" answers /sync", func() bool { return syncN.Check("/sync") == 200 })
	pid = syncN.PostmasterPID()
	askedBefore := syncN.LogCount(svAsked)
	syncN.Signal(syscall.SIGTERM)
	WaitFor(t, 10*time.Second, syncN.Name+" publishes nosync before stopping", func() bool {
		return svMemberNoSync(c, syncN.Name) || syncN.LogCount(svAsked) > askedBefore
	})
	svUntilReleased(t, c, syncN, pid, 30*time.Second)
	if !syncN.WaitExit(60 * time.Second) {
		t.Fatalf("%s did not exit after the release", syncN.Name)
	}
	if syncN.LogCount("released from synchronous standby duty; stopping postgres") == 0 {
		t.Errorf("%s did not stop on the sync key's change (its log lacks the release line)", syncN.Name)
	}
	if pid := syncN.PostmasterPID(); pid > 0 {
		t.Errorf("%s: postmaster %d still running after pgnoded stopped", syncN.Name, pid)
	}
}

// svAsked is the log line of a sync standby that published nosync and waits for its release.
const svAsked = "Waiting for primary to release us from synchronous standby"

// svUntilReleased samples the sync key and n's postmaster until the key no
// longer lists n, failing if the postmaster (pid) went away before that; it
// returns when the release was seen.
func svUntilReleased(t *testing.T, c *Cluster, n *Node, pid int, limit time.Duration) time.Time {
	t.Helper()
	var released time.Time
	if !pollEvery(limit, 20*time.Millisecond, func() bool {
		k, _ := c.SyncKey(context.Background())
		if !k.Names(n.Name) {
			released = time.Now()
			return true
		}
		if n.PostmasterPID() != pid {
			t.Fatalf("%s's postgres (pid %d) went away while still listed in the sync key", n.Name, pid)
		}
		return false
	}) {
		t.Fatalf("the primary did not release %s from the sync key within %v", n.Name, limit)
	}
	return released
}

// svMemberNoSync reports whether name's member key carries the tag nosync: true.
func svMemberNoSync(c *Cluster, name string) bool {
	raw, ok := c.EtcdKey(context.Background(), "members/"+name)
	if !ok {
		return false
	}
	var m struct {
		Tags map[string]any `json:"tags"`
	}
	return json.Unmarshal([]byte(raw), &m) == nil && m.Tags["nosync"] == true
}
