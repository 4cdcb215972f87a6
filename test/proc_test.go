//go:build integration

package test

import (
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a long-running program of a test (pgnoded, Patroni, etcd) in its own
// process group, with stdout and stderr appended to a log file. It runs on the
// host, or inside a namespace of a Topology (`ip netns exec`, which execs argv:
// the pid is argv's); the Topology kills those (and everything else in the
// namespace) at teardown, the harness that started a host process kills it.
type Proc struct {
	// Name labels the process in logs.
	Name string
	// NS is the namespace it runs in (nil: on the host).
	NS *NetNS
	// LogPath receives its output.
	LogPath string

	spec procSpec

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// procSpec is how a Proc is (re)started.
type procSpec struct {
	argv []string
	dir  string              // working directory ("": the test's)
	env  []string            // nil: the test's environment
	cred *syscall.Credential // nil: the test's user
	// killGroup makes Signal(SIGKILL) kill the whole process group (Patroni's
	// helpers), not only the process.
	killGroup bool
}

// newProc returns a Proc that Start runs.
func newProc(name string, ns *NetNS, logPath string, spec procSpec) *Proc {
	return &Proc{Name: name, NS: ns, LogPath: logPath, spec: spec}
}

// StartProc runs argv inside ns (`ip netns exec`, which execs argv: the pid is argv's).
func (tp *Topology) StartProc(ns *NetNS, name, logPath string, argv ...string) *Proc {
	tp.t.Helper()
	p := newProc(name, ns, logPath, procSpec{argv: argv})
	tp.adopt(p)
	p.start(tp.t)
	return p
}

// startHostProc runs argv on the host; at test end it is killed (an error if
// it outlives SIGKILL by 10 s) and, if the test failed, the last tailBytes of
// its log are shown.
func startHostProc(t testing.TB, name, logPath string, tailBytes int, argv ...string) *Proc {
	t.Helper()
	p := newProc(name, nil, logPath, procSpec{argv: argv})
	p.start(t)
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		if !p.WaitExit(10 * time.Second) {
			t.Errorf("%s pid %d did not exit after SIGKILL", name, p.Pid())
		}
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("---- %s output (last %d bytes) ----\n%s", name, tailBytes, tail(b, tailBytes))
			}
		}
	})
	return p
}

// adopt makes teardown kill p and wait for it.
func (tp *Topology) adopt(p *Proc) {
	tp.mu.Lock()
	tp.procs = append(tp.procs, p)
	tp.mu.Unlock()
}

// Restart starts the same command again after it exited.
func (p *Proc) Restart(t testing.TB) {
	t.Helper()
	if !p.WaitExit(0) {
		t.Fatalf("restart %s: still running", p.Name)
	}
	p.start(t)
}

func (p *Proc) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("start %s: %v", p.Name, err)
	}
	argv, cred := p.spec.argv, p.spec.cred
	if p.NS != nil && cred != nil {
		// Entering a namespace needs root: ip netns exec runs as root and
		// setpriv drops to the user just before argv.
		argv = append([]string{"setpriv", "--reuid", strconv.Itoa(int(cred.Uid)), "--regid", strconv.Itoa(int(cred.Gid)),
			"--clear-groups", "--"}, argv...)
		cred = nil
	}
	if p.NS != nil {
		argv = append([]string{"ip", "netns", "exec", p.NS.Name}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = p.spec.dir, p.spec.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		where := "on the host"
		if p.NS != nil {
			where = "in " + p.NS.Name
		}
		t.Fatalf("start %s %s: %v", p.Name, where, err)
	}
	done := make(chan struct{})
	go func() { // owned by the process: ends when it exits (teardown kills it)
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// Pid is the process id (of the latest start; 0 before the first).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the process if it still runs.
func (p *Proc) Signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
	default:
		if sig == syscall.SIGKILL && p.spec.killGroup {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
		_ = p.cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	p.WaitExit(10 * time.Second)
}

// Pause freezes the process (SIGSTOP).
func (p *Proc) Pause() { p.Signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Proc) Resume() { p.Signal(syscall.SIGCONT) }

// Running reports whether the process has been started and has not exited.
func (p *Proc) Running() bool { return !p.WaitExit(0) }

// ExitCode is the exit status of the latest start once it has exited (-1 when unknown).
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// WaitExit waits up to timeout for the process to exit; true if it has (or never started).
func (p *Proc) WaitExit(timeout time.Duration) bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	if timeout <= 0 {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}
