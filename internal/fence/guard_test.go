package fence

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestGuardKeepsPostgresWhilePatted(t *testing.T) {
	g := spawnGuard(t, 0)
	pm := startDummy(t, g.dataDir, g.dataDir)
	c := g.dial(t)
	end := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(end) {
		if err := c.Arm(time.Now().Add(300 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		stayAlive(t, pm, 50*time.Millisecond)
	}
	if err := c.Disarm(); err != nil {
		t.Fatal(err)
	}
	if st := g.status(t); st.Fences != 0 || st.Armed {
		t.Fatalf("status after disarm: %+v", st)
	}
}

func TestGuardFencesAfterLastPat(t *testing.T) {
	g := spawnGuard(t, 0)
	pm := startDummy(t, g.dataDir, g.dataDir)
	c := g.dial(t)
	var deadline time.Time
	for range 5 {
		deadline = time.Now().Add(300 * time.Millisecond)
		if err := c.Arm(deadline); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the patting interval, not synchronisation
	}
	if !pm.alive() {
		t.Fatal("stopped while still patted")
	}
	select {
	case <-pm.done:
	case <-time.After(5 * time.Second):
		t.Fatal("postmaster stand-in not stopped within 5 s of the deadline")
	}
	t.Logf("stopped %v after the deadline", time.Since(deadline))
	if sig := pm.signal(); sig != syscall.SIGQUIT {
		t.Errorf("stopped by %v, want SIGQUIT", sig)
	}
	waitFor(t, 5*time.Second, "fence to finish", func() bool { return !g.status(t).Fencing })
	if st := g.status(t); st.Fences != 1 || st.Armed {
		t.Fatalf("status after fence: %+v", st)
	}
}

func TestGuardDisarmPreventsFence(t *testing.T) {
	g := spawnGuard(t, 0)
	pm := startDummy(t, g.dataDir, g.dataDir)
	c := g.dial(t)
	if err := c.Arm(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := c.Disarm(); err != nil {
		t.Fatal(err)
	}
	stayAlive(t, pm, 700*time.Millisecond)
	if st := g.status(t); st.Fences != 0 {
		t.Fatalf("fenced after disarm: %+v", st)
	}
}

// A pgnoded crash keeps the deadline; a restarted one that re-arms in time prevents the fence.
func TestGuardSurvivesClientReconnect(t *testing.T) {
	g := spawnGuard(t, 0)
	pm := startDummy(t, g.dataDir, g.dataDir)
	first := g.dial(t)
	if err := first.Arm(time.Now().Add(400 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	first.Close()
	waitFor(t, time.Second, "guard to see the disconnect", func() bool {
		st := g.status(t) // the probe itself is one client
		return st.Clients == 1 && st.Armed
	})

	second := g.dial(t)
	end := time.Now().Add(time.Second)
	for time.Now().Before(end) {
		if err := second.Arm(time.Now().Add(400 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		stayAlive(t, pm, 100*time.Millisecond)
	}
	// The restarted client now goes away without disarming: the deadline stands.
	second.Close()
	select {
	case <-pm.done:
	case <-time.After(5 * time.Second):
		t.Fatal("not fenced after the last client left")
	}
}

// The Client reconnects by itself when its connection breaks (one retry).
func TestClientReconnects(t *testing.T) {
	g := spawnGuard(t, 0)
	c := g.dial(t)
	if err := c.Disarm(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.conn.Close() // break it under the client's feet
	c.mu.Unlock()
	if err := c.Disarm(); err != nil {
		t.Fatalf("after a broken connection: %v", err)
	}
	reap(t, g.pid)
	start := time.Now()
	if err := c.Arm(time.Now().Add(time.Second)); err == nil {
		t.Fatal("Arm succeeded with no guard")
	}
	t.Logf("Arm with no guard failed after %v", time.Since(start))
}

// A frozen pgnoded (SIGSTOP) stops patting: the guard, a separate process, fences.
func TestGuardFencesWhenClientFrozen(t *testing.T) {
	g := spawnGuard(t, 0)
	pm := startDummy(t, g.dataDir, g.dataDir)
	client, stdin := startClientProcess(t, g.socket)
	stayAlive(t, pm, 600*time.Millisecond) // well past one deadline: the pats hold
	if err := client.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	select {
	case <-pm.done:
	case <-time.After(5 * time.Second):
		t.Fatal("not fenced while the client was frozen")
	}
	t.Logf("fenced %v after the client was frozen (last deadline ≤ 300 ms after)", time.Since(stopped))
	if err := client.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- client.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("client process: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client process did not exit after its stdin closed")
	}
}

// A postmaster that ignores SIGQUIT is SIGKILLed, with its children.
func TestGuardEscalatesToSIGKILL(t *testing.T) {
	g := spawnGuard(t, 200*time.Millisecond)
	kidFile := filepath.Join(t.TempDir(), "kid.pid")
	// The stand-in ignores SIGQUIT and has a child (as a postmaster has backends).
	cmd := exec.Command("sh", "-c", `trap "" QUIT; sleep 1000 & echo $! > "$0"; wait`, kidFile)
	cmd.Dir = g.dataDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	pm := startCmd(t, g.dataDir, cmd)
	var child int
	waitFor(t, 5*time.Second, "the stand-in's child", func() bool {
		raw, err := os.ReadFile(kidFile)
		if err != nil || !strings.HasSuffix(string(raw), "\n") {
			return false
		}
		child = atoi(t, string(raw))
		return true
	})
	t.Cleanup(func() { reap(t, child) })

	c := g.dial(t)
	if err := c.Arm(time.Now().Add(-time.Millisecond)); err != nil { // already passed: fence now
		t.Fatal(err)
	}
	select {
	case <-pm.done:
	case <-time.After(5 * time.Second):
		t.Fatal("not fenced")
	}
	if sig := pm.signal(); sig != syscall.SIGKILL {
		t.Errorf("stopped by %v, want SIGKILL", sig)
	}
	waitFor(t, 5*time.Second, "the postmaster's child to die", func() bool { return gone(child) })
}

// A stale postmaster.pid whose PID now belongs to an unrelated process is left alone.
func TestGuardIgnoresStalePidFile(t *testing.T) {
	g := spawnGuard(t, 0)
	other := startDummy(t, g.dataDir, t.TempDir()) // runs elsewhere, PID in our pid file
	c := g.dial(t)
	if err := c.Arm(time.Now().Add(-time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the fence to run", func() bool {
		st := g.status(t)
		return st.Fences == 1 && !st.Fencing
	})
	if !other.alive() {
		t.Fatal("an unrelated process was killed")
	}
	if !strings.Contains(readFile(g.log), "stale") {
		t.Errorf("log does not mention the stale pid file:\n%s", readFile(g.log))
	}
}

// With no postmaster.pid the fence is a no-op and the guard carries on.
func TestGuardFenceWithoutPostgres(t *testing.T) {
	g := spawnGuard(t, 0)
	c := g.dial(t)
	if err := c.Arm(time.Now().Add(-time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the fence to run", func() bool {
		st := g.status(t)
		return st.Fences == 1 && !st.Fencing
	})
	if err := c.Arm(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := g.status(t); !st.Armed {
		t.Fatalf("not re-armed after a fence: %+v", st)
	}
}

func TestArmRejectsZeroDeadline(t *testing.T) {
	g := spawnGuard(t, 0)
	c := g.dial(t)
	if err := c.Arm(time.Time{}); err != ErrZeroDeadline {
		t.Fatalf("Arm(zero) = %v, want ErrZeroDeadline", err)
	}
}
