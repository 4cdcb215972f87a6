package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func TestInitdbStartWriteObserveStop(t *testing.T) {
	n := newTestNode(t, testConfig(t, "pg-life"))
	ctx := opCtx(t)
	if empty, err := n.p.DataDirEmpty(); err != nil || !empty {
		t.Fatalf("DataDirEmpty before initdb = %v, %v", empty, err)
	}
	if o := n.p.Observe(ctx); o.Running || o.State != cluster.StateStopped {
		t.Fatalf("before start: %+v", o)
	}
	n.initAndStartPrimary(ctx)
	if err := n.p.Initdb(ctx); err == nil {
		t.Error("second initdb on a running cluster succeeded")
	}
	if err := n.p.Start(ctx, cluster.StartOptions{}); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Start = %v, want ErrAlreadyRunning", err)
	}
	n.must(n.p.execSQL(ctx, "CREATE TABLE t (id int primary key, v text); COMMENT ON TABLE t IS 'two statements, simple protocol'"), "create table")
	n.must(n.p.execSQL(ctx, "INSERT INTO t VALUES ($1, $2), (2, NULL)", 1, "one"), "insert")
	rows, err := n.p.querySQL(ctx, "SELECT id, v, now() > '2000-01-01' FROM t ORDER BY id")
	n.must(err, "query")
	if len(rows) != 2 || rows[0][0] != "1" || rows[0][1] != "one" || rows[0][2] != "t" || rows[1][1] != "" {
		t.Errorf("rows = %q", rows)
	}

	o := n.p.Observe(ctx)
	if !o.Running || !o.Ready || o.State != cluster.StateRunning || o.InRecovery || !o.IsRunningPrimary() {
		t.Fatalf("observation is not a running primary: %+v", o)
	}
	if o.Timeline != 1 || o.CurrentLSN == 0 || o.FlushLSN == 0 || o.WALPosition() == 0 {
		t.Errorf("timeline/LSN: %+v", o)
	}
	if o.ServerVersion < 130000 || o.SystemID == "" || o.PostmasterPID <= 0 || o.PostmasterStartTime.IsZero() {
		t.Errorf("identity fields: %+v", o)
	}
	if age := time.Since(o.PostmasterStartTime); age < 0 || age > 10*time.Minute {
		t.Errorf("postmaster start time %v is %v ago", o.PostmasterStartTime, age)
	}
	cd, err := n.p.ControlData(ctx)
	n.must(err, "controldata")
	if cd.SystemID != o.SystemID || cd.ClusterState != "in production" || cd.TimelineID != 1 || !cd.WALLogHints {
		t.Errorf("controldata %+v vs observation sysid %s", cd, o.SystemID)
	}

	// Files proc owns.
	conf, err := os.ReadFile(filepath.Join(n.cfg.DataDir, confName))
	n.must(err, "read postgresql.conf")
	for _, want := range []string{confHeader, "include 'postgresql.base.conf'", "cluster_name = 'proc-test'", "wal_log_hints = 'on'", "hba_file = "} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("postgresql.conf lacks %q", want)
		}
	}
	if !exists(filepath.Join(n.cfg.DataDir, baseConfName)) || exists(filepath.Join(n.cfg.DataDir, standbySignal)) {
		t.Error("postgresql.base.conf missing or standby.signal present on a primary")
	}
	hba, _ := os.ReadFile(filepath.Join(n.cfg.DataDir, hbaName))
	if string(hba) != string(renderLines(n.cfg.PgHBA)) {
		t.Errorf("pg_hba.conf = %q", hba)
	}

	// Reload: a reloadable change applies, a restart-only one is pending.
	opts := cluster.StartOptions{Params: map[string]any{"work_mem": "7MB", "max_connections": 120}}
	n.must(n.p.Reload(ctx, opts), "reload")
	eventually(t, 10*time.Second, "work_mem reloaded", func() (bool, string) {
		v, err := n.queryOne(ctx, "SHOW work_mem")
		return err == nil && v == "7MB", v
	})
	o = n.p.Observe(ctx)
	if !o.PendingRestart || o.PendingRestartWhy["max_connections"].NewValue != "120" {
		t.Errorf("pending restart after max_connections change: %v %v", o.PendingRestart, o.PendingRestartWhy)
	}
	// A changed local parameter from the re-read config file wins over what proc started with.
	n.must(n.p.SetLocalParameters(ctx, map[string]any{"work_mem": "9MB"}), "set local parameters")
	n.must(n.p.Reload(ctx, opts), "reload with new local parameters")
	eventually(t, 10*time.Second, "local work_mem reloaded", func() (bool, string) {
		v, err := n.queryOne(ctx, "SHOW work_mem")
		return err == nil && v == "9MB", v
	})
	n.must(n.p.Reload(ctx, cluster.StartOptions{Params: map[string]any{"max_files_per_process": 500}}), "reload 2")
	eventually(t, 10*time.Second, "pending_restart for max_files_per_process", func() (bool, string) {
		o := n.p.Observe(ctx)
		_, ok := o.PendingRestartWhy["max_files_per_process"]
		return ok && o.PendingRestart, o.Err
	})

	exited := n.p.Exited()
	n.must(n.p.Stop(ctx, cluster.StopFast), "stop")
	if err := waitFor(exited, 5*time.Second); err != nil {
		t.Error("Exited did not fire on Stop")
	}
	if o := n.p.Observe(ctx); o.Running || o.Ready || o.State != cluster.StateStopped {
		t.Errorf("after stop: %+v", o)
	}
	if cd, _ := n.p.ControlData(ctx); cd.ClusterState != "shut down" {
		t.Errorf("cluster state after fast stop = %q", cd.ClusterState)
	}
	n.must(n.p.Stop(ctx, cluster.StopFast), "stop when stopped")

	// A restart-only change applies on the next start.
	n.must(n.p.Start(ctx, cluster.StartOptions{Params: map[string]any{"max_connections": 120}}), "start again")
	if v, err := n.queryOne(ctx, "SHOW max_connections"); err != nil || v != "120" {
		t.Errorf("max_connections after restart = %q, %v", v, err)
	}
	if o := n.p.Observe(ctx); o.PendingRestart {
		t.Errorf("pending restart after restart: %v", o.PendingRestartWhy)
	}
	n.must(n.p.Restart(ctx, cluster.StopSmart, cluster.StartOptions{}), "restart smart")
	n.must(n.p.Stop(ctx, cluster.StopImmediate), "stop immediate")
	if err := n.p.RemoveDataDir(ctx); err != nil {
		t.Fatalf("RemoveDataDir: %v", err)
	}
	if empty, err := n.p.DataDirEmpty(); err != nil || !empty {
		t.Errorf("DataDirEmpty after RemoveDataDir = %v, %v", empty, err)
	}
	if _, err := os.Stat(n.cfg.DataDir); err != nil {
		t.Errorf("data dir itself removed: %v", err)
	}
}

func TestKillDetectedAndRestart(t *testing.T) {
	n := newTestNode(t, testConfig(t, "pg-kill"))
	ctx := opCtx(t)
	n.initAndStartPrimary(ctx)
	pid := n.p.Observe(ctx).PostmasterPID
	// A child of the postmaster, held stopped over the kill, is the backend
	// that has not yet noticed its postmaster's death and still holds the old
	// shared memory: a start must wait for it rather than fail.
	child := postmasterChild(t, pid)
	if err := syscall.Kill(child, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Whatever happens below, the held child must not outlive the test.
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL); _ = syscall.Kill(child, syscall.SIGCONT) })
	exited := n.p.Exited()
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(exited, 5*time.Second); err != nil {
		t.Fatal("Exited did not fire within 5s of kill -9")
	}
	t.Logf("kill -9 detected after %s", time.Since(killed))
	o := n.p.Observe(ctx)
	if o.Running || o.State != cluster.StateCrashed {
		t.Errorf("after kill: running=%v state=%s", o.Running, o.State)
	}
	if processAlive(pid) {
		t.Errorf("killed child %d not reaped", pid)
	}
	const held = 500 * time.Millisecond
	resumed := make(chan struct{})
	time.AfterFunc(held, func() { _ = syscall.Kill(child, syscall.SIGCONT); close(resumed) })
	if err := n.p.Start(ctx, cluster.StartOptions{}); err != nil {
		t.Fatalf("start after the crash, one orphaned backend held for %s: %v", held, err)
	}
	select {
	case <-resumed:
	default:
		t.Errorf("started while the orphaned backend was still held stopped (it is let go %s after the call)", held)
	}
	if o := n.p.Observe(ctx); !o.IsRunningPrimary() || o.PostmasterPID == pid {
		t.Errorf("after restart: %+v", o)
	}
}

// postmasterChild returns one child process of the postmaster pid.
func postmasterChild(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatalf("children of the postmaster %d: %v", pid, err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		t.Fatalf("the postmaster %d has no children", pid)
	}
	c, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAdoptRunningPostmaster(t *testing.T) {
	n := newTestNode(t, testConfig(t, "pg-adopt"))
	ctx := opCtx(t)
	n.initAndStartPrimary(ctx)
	before := n.p.Observe(ctx)
	if !before.Ready {
		t.Fatalf("not ready: %+v", before)
	}
	n.stopRun() // pgnoded "restarts": the postmaster must live on
	if !processAlive(before.PostmasterPID) {
		t.Fatal("postmaster died when Run returned")
	}
	n.startRun()
	after := n.p.Observe(ctx)
	if !after.Ready || after.State != cluster.StateRunning {
		t.Fatalf("adopted observation: %+v", after)
	}
	if after.PostmasterPID != before.PostmasterPID || !after.PostmasterStartTime.Equal(before.PostmasterStartTime) {
		t.Errorf("postmaster changed: pid %d -> %d, start %s -> %s", before.PostmasterPID, after.PostmasterPID,
			before.PostmasterStartTime, after.PostmasterStartTime)
	}
	if err := n.p.Start(ctx, cluster.StartOptions{}); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("Start on adopted postmaster = %v, want ErrAlreadyRunning", err)
	}
	exited := n.p.Exited()
	killed := time.Now()
	if err := syscall.Kill(after.PostmasterPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(exited, 5*time.Second); err != nil {
		t.Fatal("Exited did not fire for the adopted postmaster")
	}
	t.Logf("kill -9 of adopted postmaster detected after %s", time.Since(killed))
	if o := n.p.Observe(ctx); o.Running || o.State != cluster.StateCrashed {
		t.Errorf("after kill: %+v", o)
	}
	// The adopted process was a child of this test process: the watcher reaped it.
	eventually(t, 5*time.Second, "zombie reaped", func() (bool, string) {
		_, err := os.Stat("/proc/" + strconv.Itoa(after.PostmasterPID))
		return errors.Is(err, os.ErrNotExist), errString(err)
	})
}

func TestStartFailureReportsLog(t *testing.T) {
	cfg := testConfig(t, "pg-bad")
	n := newTestNode(t, cfg)
	ctx := opCtx(t)
	n.must(n.p.Initdb(ctx), "initdb")
	err := n.p.Start(ctx, cluster.StartOptions{Params: map[string]any{"work_mem": "not-a-size"}})
	if err == nil || !strings.Contains(err.Error(), "work_mem") {
		t.Fatalf("start with a bad parameter: %v", err)
	}
	if o := n.p.Observe(ctx); o.Running || o.State != cluster.StateStartFailed {
		t.Errorf("after failed start: %+v", o)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// BenchmarkKillDetection measures the time from kill -9 of the postmaster to
// Exited firing (the timer runs only across that window).
func BenchmarkKillDetection(b *testing.B) {
	cfg := testConfig(b, "pg-bench")
	cfg.Logger = nil
	n := newTestNode(b, cfg)
	ctx := opCtx(b)
	n.must(n.p.Initdb(ctx), "initdb")
	var total time.Duration
	b.StopTimer()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		eventually(b, 30*time.Second, "start", func() (bool, string) {
			err := n.p.Start(ctx, cluster.StartOptions{})
			return err == nil, errString(err)
		})
		pid := n.p.Observe(ctx).PostmasterPID
		exited := n.p.Exited()
		b.StartTimer()
		start := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		<-exited
		total += time.Since(start)
		b.StopTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/detect")
}
