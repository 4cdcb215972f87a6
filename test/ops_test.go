//go:build integration

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Operator workflows over the REST API (Patroni's docs, rest_api.rst) on 3-node
// clusters: each request gets Patroni's status code and text, and the cluster
// ends up as asked.

func want(t *testing.T, what string, code int, text string, wantCode int, wantText string) {
	t.Helper()
	if code != wantCode || (wantText != "" && !strings.Contains(text, wantText)) {
		t.Fatalf("%s: got %d %q, want %d %q", what, code, text, wantCode, wantText)
	}
}

func TestOpsSwitchoverBadInputChangesNothing(t *testing.T) {
	c, p := bootCluster(t, Fast)
	c.WaitStreaming(60*time.Second, p)
	r := c.Others(p)[0]
	chk := StartSplitBrainChecker(t, c)
	w := startAckWriter(t, c, p)

	code, text := p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": "nosuch"})
	want(t, "switchover to a non-existent member", code, text, http.StatusPreconditionFailed, "candidate does not exists")
	code, text = p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": r.Name, "candidate": p.Name})
	want(t, "switchover from a member that is not the leader", code, text, http.StatusPreconditionFailed, "leader name does not match")

	// 3.0.2 accepts leader == candidate at the REST layer; the leader then refuses it.
	code, text = p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": p.Name})
	want(t, "switchover to the current leader", code, text, http.StatusServiceUnavailable, "Switchover failed")
	past := time.Now().Add(-time.Hour).Format(time.RFC3339)
	code, text = p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": r.Name, "scheduled_at": past})
	want(t, "a schedule in the past", code, text, http.StatusUnprocessableEntity, "Cannot schedule switchover in the past")
	code, text = p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": r.Name,
		"scheduled_at": time.Now().Add(time.Hour).Format("2006-01-02T15:04:05")})
	want(t, "a schedule without a time zone", code, text, http.StatusBadRequest, "Timezone information is mandatory")
	code, text = p.Call(t, http.MethodPost, "/failover", map[string]any{"leader": p.Name})
	want(t, "a failover without a candidate", code, text, http.StatusBadRequest, "Failover could be performed only to a specific candidate")
	code, text = p.Call(t, http.MethodDelete, "/switchover", nil)
	want(t, "deleting a switchover that is not scheduled", code, text, http.StatusNotFound, "no switchover is scheduled")

	// A nofailover member cannot be switched over to: its /patroni says so.
	r.SetTag(t, "nofailover", true)
	r.KillPgnoded()
	r.Start()
	WaitFor(t, 60*time.Second, r.Name+" publishes nofailover", func() bool {
		tags, _ := r.Status()["tags"].(map[string]any)
		return tags["nofailover"] == true
	})
	code, text = p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": r.Name})
	want(t, "switchover to a nofailover member", code, text, http.StatusPreconditionFailed,
		"switchover is not possible: no good candidates have been found")

	if leader := c.LeaderKey(); leader != p.Name {
		t.Fatalf("leader key = %q after refused requests, want %q", leader, p.Name)
	}
	if f, _ := c.EtcdKey(context.Background(), "failover"); f != "" && f != "{}" {
		t.Errorf("failover key = %q after refused requests, want empty", f)
	}
	if overlaps := chk.Stop(); len(overlaps) > 0 {
		t.Errorf("two writable primaries: %v", overlaps)
	}
	if lost := w.Lost(t, p); len(lost) > 0 {
		t.Errorf("%d acknowledged rows lost", len(lost))
	}
}

func TestOpsSwitchoverNamedAnyAndScheduled(t *testing.T) {
	c, p := bootCluster(t, Fast)
	c.WaitStreaming(60*time.Second, p)
	chk := StartSplitBrainChecker(t, c)
	w := startAckWriter(t, c, p)

	// To a named candidate, asked through a replica's API.
	cand := c.Others(p)[1]
	code, text := c.Others(p)[0].Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": cand.Name})
	want(t, "switchover to a named candidate", code, text, http.StatusOK, fmt.Sprintf("Successfully switched over to %q", cand.Name))
	if np := c.WaitPrimary(30*time.Second, p); np != cand {
		t.Fatalf("primary is %s, want %s", np.Name, cand.Name)
	}
	c.WaitStreaming(90*time.Second, cand)
	old := p
	p = cand

	// To any healthy candidate.
	code, text = p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name})
	want(t, "switchover to any candidate", code, text, http.StatusOK, "Successfully switched over to")
	np := c.WaitPrimary(30*time.Second, p)
	if leader := c.LeaderKey(); leader != np.Name || np == p {
		t.Fatalf("leader key %q, primary %s after a switchover away from %s", leader, np.Name, p.Name)
	}
	c.WaitStreaming(90*time.Second, np)
	p = np

	// Scheduled: nothing happens before the time, the switchover happens after it.
	cand = c.Others(p)[0]
	at := time.Now().Add(5 * time.Second).Truncate(time.Second)
	code, text = p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": cand.Name,
		"scheduled_at": at.Format(time.RFC3339)})
	want(t, "scheduled switchover", code, text, http.StatusAccepted, "Switchover scheduled")
	WaitFor(t, 4*time.Second, "/cluster shows the scheduled switchover", func() bool {
		var doc map[string]any
		_, b := p.Get("/cluster")
		return json.Unmarshal(b, &doc) == nil && doc["scheduled_switchover"] != nil
	})
	WaitFor(t, 30*time.Second, "the scheduled switchover", func() bool { return c.LeaderKey() == cand.Name })
	if now := time.Now(); now.Before(at) {
		t.Errorf("the scheduled switchover ran at %s, before its time %s", now.Format(time.RFC3339Nano), at.Format(time.RFC3339))
	}
	p = c.WaitPrimary(30*time.Second, nil)
	c.WaitStreaming(90*time.Second, p)

	// A scheduled switchover can be deleted; then nothing happens.
	code, text = p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": old.Name,
		"scheduled_at": time.Now().Add(time.Hour).Format(time.RFC3339)})
	want(t, "scheduled switchover", code, text, http.StatusAccepted, "Switchover scheduled")
	code, text = p.Call(t, http.MethodDelete, "/switchover", nil)
	want(t, "delete the scheduled switchover", code, text, http.StatusOK, "scheduled switchover deleted")
	if f, _ := c.EtcdKey(context.Background(), "failover"); f != "{}" && f != "" {
		t.Errorf("failover key = %q after DELETE /switchover", f)
	}

	if overlaps := chk.Stop(); len(overlaps) > 0 {
		t.Errorf("two writable primaries: %v", overlaps)
	}
	if lost := w.Lost(t, p); len(lost) > 0 {
		t.Errorf("%d acknowledged rows lost in planned switchovers", len(lost))
	}
}

func TestOpsFailoverWhenPrimaryIsGone(t *testing.T) {
	c, p := bootCluster(t, Fast)
	c.WaitStreaming(60*time.Second, p)
	cand := c.Others(p)[1]
	p.KillPgnoded()
	p.KillPostmaster()
	code, text := cand.Call(t, http.MethodPost, "/failover", map[string]any{"candidate": cand.Name})
	want(t, "failover to a named candidate with the primary gone", code, text, http.StatusOK,
		fmt.Sprintf("Successfully failed over to %q", cand.Name))
	if np := c.WaitPrimary(30*time.Second, p); np != cand {
		t.Fatalf("primary is %s, want %s", np.Name, cand.Name)
	}
}

func TestOpsRestartWithConditions(t *testing.T) {
	c, p := bootCluster(t, Fast)
	c.WaitStreaming(60*time.Second, p)
	r := c.Others(p)[0]

	code, text := p.Call(t, http.MethodPost, "/restart", map[string]any{"role": "replica"})
	want(t, "restart of the primary filtered on role replica", code, text, http.StatusServiceUnavailable,
		"restart conditions are not satisfied")
	code, text = r.Call(t, http.MethodPost, "/restart", map[string]any{"restart_pending": true})
	want(t, "restart without a pending restart", code, text, http.StatusServiceUnavailable, "restart conditions are not satisfied")
	code, text = r.Call(t, http.MethodPost, "/restart", map[string]any{"postgres_version": "15.0"})
	want(t, "restart for an older version", code, text, http.StatusServiceUnavailable, "restart conditions are not satisfied")
	code, text = r.Call(t, http.MethodPost, "/restart", map[string]any{"role": "leader"})
	want(t, "restart with a bad role", code, text, http.StatusBadRequest, "PostgreSQL role should be either primary or replica")

	pid := r.PostmasterPID()
	code, text = r.Call(t, http.MethodPost, "/restart", map[string]any{"role": "replica"})
	want(t, "restart of a replica", code, text, http.StatusOK, "restarted successfully")
	if r.PostmasterPID() == pid {
		t.Errorf("the replica's postmaster did not change")
	}
	pid = p.PostmasterPID()
	code, text = p.Call(t, http.MethodPost, "/restart", map[string]any{"role": "master"})
	want(t, "restart of the primary", code, text, http.StatusOK, "restarted successfully")
	if p.PostmasterPID() == pid {
		t.Errorf("the primary's postmaster did not change")
	}
	if np := c.WaitPrimary(30*time.Second, nil); np != p {
		t.Fatalf("primary moved to %s after a restart", np.Name)
	}
	c.WaitStreaming(60*time.Second, p)

	// A parameter that needs a restart: pending_restart, then a restart filtered on it.
	code, text = p.Call(t, http.MethodPatch, "/config", map[string]any{"postgresql": map[string]any{
		"parameters": map[string]any{"max_files_per_process": 900}}})
	want(t, "patch a restart-only parameter", code, text, http.StatusOK, "")
	WaitFor(t, 30*time.Second, r.Name+" flags pending_restart", func() bool { return r.Status()["pending_restart"] == true })
	code, text = r.Call(t, http.MethodPost, "/restart", map[string]any{"restart_pending": true})
	want(t, "restart of a replica with a pending restart", code, text, http.StatusOK, "restarted successfully")
	if v, err := r.QueryString("show max_files_per_process"); err != nil || v != "900" {
		t.Errorf("max_files_per_process after the restart = %q (%v), want 900", v, err)
	}
	WaitFor(t, 30*time.Second, "pending_restart cleared", func() bool { return r.Status()["pending_restart"] == nil })

	// Scheduled: one at a time, published, executed when due; deletable.
	pid = r.PostmasterPID()
	at := time.Now().Add(4 * time.Second)
	code, text = r.Call(t, http.MethodPost, "/restart", map[string]any{"schedule": at.Format(time.RFC3339Nano)})
	want(t, "scheduled restart", code, text, http.StatusAccepted, "Restart scheduled")
	code, text = r.Call(t, http.MethodPost, "/restart", map[string]any{"schedule": at.Add(time.Minute).Format(time.RFC3339)})
	want(t, "a second scheduled restart", code, text, http.StatusConflict, "Another restart is already scheduled")
	if r.Status()["scheduled_restart"] == nil {
		t.Errorf("/patroni does not show the scheduled restart")
	}
	WaitFor(t, 30*time.Second, "the scheduled restart", func() bool {
		pm := r.PostmasterPID()
		return pm != 0 && pm != pid
	})
	if time.Now().Before(at) {
		t.Errorf("the scheduled restart ran before its time")
	}
	code, text = r.Call(t, http.MethodPost, "/restart", map[string]any{"schedule": time.Now().Add(time.Hour).Format(time.RFC3339)})
	want(t, "scheduled restart", code, text, http.StatusAccepted, "Restart scheduled")
	code, text = r.Call(t, http.MethodDelete, "/restart", nil)
	want(t, "delete the scheduled restart", code, text, http.StatusOK, "scheduled restart deleted")
	code, text = r.Call(t, http.MethodDelete, "/restart", nil)
	want(t, "delete with nothing scheduled", code, text, http.StatusNotFound, "no restarts are scheduled")
}

func TestOpsReinitializeReplica(t *testing.T) {
	c, p := bootCluster(t, Fast)
	c.WaitStreaming(60*time.Second, p)
	r := c.Others(p)[0]
	code, text := p.Call(t, http.MethodPost, "/reinitialize", nil)
	want(t, "reinitialize the leader", code, text, http.StatusServiceUnavailable, "I am the leader, can not reinitialize")

	marker := filepath.Join(r.Dir, "data", "ops_marker")
	if err := os.WriteFile(marker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn, err := p.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(context.Background(), "create table ops_reinit as select 42 as answer")
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	code, text = r.Call(t, http.MethodPost, "/reinitialize", map[string]any{"force": true})
	want(t, "reinitialize a replica", code, text, http.StatusOK, "reinitialize started")
	WaitFor(t, 120*time.Second, "the replica re-cloned and streaming", func() bool {
		_, err := os.Stat(marker)
		return os.IsNotExist(err) && r.Check("/replica?replication_state=streaming") == 200
	})
	if v, err := r.QueryString("select answer::text from ops_reinit"); err != nil || v != "42" {
		t.Errorf("re-cloned replica reads %q (%v), want 42", v, err)
	}
	if np := c.WaitPrimary(10*time.Second, nil); np != p {
		t.Errorf("primary moved to %s", np.Name)
	}
}

func TestOpsPauseThenKillPrimaryPostmaster(t *testing.T) {
	c, p := bootCluster(t, Fast)
	c.WaitStreaming(60*time.Second, p)
	code, text := p.Call(t, http.MethodPatch, "/config", map[string]any{"pause": true})
	want(t, "pause", code, text, http.StatusOK, `"pause":true`)
	WaitFor(t, 30*time.Second, "every node shows pause", func() bool {
		for _, n := range c.Nodes {
			if n.Status()["pause"] != true {
				return false
			}
		}
		return true
	})
	p.KillPostmaster()
	killed := time.Now()
	// Nothing happens: postgres stays down, nobody is promoted, the key stays.
	for time.Since(killed) < time.Duration(Fast.TTL+3*Fast.LoopWait)*time.Second {
		for _, n := range c.Others(p) {
			if n.Writable(context.Background()) {
				t.Fatalf("%s was promoted during the pause", n.Name)
			}
		}
		if p.Writable(context.Background()) {
			t.Fatalf("postgres was restarted during the pause")
		}
		time.Sleep(500 * time.Millisecond) // sampling a steady state over a fixed period
	}
	if leader := c.LeaderKey(); leader != p.Name {
		t.Errorf("leader key = %q during the pause, want %q kept", leader, p.Name)
	}
	code, text = p.Call(t, http.MethodPatch, "/config", map[string]any{"pause": nil})
	want(t, "resume", code, text, http.StatusOK, "")
	if strings.Contains(text, "pause") {
		t.Errorf("config still has pause after resuming: %s", text)
	}
	if np := c.WaitPrimary(60*time.Second, nil); np != p {
		t.Fatalf("after resuming the primary is %s, want %s restarted in place", np.Name, p.Name)
	}
	c.WaitStreaming(60*time.Second, p)
}

func TestOpsPatchConfigEverywhere(t *testing.T) {
	c, p := bootCluster(t, Fast)
	c.WaitStreaming(60*time.Second, p)
	code, text := c.Others(p)[0].Call(t, http.MethodPatch, "/config", map[string]any{
		"ttl": 12, "postgresql": map[string]any{"parameters": map[string]any{"work_mem": "7MB"}}})
	want(t, "patch ttl and work_mem", code, text, http.StatusOK, `"ttl":12`)
	var merged map[string]any
	if err := json.Unmarshal([]byte(text), &merged); err != nil || merged["loop_wait"] == nil {
		t.Errorf("PATCH answer is not the merged config: %s", text)
	}
	for _, n := range c.Nodes {
		WaitFor(t, 30*time.Second, n.Name+" runs with work_mem 7MB", func() bool {
			v, err := n.QueryString("show work_mem")
			return err == nil && v == "7MB"
		})
		WaitFor(t, 30*time.Second, n.Name+" holds its member key on a 12 s lease", func() bool {
			return c.MemberLeaseTTL(n.Name) == 12
		})
	}

	// Concurrent PATCHes read the same revision: the compare-and-swap lets one through.
	conflicts := 0
	for attempt := 0; attempt < 30 && conflicts == 0; attempt++ {
		var wg sync.WaitGroup
		gate := make(chan struct{})
		codes := make([]int, len(c.Nodes))
		for i, n := range c.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				codes[i], _ = n.Call(t, http.MethodPatch, "/config", map[string]any{"retry_timeout": 3 + (attempt+i)%3})
			}()
		}
		close(gate)
		wg.Wait()
		for _, code := range codes {
			switch code {
			case http.StatusOK:
			case http.StatusConflict:
				conflicts++
			default:
				t.Fatalf("concurrent PATCH answered %d", code)
			}
		}
	}
	t.Logf("concurrent PATCH /config: %d conflicts (409) seen", conflicts)

	// PUT replaces the document; an invalid body is refused by the REST layer.
	_, b := p.Get("/config")
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("GET /config: %v (%s)", err, b)
	}
	doc["maximum_lag_on_failover"] = 2097152
	code, text = p.Call(t, http.MethodPut, "/config", doc)
	want(t, "put config", code, text, http.StatusOK, `"maximum_lag_on_failover":2097152`)
	WaitFor(t, 10*time.Second, "the config key replaced", func() bool {
		raw, _ := c.EtcdKey(context.Background(), "config")
		return strings.Contains(raw, `"maximum_lag_on_failover":2097152`)
	})
	code, text = p.Call(t, http.MethodPost, "/reload", nil)
	want(t, "reload", code, text, http.StatusAccepted, "reload scheduled")
	p.Signal(syscall.SIGHUP)
	if np := c.WaitPrimary(10*time.Second, nil); np != p {
		t.Errorf("primary moved to %s", np.Name)
	}
}
