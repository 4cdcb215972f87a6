package fence

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// inProcessGuard is RunGuard running in a goroutine of the test.
type inProcessGuard struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // valid once done is closed
}

// runInProcess runs RunGuard in a goroutine and waits until it answers.
func runInProcess(t *testing.T, cfg GuardConfig) *inProcessGuard {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &inProcessGuard{cancel: cancel, done: make(chan struct{})}
	go func() {
		g.err = RunGuard(ctx, cfg)
		close(g.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-g.done:
		case <-time.After(10 * time.Second):
			t.Error("RunGuard did not return")
		}
	})
	waitFor(t, 5*time.Second, "guard to answer", func() bool {
		_, err := probe(context.Background(), cfg.Socket)
		return err == nil
	})
	return g
}

// returned waits up to d for RunGuard to return; false if it did not.
func (g *inProcessGuard) returned(d time.Duration) bool {
	select {
	case <-g.done:
		return true
	case <-time.After(d):
		return false
	}
}

func inProcessConfig(t *testing.T) GuardConfig {
	dir, err := os.MkdirTemp("", "fence")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return GuardConfig{Socket: filepath.Join(dir, "g.sock"), DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// Stopping an armed guard waits for the disarm; a second guard on the socket is refused.
func TestRunGuardStopsOnlyWhenDisarmed(t *testing.T) {
	cfg := inProcessConfig(t)
	g := runInProcess(t, cfg)

	if err := RunGuard(context.Background(), cfg); !errors.Is(err, ErrGuardRunning) {
		t.Fatalf("second guard: %v, want ErrGuardRunning", err)
	}
	if fi, err := os.Stat(cfg.Socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}

	c, err := Dial(context.Background(), cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Arm(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	g.cancel()
	if g.returned(300 * time.Millisecond) {
		t.Fatalf("RunGuard returned while armed: %v", g.err)
	}
	if st, err := c.Status(); err != nil || !st.Draining || !st.Armed {
		t.Fatalf("status while draining: %+v %v", st, err)
	}
	if err := c.Disarm(); err != nil {
		t.Fatal(err)
	}
	if !g.returned(5 * time.Second) {
		t.Fatal("RunGuard did not return after disarm")
	}
	if g.err != nil {
		t.Fatal(g.err)
	}
	if _, err := os.Stat(cfg.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestRunGuardIdleExit(t *testing.T) {
	cfg := inProcessConfig(t)
	cfg.IdleExit = 200 * time.Millisecond
	g := runInProcess(t, cfg)
	c, err := Dial(context.Background(), cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Arm(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if g.returned(600 * time.Millisecond) { // armed: never idle
		t.Fatalf("armed guard exited: %v", g.err)
	}
	c, err = Dial(context.Background(), cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Disarm(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !g.returned(5 * time.Second) {
		t.Fatal("idle guard did not exit")
	}
	if g.err != nil {
		t.Fatal(g.err)
	}
}

func TestSpawnReusesRunningGuard(t *testing.T) {
	g := spawnGuard(t, 0)
	env := guardEnv()
	ctx := context.Background()
	if err := Spawn(ctx, SpawnConfig{Socket: g.socket, DataDir: g.dataDir, Env: env}); err != nil {
		t.Fatal(err)
	}
	if pid := g.status(t).PID; pid != g.pid {
		t.Fatalf("a second guard was started: pid %d, first %d", pid, g.pid)
	}
	err := Spawn(ctx, SpawnConfig{Socket: g.socket, DataDir: t.TempDir(), Env: env})
	if err == nil {
		t.Fatal("Spawn accepted a guard serving another data directory")
	}
	t.Log(err)
}

func TestGuardArgsRoundTrip(t *testing.T) {
	want := GuardConfig{Socket: "/run/x.sock", DataDir: "/pg/data", QuitWait: 2 * time.Second,
		IdleExit: time.Hour, LogFile: "/var/log/g.log", Detach: true}
	args := GuardArgs(want)
	if args[0] != GuardSubcommand {
		t.Fatalf("args %q", args)
	}
	got, err := ParseGuardArgs(args[1:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: got %+v, want %+v", got, want)
	}
	if _, err := ParseGuardArgs([]string{"--bogus"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		line string
		want request
		bad  bool
	}{
		{line: "arm 123", want: request{op: opArm, deadline: 123}},
		{line: "disarm", want: request{op: opDisarm}},
		{line: "status", want: request{op: opStatus}},
		{line: "arm", bad: true},
		{line: "arm x", bad: true},
		{line: "disarm 1", bad: true},
		{line: "fire", bad: true},
		{line: "", bad: true},
	} {
		got, err := parseRequest(tc.line)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("parseRequest(%q) = %+v, %v", tc.line, got, err)
		}
	}
}

func TestDefaultSocketPath(t *testing.T) {
	if got := DefaultSocketPath("/pg/data/"); got != "/pg/pgnoded-fence-data.sock" {
		t.Fatalf("DefaultSocketPath = %q", got)
	}
}

func TestReadPostmasterPID(t *testing.T) {
	dir := t.TempDir()
	if pid, err := readPostmasterPID(dir); pid != 0 || err != nil {
		t.Fatalf("no file: %d %v", pid, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readPostmasterPID(dir); err == nil {
		t.Fatal("garbage accepted")
	}
}

// BenchmarkArm measures one Arm round trip to a real guard process.
func BenchmarkArm(b *testing.B) {
	g := spawnGuard(b, 0)
	c := g.dial(b)
	b.Cleanup(func() { _ = c.Disarm() })
	for b.Loop() {
		if err := c.Arm(time.Now().Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
}

// A guard that fences also releases the VIP it was told about, so a node whose
// pgnoded died never keeps answering for the cluster address.
func TestFenceReleasesTheVIP(t *testing.T) {
	cfg := inProcessConfig(t)
	released := make(chan Release, 1)
	cfg.Release = Release{Address: "10.9.9.9/24", Interface: "eth9", LocalIP: "10.9.9.1"}
	cfg.OnFence = func(_ context.Context, r Release) error { released <- r; return nil }
	runInProcess(t, cfg)
	c, err := Dial(context.Background(), cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Arm(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-released:
		if r != cfg.Release {
			t.Errorf("OnFence got %+v, want %+v", r, cfg.Release)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the guard fenced without releasing the VIP")
	}
	// The release travels through the command line of a spawned guard.
	got, err := ParseGuardArgs(GuardArgs(cfg)[1:])
	if err != nil || got.Release != cfg.Release {
		t.Errorf("round trip of the release flags: %+v, %v", got.Release, err)
	}
}
