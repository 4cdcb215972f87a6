package ctl

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// byMember sorts calls by member (the fakes answer concurrently only per member).
func byMember(calls []call) []call {
	slices.SortStableFunc(calls, func(a, b call) int { return strings.Compare(a.member, b.member) })
	return calls
}

func TestRestart(t *testing.T) {
	cfg := writeConfig(t, authConfig)
	f := newFakeMembers(t, cloneView(fixtureView()), map[string]func(string) reply{
		"POST /restart": func(m string) reply {
			switch m {
			case "pg-test-1":
				return reply{200, "restarted successfully"}
			case "pg-test-2":
				return reply{409, "Another restart is already scheduled"}
			}
			return reply{503, "restart failed"}
		},
	})
	// Playbook form: patronictl restart <cls> --force.
	r := runCtl(t, f.store(), "", nil, "-c", cfg, "restart", "pg-test", "--force")
	if r.code != 1 || r.stderr != "pgnodectl: restart: restart failed on 2 of 3 members\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, s := range []string{
		"Success: restart on member pg-test-1\n",
		"Failed: another restart is already scheduled on member pg-test-2\n",
		"Failed: restart for member pg-test-3, status code=503, (restart failed)\n",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, c := range f.recorded() {
		if c.method != "POST" || c.path != "/restart" || c.body != "{}" || c.user != "postgres" {
			t.Errorf("unexpected call %+v", c)
		}
	}
}

func TestRestartFilters(t *testing.T) {
	cfg := writeConfig(t, authConfig)
	f := newFakeMembers(t, cloneView(fixtureView()), map[string]func(string) reply{
		"POST /restart": fixed(202, "Restart scheduled"),
	})
	r := runCtl(t, f.store(), "", nil, "-c", cfg, "restart", "pg-test", "-r", "replica", "--pending",
		"--pg-version", "15.4", "--timeout", "30", "--scheduled", "2024-05-01 13:00", "--force")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	body := `{"postgres_version":"15.4","restart_pending":true,"schedule":"2024-05-01T13:00:00+00:00","timeout":"30"}`
	want := []call{
		{member: "pg-test-2", method: "POST", path: "/restart", body: body, user: "postgres", pass: "Patroni.API"},
		{member: "pg-test-3", method: "POST", path: "/restart", body: body, user: "postgres", pass: "Patroni.API"},
	}
	if got := byMember(f.recorded()); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %+v\nwant %+v", got, want)
	}
	if !strings.Contains(r.stdout, "Success: restart scheduled on member pg-test-3\n") {
		t.Errorf("stdout:\n%s", r.stdout)
	}

	// Members named without the cluster (pgnodectl's shorthand), the leader only.
	f = newFakeMembers(t, cloneView(fixtureView()), map[string]func(string) reply{"POST /restart": fixed(200, "restarted successfully")})
	r = runCtl(t, f.store(), "", nil, "-c", cfg, "restart", "pg-test-1", "pg-test-3", "--role", "leader", "--force")
	if calls := f.recorded(); r.code != 0 || len(calls) != 1 || calls[0].member != "pg-test-1" {
		t.Errorf("exit %d, stderr %q, calls %+v", r.code, r.stderr, calls)
	}
}

func TestMemberArgumentErrors(t *testing.T) {
	cfg := writeConfig(t, authConfig)
	paused := cloneView(fixtureView())
	paused.Config = &cluster.DynamicConfig{Pause: true}
	cases := []struct {
		view cluster.View
		args []string
		code int
		err  string
	}{
		{fixtureView(), []string{"restart", "pg-test", "nobody", "--force"}, 1, "restart: nobody is not a member of cluster pg-test"},
		{fixtureView(), []string{"restart", "--role", "boss", "--force"}, 2, `restart: invalid --role "boss": expected one of leader, primary, standby-leader, replica, standby, any, master`},
		{fixtureView(), []string{"restart", "--pg-version", "9.6", "--force"}, 2, "restart: Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"},
		{fixtureView(), []string{"restart", "--pg-version", "fifteen", "--force"}, 2, "restart: Invalid PostgreSQL version: fifteen"},
		{paused, []string{"restart", "--scheduled", "2030-01-01T00:00Z", "--force"}, 1, "restart: Can't schedule restart in the paused state"},
		{fixtureView(), []string{"reinit", "pg-test", "pg-test-1", "--force"}, 1, "reinit: No replica among provided members"},
		{fixtureView(), []string{"reinit", "--force"}, 2, "reinit: name the member to reinitialize"},
		{fixtureView(), []string{"flush", "pg-test"}, 2, "flush: say what to flush: restart or switchover"},
		{fixtureView(), []string{"history", "a", "b"}, 2, "history: too many arguments: b"},
		{fixtureView(), []string{"list", "--format", "xml"}, 2, `list: unknown --format "xml": expected pretty, tsv, json or yaml`},
		{fixtureView(), []string{"edit-config", "-p", "shared_buffers"}, 2, "edit-config: Invalid parameter setting shared_buffers"},
		{fixtureView(), []string{"list", "-w", "-1"}, 2, `list: invalid value "-1" for flag -w: watch interval must be a positive number of seconds, got "-1"`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			f := newFakeMembers(t, cloneView(c.view), nil)
			r := runCtl(t, f.store(), "", nil, append([]string{"-c", cfg}, c.args...)...)
			if r.code != c.code || r.stderr != "pgnodectl: "+c.err+"\n" {
				t.Errorf("exit %d, stderr %q\nwant %d, %q", r.code, r.stderr, c.code, "pgnodectl: "+c.err+"\n")
			}
			if calls := f.recorded(); len(calls) != 0 {
				t.Errorf("requests were sent: %+v", calls)
			}
		})
	}
}

func TestReloadAndReinit(t *testing.T) {
	cfg := writeConfig(t, authConfig)
	var polls atomic.Int32
	f := newFakeMembers(t, cloneView(fixtureView()), map[string]func(string) reply{
		"POST /reload":       fixed(202, "reload scheduled"),
		"POST /reinitialize": fixed(200, "reinitialize started"),
		"GET /patroni": func(string) reply {
			if polls.Add(1) < 3 {
				return reply{200, `{"state":"creating replica"}`}
			}
			return reply{200, `{"state":"running"}`}
		},
	})
	r := runCtl(t, f.store(), "y\n", nil, "-c", cfg, "reload", "pg-test", "pg-test-2")
	if r.code != 0 || !strings.Contains(r.stdout, "Are you sure you want to reload members pg-test-2? [y/N]: Reload request received for member pg-test-2 and will be processed within 10 seconds\n") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
	}
	r = runCtl(t, f.store(), "", nil, "-c", cfg, "reinit", "pg-test", "pg-test-3", "--force", "--wait")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, s := range []string{"Success: reinitialize for member pg-test-3\n", "Waiting for reinitialize to complete on: pg-test-3\n", "Reinitialize is completed on: pg-test-3\n"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	var reinit []call
	for _, c := range f.recorded() {
		if c.path == "/reinitialize" {
			reinit = append(reinit, c)
		}
	}
	if len(reinit) != 1 || reinit[0].member != "pg-test-3" || reinit[0].body != `{"force":true}` {
		t.Errorf("reinitialize calls %+v", reinit)
	}
}

func TestPauseResume(t *testing.T) {
	cfg := writeConfig(t, authConfig)
	v := cloneView(fixtureView())
	leader := v.Members["pg-test-1"]
	f := newFakeMembers(t, v, map[string]func(string) reply{"PATCH /config": fixed(200, `{"pause":true}`)})
	// The leader's API is down: the next member takes the request.
	leader.APIURL = "http://127.0.0.1:1/patroni"
	f.view.Members["pg-test-1"] = leader
	r := runCtl(t, f.store(), "", nil, "-c", cfg, "pause")
	if r.code != 0 || r.stdout != "Success: cluster management is paused\n" {
		t.Fatalf("exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	calls := f.recorded()
	if len(calls) != 1 || calls[0].member != "pg-test-2" || calls[0].method != http.MethodPatch || calls[0].path != "/config" || calls[0].body != `{"pause":true}` {
		t.Errorf("calls %+v", calls)
	}
	r = runCtl(t, f.store(), "", nil, "-c", cfg, "resume")
	if r.code != 1 || r.stderr != "pgnodectl: resume: Cluster is not paused\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}

	paused := cloneView(f.view)
	paused.Config = &cluster.DynamicConfig{Pause: true, LoopWait: 10}
	for name, m := range paused.Members {
		m.Pause = false // every member already shows the resumed state
		paused.Members[name] = m
	}
	st := &fakeStore{views: map[string]cluster.View{"pg-test": paused}}
	r = runCtl(t, st, "", nil, "-c", cfg, "resume", "--wait")
	if r.code != 0 || r.stdout != "'resume' request sent, waiting until it is recognized by all nodes\nSuccess: cluster management is resumed\n" {
		t.Errorf("exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	if last := f.recorded()[len(f.recorded())-1]; last.body != `{"pause":null}` {
		t.Errorf("resume body %q", last.body)
	}
	r = runCtl(t, st, "", nil, "-c", cfg, "pause")
	if r.code != 1 || r.stderr != "pgnodectl: pause: Cluster is already paused\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestFlushAndVersion(t *testing.T) {
	cfg := writeConfig(t, authConfig)
	v := cloneView(fixtureView())
	v.Failover = &cluster.Failover{Leader: "pg-test-1", Member: "pg-test-2", ScheduledAt: "2030-01-01T00:00:00+00:00"}
	f := newFakeMembers(t, v, map[string]func(string) reply{
		"DELETE /switchover": fixed(200, "scheduled switchover deleted"),
		"GET /patroni":       fixed(200, `{"state":"running","server_version":150007,"patroni":{"version":"3.0.2","scope":"pg-test"}}`),
	})
	r := runCtl(t, f.store(), "", nil, "-c", cfg, "flush", "pg-test", "switchover")
	if r.code != 0 || r.stdout != "Success: scheduled switchover deleted\n" {
		t.Errorf("exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	if calls := f.recorded(); len(calls) != 1 || calls[0].member != "pg-test-1" || calls[0].method != "DELETE" {
		t.Errorf("calls %+v", calls)
	}
	r = runCtl(t, f.store(), "", nil, "-c", cfg, "version", "pg-test", "pg-test-2")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "\n\npg-test-2: Patroni 3.0.2 PostgreSQL 15.7\n") {
		t.Errorf("exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
}
