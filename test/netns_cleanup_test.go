//go:build integration

package test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// OnTeardown registers fn to run at teardown before processes are killed (log dumps).
func (tp *Topology) OnTeardown(fn func()) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.onTeardown = append(tp.onTeardown, fn)
}

// teardown kills everything inside the namespaces and deletes them.
func (tp *Topology) teardown() {
	tp.mu.Lock()
	if tp.torndown {
		tp.mu.Unlock()
		return
	}
	tp.torndown = true
	hooks, procs, all := tp.onTeardown, tp.procs, tp.all
	tp.mu.Unlock()
	for i := len(hooks) - 1; i >= 0; i-- {
		hooks[i]()
	}
	// The processes we started first (pgnoded must not spawn more), then
	// anything else still inside (postgres, fence guards, pg_ctl).
	for _, p := range procs {
		p.Signal(syscall.SIGKILL)
	}
	for _, ns := range all {
		if err := killAllIn(ns.Name, 15*time.Second); err != nil {
			tp.t.Errorf("teardown: %v", err)
		}
	}
	for _, p := range procs {
		if !p.WaitExit(10 * time.Second) {
			tp.t.Errorf("teardown: %s did not exit after SIGKILL", p.Name)
		}
	}
	for _, ns := range all {
		if ns.nl != nil {
			ns.nl.Close()
		}
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			tp.t.Errorf("teardown: ip netns del %s: %v: %s", ns.Name, err, out)
		}
	}
}

// sweepStale deletes empty namespaces left by a run of this harness whose
// process is gone (killed, or timed out before its cleanups ran). Namespaces
// that still hold processes are reported and left alone.
func sweepStale(t testing.TB) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "pgt") {
			continue
		}
		name := f[0]
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(name, "pgt"), "x")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its run is still going
		}
		if pids, err := nsPids(name); err != nil || len(pids) > 0 {
			t.Logf("stale namespace %s of a dead run still holds processes %v; left alone", name, pids)
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("delete stale namespace %s: %v: %s", name, err, out)
		} else {
			t.Logf("deleted stale namespace %s (its run, pid %d, is gone)", name, pid)
		}
	}
}

// killAllIn SIGKILLs every process in namespace name until none is left.
func killAllIn(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := nsPids(name)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still inside %s", pids, name)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nsPids lists the processes inside a namespace (none if it is already gone).
func nsPids(name string) ([]int, error) {
	if _, err := os.Stat("/run/netns/" + name); os.IsNotExist(err) {
		return nil, nil
	}
	out, err := exec.Command("ip", "netns", "pids", name).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ip netns pids %s: %w: %s", name, err, out)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// verifyGone fails the test if a namespace or a host link with our tag survived.
func (tp *Topology) verifyGone() {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		tp.t.Errorf("cleanup check: ip netns list: %v: %s", err, out)
	}
	var left []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], tp.Prefix()) {
			left = append(left, "namespace "+f[0])
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		tp.t.Errorf("cleanup check: links: %v", err)
	}
	for _, l := range links {
		if strings.Contains(l.Attrs().Name, tp.Tag) {
			left = append(left, "link "+l.Attrs().Name)
		}
	}
	if addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4); err == nil {
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && tp.Subnet.Contains(ip.Unmap()) {
				left = append(left, "host address "+ip.String())
			}
		}
	}
	for _, pid := range pidsMentioning(tp.Dir + "/") {
		left = append(left, fmt.Sprintf("process %d", pid))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(left) > 0 {
		tp.t.Errorf("cleanup check: left behind: %s", strings.Join(left, ", "))
		return
	}
	tp.t.Logf("cleanup check: no namespace (%s*), link (*%s*), address in %s nor process using %s left", tp.Prefix(), tp.Tag, tp.Subnet, tp.Dir)
}

// pidsMentioning lists processes whose command line contains s.
func pidsMentioning(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}
