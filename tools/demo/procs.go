package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procInfo is what /proc says about one process.
type procInfo struct {
	PID     int
	Cmdline string // arguments joined by spaces
	Cwd     string
}

// readProc returns pid's command line and cwd; ok is false for gone processes and zombies.
func readProc(pid int) (procInfo, bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return procInfo{}, false
	}
	// The state follows the last ')' (the command name may contain spaces and parentheses).
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return procInfo{}, false
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
	cwd, _ := os.Readlink(filepath.Join(dir, "cwd"))
	return procInfo{PID: pid, Cmdline: strings.TrimSpace(string(bytes.ReplaceAll(raw, []byte{0}, []byte{' '}))), Cwd: cwd}, true
}

// alive reports whether pid runs (zombies do not count).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	_, ok := readProc(pid)
	return ok
}

// isDemoProcess reports whether pid is a running demo program other than this one.
func isDemoProcess(pid int) bool {
	if pid == os.Getpid() {
		return false
	}
	p, ok := readProc(pid)
	if !ok || p.Cmdline == "" {
		return false
	}
	return filepath.Base(strings.Fields(p.Cmdline)[0]) == "demo"
}

// allPIDs lists every process id in /proc.
func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// ownedProcesses lists the live processes a run made: those mentioning workDir on their
// command line or running inside it (postgres backends), and those inside its namespaces.
// This process and its ancestors are never listed.
func ownedProcesses(ctx context.Context, workDir string, namespaces []string) []procInfo {
	skip := ancestors()
	seen := map[int]bool{}
	var out []procInfo
	add := func(p procInfo) {
		if !skip[p.PID] && !seen[p.PID] {
			seen[p.PID] = true
			out = append(out, p)
		}
	}
	for _, pid := range allPIDs() {
		p, ok := readProc(pid)
		if !ok {
			continue
		}
		if workDir != "" && (strings.Contains(p.Cmdline, workDir) || within(p.Cwd, workDir)) {
			add(p)
		}
	}
	for _, ns := range namespaces {
		for _, pid := range netnsPIDs(ctx, ns) {
			if p, ok := readProc(pid); ok {
				add(p)
			}
		}
	}
	return out
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

// ancestors is this process and its parents up to init.
func ancestors() map[int]bool {
	out := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !out[pid]; {
		out[pid] = true
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			break
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			break
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			break
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return out
}

// killAll SIGKILLs the owned processes until none is left or ctx ends.
func killAll(ctx context.Context, workDir string, namespaces []string) error {
	for {
		procs := ownedProcesses(ctx, workDir, namespaces)
		if len(procs) == 0 {
			return nil
		}
		for _, p := range procs {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			var left []string
			for _, p := range ownedProcesses(context.Background(), workDir, namespaces) {
				left = append(left, fmt.Sprintf("%d (%s)", p.PID, p.Cmdline))
			}
			if len(left) == 0 {
				return nil
			}
			return fmt.Errorf("processes still running: %s", strings.Join(left, "; "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// postmasterPID reads the first line of dataDir/postmaster.pid; 0 when absent or not running.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || !alive(pid) {
		return 0
	}
	return pid
}

// pgnodedPID is the pid of the node's pgnoded when it runs; 0 otherwise.
func pgnodedPID(n NodeInfo) int {
	b, err := os.ReadFile(n.PIDFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	// The command line names the config; it is empty for an instant while `ip netns exec` execs pgnoded.
	if p, ok := readProc(pid); ok && (p.Cmdline == "" || strings.Contains(p.Cmdline, n.Config())) {
		return pid
	}
	return 0
}

// startDetached starts a program in its own process group (a Ctrl-C in the terminal
// reaches only the demo, which then stops everything in order), with output appended
// to logPath, optionally inside a network namespace. wait reaps it; nil for callers
// that leave it to init.
func startDetached(ns, logPath string, argv ...string) (cmd *exec.Cmd, err error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd = exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
	}
	return cmd, nil
}

// startPgnoded runs the node's pgnoded and records its pid.
func startPgnoded(s *State, n NodeInfo) (*exec.Cmd, error) {
	cmd, err := startDetached(n.NS, n.Log(), s.Bins.Pgnoded, "--config", n.Config())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := os.WriteFile(n.PIDFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%s: write pid file: %w", n.Name, err)
	}
	return cmd, nil
}

// errNoPrimary is returned when no node can be named primary.
var errNoPrimary = errors.New("no primary right now")
