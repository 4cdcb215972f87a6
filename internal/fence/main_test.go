package fence

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// The test binary doubles as pgnoded: with roleEnv set it runs a guard
// (`<test binary> fence-guard ...`, as Spawn invokes it) or a patting client
// instead of the tests, so the tests drive real, separate processes.
const (
	roleEnv   = "PGNODED_FENCE_TEST_ROLE"
	socketEnv = "PGNODED_FENCE_TEST_SOCKET"
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "guard":
		os.Exit(runGuardRole())
	case "client":
		os.Exit(runClientRole())
	}
	// Become the subreaper of orphaned descendants, so the detached guards
	// are reparented to this process and reaped by the tests (PID 1 of a
	// container may not reap them).
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
	}
	goleak.VerifyTestMain(m)
}

// reap kills pid and reaps it if it is this process's (adopted) child, or else waits until it is gone.
func reap(t testing.TB, pid int) {
	t.Helper()
	_ = syscall.Kill(pid, syscall.SIGKILL)
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		waitFor(t, 5*time.Second, fmt.Sprintf("process %d to exit", pid), func() bool { return gone(pid) })
	}
}

func runGuardRole() int {
	if len(os.Args) < 2 || os.Args[1] != GuardSubcommand {
		fmt.Fprintf(os.Stderr, "guard role wants %q as first argument, got %q\n", GuardSubcommand, os.Args[1:])
		return 2
	}
	cfg, err := ParseGuardArgs(os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := RunGuard(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runClientRole arms the guard every 100 ms with a deadline 300 ms ahead
// until its stdin closes; it prints "armed" after the first arm.
func runClientRole() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // ends with the process
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	c, err := Dial(ctx, os.Getenv(socketEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	first := true
	for {
		if err := c.Arm(time.Now().Add(300 * time.Millisecond)); err != nil {
			fmt.Fprintln(os.Stderr, err)
		} else if first {
			fmt.Println("armed")
			first = false
		}
		select {
		case <-ctx.Done():
			return 0
		case <-tick.C:
		}
	}
}

// testGuard is a guard process started by Spawn for one test.
type testGuard struct {
	socket  string
	dataDir string
	log     string
	pid     int
}

// spawnGuard starts a real guard process for a fresh data directory and kills it at cleanup.
func spawnGuard(t testing.TB, quitWait time.Duration) *testGuard {
	t.Helper()
	return spawnGuardFor(t, t.TempDir(), quitWait)
}

// spawnGuardFor starts a real guard process for dataDir and kills it at cleanup.
func spawnGuardFor(t testing.TB, dataDir string, quitWait time.Duration) *testGuard {
	t.Helper()
	// Unix socket paths are limited to 107 bytes: keep it short.
	sockDir, err := os.MkdirTemp("", "fence")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	g := &testGuard{
		socket:  filepath.Join(sockDir, "g.sock"),
		dataDir: dataDir,
		log:     filepath.Join(sockDir, "guard.log"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = Spawn(ctx, SpawnConfig{
		Socket: g.socket, DataDir: dataDir, LogFile: g.log, QuitWait: quitWait,
		Env: guardEnv(),
	})
	if err != nil {
		t.Fatalf("spawn guard: %v\n%s", err, readFile(g.log))
	}
	g.pid = g.status(t).PID
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("guard log:\n%s", readFile(g.log))
		}
		reap(t, g.pid)
	})
	return g
}

// guardEnv is the environment of a guard process started from the test binary;
// GORACE drops the race runtime's 1 s sleep at exit (it slows every Spawn).
func guardEnv() []string {
	return append(os.Environ(), roleEnv+"=guard", "GORACE=atexit_sleep_ms=0")
}

func (g *testGuard) dial(t testing.TB) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := Dial(ctx, g.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (g *testGuard) status(t testing.TB) Status {
	t.Helper()
	st, err := probe(context.Background(), g.socket)
	if err != nil {
		t.Fatalf("guard status: %v", err)
	}
	return st
}

// dummy is a process standing in for the postmaster: it runs in the data
// directory (as a postmaster does) and its PID is in postmaster.pid.
type dummy struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid once done is closed
}

// startDummy runs `sleep 1000` in dir and writes its PID into dataDir/postmaster.pid.
func startDummy(t *testing.T, dataDir, dir string) *dummy {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return startCmd(t, dataDir, cmd)
}

// startCmd starts a stand-in command and records its PID in dataDir/postmaster.pid.
func startCmd(t *testing.T, dataDir string, cmd *exec.Cmd) *dummy {
	t.Helper()
	d := &dummy{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // owned by the cleanup below, which waits for it
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.done
	})
	body := strings.Join([]string{strconv.Itoa(cmd.Process.Pid), dataDir, "1700000000", "5432", "/tmp",
		"localhost", "  5432001         0", "ready   "}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dataDir, "postmaster.pid"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *dummy) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// signal returns the signal that ended the dummy (it must have ended).
func (d *dummy) signal() syscall.Signal {
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
	}
	return 0
}

// waitFor polls cond every 5 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stayAlive fails if the dummy exits within d.
func stayAlive(t *testing.T, dm *dummy, d time.Duration) {
	t.Helper()
	select {
	case <-dm.done:
		t.Fatalf("postmaster stand-in was stopped (%v) though it should not have been", dm.err)
	case <-time.After(d):
	}
}

// startClientProcess runs the patting client role against socket.
func startClientProcess(t *testing.T, socket string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"=client", socketEnv+"="+socket)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "armed" {
		t.Fatalf("client process: got %q, %v", line, err)
	}
	return cmd, stdin
}

func readFile(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(raw)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
