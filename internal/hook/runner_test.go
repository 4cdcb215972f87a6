package hook

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// script writes an executable shell script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func newRunner(t *testing.T, cfg Config) *Runner {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.Close(ctx)
	})
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lines(path string) []string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestArgvSpellsRolePerCompat(t *testing.T) {
	cbs := map[cluster.Callback]string{cluster.OnRoleChange: `/usr/bin/cb --flag "a b"`, cluster.OnStart: ""}
	for _, tc := range []struct {
		compat cluster.Compat
		role   cluster.Role
		want   []string
	}{
		{cluster.Compat302, cluster.RolePrimary, []string{"/usr/bin/cb", "--flag", "a b", "on_role_change", "master", "pg-test"}},
		{cluster.Compat302, cluster.RolePromoted, []string{"/usr/bin/cb", "--flag", "a b", "on_role_change", "master", "pg-test"}},
		{cluster.Compat4, cluster.RolePrimary, []string{"/usr/bin/cb", "--flag", "a b", "on_role_change", "primary", "pg-test"}},
		{cluster.Compat4, cluster.RolePromoted, []string{"/usr/bin/cb", "--flag", "a b", "on_role_change", "primary", "pg-test"}},
		{cluster.Compat302, cluster.RoleReplica, []string{"/usr/bin/cb", "--flag", "a b", "on_role_change", "replica", "pg-test"}},
		{cluster.Compat4, cluster.RoleDemoted, []string{"/usr/bin/cb", "--flag", "a b", "on_role_change", "demoted", "pg-test"}},
	} {
		r := newRunner(t, Config{Scope: "pg-test", Compat: tc.compat, Commands: Commands{Callbacks: cbs}})
		if got := r.Argv(cluster.OnRoleChange, tc.role); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %s: argv %q, want %q", tc.compat, tc.role, got, tc.want)
		}
		if got := r.Argv(cluster.OnStart, tc.role); got != nil {
			t.Errorf("an empty command must not run, got %q", got)
		}
	}
	if _, err := New(Config{Commands: Commands{Callbacks: map[cluster.Callback]string{cluster.OnStop: `"unclosed`}}}); err == nil {
		t.Error("a command shlex cannot split must be refused")
	}
}

// A callback that arrives while another runs kills it (and its children); the
// new one runs and is counted; on_reload neither kills nor is killed by them.
func TestCallbackKillsTheRunningOne(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	childPid := filepath.Join(dir, "child.pid")
	// on_start sleeps in a child (to check the child dies too); the others record and exit.
	slow := script(t, dir, "slow.sh", `echo "start $1 $2 $3" >> `+rec+`
sleep 60 & echo $! > `+childPid+`
wait`)
	fast := script(t, dir, "fast.sh", `echo "done $1 $2 $3" >> `+rec)
	reload := script(t, dir, "reload.sh", `echo "reload-start" >> `+rec+`; sleep 2; echo "reload-end" >> `+rec)
	r := newRunner(t, Config{Scope: "s", Compat: cluster.Compat302, Commands: Commands{Callbacks: map[cluster.Callback]string{
		cluster.OnStart: slow, cluster.OnRoleChange: fast, cluster.OnReload: reload,
	}}})
	r.Callback(cluster.OnReload, cluster.RoleReplica)
	r.Callback(cluster.OnStart, cluster.RoleReplica)
	waitFor(t, "on_start's child", func() bool { b, _ := os.ReadFile(childPid); return len(b) > 0 })
	b, _ := os.ReadFile(childPid)
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	r.Callback(cluster.OnRoleChange, cluster.RolePrimary)
	waitFor(t, "on_role_change to run", func() bool {
		for _, l := range lines(rec) {
			if l == "done on_role_change master s" {
				return true
			}
		}
		return false
	})
	waitFor(t, "on_start counted as killed", func() bool { return r.Runs()[cluster.HookRun{Callback: "on_start", Exit: "killed"}] == 1 })
	waitFor(t, "the killed callback's child to be gone", func() bool {
		_, err := os.Stat(filepath.Join("/proc", strings.TrimSpace(string(b))))
		return err != nil || isZombie(child)
	})
	waitFor(t, "on_reload to finish on its own", func() bool { return r.Runs()[cluster.HookRun{Callback: "on_reload", Exit: "0"}] == 1 })
	if got := r.Runs()[cluster.HookRun{Callback: "on_role_change", Exit: "0"}]; got != 1 {
		t.Errorf("on_role_change runs = %d, want 1 (%v)", got, r.Runs())
	}
	// A second on_reload while one runs kills the first one.
	r.Callback(cluster.OnReload, cluster.RoleReplica)
	waitFor(t, "on_reload to start", func() bool { return strings.Count(strings.Join(lines(rec), "\n"), "reload-start") == 2 })
	r.Callback(cluster.OnReload, cluster.RoleReplica)
	waitFor(t, "the first on_reload killed", func() bool { return r.Runs()[cluster.HookRun{Callback: "on_reload", Exit: "killed"}] == 1 })
	waitFor(t, "the second on_reload done", func() bool { return r.Runs()[cluster.HookRun{Callback: "on_reload", Exit: "0"}] == 2 })
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat"))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestRunHooks(t *testing.T) {
	dir := t.TempDir()
	r := newRunner(t, Config{Scope: "s", Commands: Commands{PrePromote: script(t, dir, "pp.sh", "exit 3"),
		BeforeStop: script(t, dir, "bs.sh", "trap 'exit 0' TERM; sleep 30 & wait")}, KillGrace: 200 * time.Millisecond})
	if !r.Configured(cluster.PrePromote) || !r.Configured(cluster.BeforeStop) {
		t.Fatal("both hooks are configured")
	}
	ran, code, err := r.Run(context.Background(), cluster.PrePromote)
	if !ran || code != 3 || err != nil {
		t.Errorf("pre_promote: ran %v exit %d err %v, want ran, 3, nil", ran, code, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	ran, code, _ = r.Run(ctx, cluster.BeforeStop)
	if !ran || time.Since(start) > 5*time.Second {
		t.Errorf("before_stop bounded by ctx: ran %v exit %d after %v", ran, code, time.Since(start))
	}
	runs := r.Runs()
	if runs[cluster.HookRun{Callback: "pre_promote", Exit: "3"}] != 1 {
		t.Errorf("pre_promote not counted with exit 3: %v", runs)
	}
	none := newRunner(t, Config{})
	if ran, _, err := none.Run(context.Background(), cluster.PrePromote); ran || err != nil || none.Configured(cluster.PrePromote) {
		t.Errorf("no command: ran %v err %v", ran, err)
	}
	bad := newRunner(t, Config{Commands: Commands{PrePromote: filepath.Join(dir, "missing")}})
	if ran, code, err := bad.Run(context.Background(), cluster.PrePromote); !ran || code != -1 || err == nil {
		t.Errorf("missing script: ran %v exit %d err %v, want ran, -1, error", ran, code, err)
	}
	if bad.Runs()[cluster.HookRun{Callback: "pre_promote", Exit: "error"}] != 1 {
		t.Errorf("missing script not counted as error: %v", bad.Runs())
	}
}
