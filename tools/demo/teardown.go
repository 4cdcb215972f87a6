package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// teardownBudget bounds the whole teardown.
const teardownBudget = 30 * time.Second

// teardown removes everything the run made and then verifies that nothing is left:
// processes (pgnoded, fence guards, postgres, etcd), namespaces and links, the work dir.
func (r *run) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), teardownBudget)
	defer cancel()
	t0 := time.Now()
	s := r.s
	var errs []error
	// 1. pgnoded first, so nothing reacts to postgres going away.
	for _, n := range s.Nodes {
		if pid := pgnodedPID(n); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// 2. An immediate shutdown of each postmaster stops its backends and frees its shared memory.
	var pms []int
	for _, n := range s.Nodes {
		if pid := postmasterPID(n.DataDir()); pid != 0 {
			r.postmasters[pid] = true
			pms = append(pms, pid)
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
	}
	waitGone(ctx, pms, 5*time.Second)
	// 3. Whatever is left: fence guards, etcd, backends of a killed postmaster, shells in the namespaces.
	kctx, kcancel := context.WithTimeout(ctx, 10*time.Second)
	errs = append(errs, killAll(kctx, s.WorkDir, s.Namespace))
	kcancel()
	r.wg.Wait() // our children are reaped
	if n := removeSharedMemory(r.postmasters); n > 0 {
		errs = append(errs, fmt.Errorf("left behind: %d shared memory segments of our postmasters", n))
	}
	errs = append(errs, deleteNamespaces(ctx, existing(ctx, s.Namespace)))
	if err := os.RemoveAll(s.WorkDir); err != nil {
		errs = append(errs, fmt.Errorf("remove work dir: %w", err))
	}
	if left := leftovers(ctx, s); len(left) > 0 {
		errs = append(errs, fmt.Errorf("left behind: %s", strings.Join(left, "; ")))
	}
	err := errors.Join(errs...)
	if err == nil {
		fmt.Fprintf(r.out, "removed everything the demo made (processes, %d namespaces, %s) in %s\n",
			len(s.Namespace), s.WorkDir, time.Since(t0).Round(100*time.Millisecond))
	}
	return err
}

// leftovers lists what of a run still exists.
func leftovers(ctx context.Context, s *State) []string {
	var left []string
	if ns := listNamespaces(ctx, nsPrefix); len(ns) > 0 && s.Mode == ModeNetns {
		left = append(left, "namespaces "+strings.Join(ns, ","))
	}
	for _, p := range ownedProcesses(ctx, s.WorkDir, nil) {
		left = append(left, fmt.Sprintf("process %d (%s)", p.PID, p.Cmdline))
	}
	if _, err := os.Stat(s.WorkDir); err == nil {
		left = append(left, "work dir "+s.WorkDir)
	}
	return left
}

// existing returns those of names that are namespaces now.
func existing(ctx context.Context, names []string) []string {
	have := map[string]bool{}
	for _, n := range listNamespaces(ctx, nsPrefix) {
		have[n] = true
	}
	var out []string
	for _, n := range names {
		if have[n] {
			out = append(out, n)
		}
	}
	return out
}

// waitGone polls until none of pids runs, at most d.
func waitGone(ctx context.Context, pids []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		left := false
		for _, p := range pids {
			left = left || alive(p)
		}
		if !left {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// removeSharedMemory drops the System V segments created by our postmasters that
// nobody attaches any more (a postmaster killed with SIGKILL cannot remove its own);
// it returns how many of them it could not remove.
func removeSharedMemory(postmasters map[int]bool) (left int) {
	f, err := os.Open("/proc/sysvipc/shm")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header: key shmid perms size cpid lpid nattch ...
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 7 {
			continue
		}
		id, _ := strconv.Atoi(fl[1])
		cpid, _ := strconv.Atoi(fl[4])
		nattch, _ := strconv.Atoi(fl[6])
		if !postmasters[cpid] {
			continue
		}
		if nattch != 0 {
			left++
		} else if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EIDRM) {
			left++
		}
	}
	return left
}

// cleanStale removes what earlier, killed runs left: their processes, the pgdemo-*
// namespaces and their work dirs. It refuses while another demo is running.
func cleanStale(ctx context.Context, out io.Writer, explicit bool) error {
	dirs := workDirs()
	for dir, pid := range dirs {
		if isDemoProcess(pid) {
			return fmt.Errorf("another demo is running (pid %d, work dir %s): stop it with Ctrl-C (or kill %d) first", pid, dir, pid)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	stale := listNamespaces(ctx, nsPrefix)
	cleaned := 0
	for dir, pid := range dirs {
		if pid == os.Getpid() {
			continue
		}
		if err := killAll(ctx, dir, nil); err != nil {
			return fmt.Errorf("clean %s: %w", dir, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("clean %s: %w", dir, err)
		}
		cleaned++
		fmt.Fprintf(out, "removed the leftovers of an earlier demo run: %s\n", filepath.Base(dir))
	}
	if len(stale) > 0 && os.Geteuid() != 0 {
		fmt.Fprintf(out, "stale namespaces of an earlier root run exist (%s): remove them with `sudo bin/demo cleanup`\n", strings.Join(stale, " "))
	} else if len(stale) > 0 {
		if err := killAll(ctx, "", stale); err != nil {
			return fmt.Errorf("clean namespaces: %w", err)
		}
		if err := deleteNamespaces(ctx, stale); err != nil {
			return err
		}
		fmt.Fprintf(out, "removed stale namespaces: %s\n", strings.Join(stale, " "))
	}
	if explicit && cleaned == 0 && len(stale) == 0 {
		fmt.Fprintln(out, "nothing to clean")
	}
	return nil
}
