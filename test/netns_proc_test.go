//go:build integration

package test

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// NsProc is a long-running program started inside a namespace of a Topology,
// in its own process group, with stdout and stderr appended to a log file.
// The Topology kills it (and everything else in the namespace) at cleanup.
type NsProc struct {
	// Name labels the process in logs.
	Name string
	// NS is the namespace it runs in.
	NS *NetNS
	// LogPath receives its output.
	LogPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProc runs argv inside ns (`ip netns exec`, which execs argv: the pid is argv's).
func (tp *Topology) StartProc(ns *NetNS, name, logPath string, argv ...string) *NsProc {
	tp.t.Helper()
	p := &NsProc{Name: name, NS: ns, LogPath: logPath}
	tp.mu.Lock()
	tp.procs = append(tp.procs, p)
	tp.mu.Unlock()
	p.start(tp, argv)
	return p
}

// Restart starts the same command again after it exited.
func (p *NsProc) Restart(tp *Topology) {
	tp.t.Helper()
	p.mu.Lock()
	argv := p.cmd.Args[4:] // ip netns exec NS argv...
	p.mu.Unlock()
	if !p.WaitExit(0) {
		tp.t.Fatalf("restart %s: still running", p.Name)
	}
	p.start(tp, argv)
}

func (p *NsProc) start(tp *Topology, argv []string) {
	tp.t.Helper()
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tp.t.Fatalf("start %s: %v", p.Name, err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.NS.Name}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		tp.t.Fatalf("start %s in %s: %v", p.Name, p.NS.Name, err)
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

// Pid is the process id (of the latest start).
func (p *NsProc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the process if it still runs.
func (p *NsProc) Signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *NsProc) Kill() {
	p.Signal(syscall.SIGKILL)
	p.WaitExit(10 * time.Second)
}

// Pause freezes the process (SIGSTOP).
func (p *NsProc) Pause() { p.Signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *NsProc) Resume() { p.Signal(syscall.SIGCONT) }

// Running reports whether the process has not exited.
func (p *NsProc) Running() bool { return !p.WaitExit(0) }

// WaitExit waits up to timeout for the process to exit; true if it has.
func (p *NsProc) WaitExit(timeout time.Duration) bool {
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
