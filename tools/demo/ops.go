package main

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"
)

// killPrimary is `demo kill-primary`: SIGKILL the primary's pgnoded and postmaster,
// the crash a failover exists for. The running demo's view shows what follows.
func killPrimary(ctx context.Context, o options, out io.Writer) error {
	s, err := findRunning(o.workDir)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	snap := collect(cctx, newNetClient(s))
	name, err := crashPrimary(s, snap)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "killed %s's pgnoded and postmaster with SIGKILL; a replica takes over once the leader key expires (ttl 10 s)\n", name)
	fmt.Fprintf(out, "bring %s back afterwards with: %s start %s\n", name, rel(s.Bins.Demo), name)
	return nil
}

// crashPrimary kills the leader's pgnoded and then its postmaster; it returns the leader's name.
func crashPrimary(s *State, snap Snapshot) (string, error) {
	name := snap.Leader
	if name == "" {
		return "", fmt.Errorf("%w: the leader key is empty", errNoPrimary)
	}
	n, ok := s.Node(name)
	if !ok {
		return "", fmt.Errorf("the leader key names %q, not a demo node", name)
	}
	pid, pm := pgnodedPID(n), postmasterPID(n.DataDir())
	if pid == 0 {
		return "", fmt.Errorf("%s holds the leader key but its pgnoded is not running (already killed?)", name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return "", fmt.Errorf("kill pgnoded %d: %w", pid, err)
	}
	if pm != 0 {
		if err := syscall.Kill(pm, syscall.SIGKILL); err != nil {
			return "", fmt.Errorf("kill postmaster %d: %w", pm, err)
		}
	}
	return name, nil
}

// startNode is `demo start NODE`: run a stopped node's pgnoded again. It is left
// to init once this command exits; the demo's teardown still finds and stops it.
func startNode(_ context.Context, o options, name string, out io.Writer) error {
	s, err := findRunning(o.workDir)
	if err != nil {
		return err
	}
	n, ok := s.Node(name)
	if !ok {
		return fmt.Errorf("no node %q (the nodes are n1, n2, n3)", name)
	}
	if pid := pgnodedPID(n); pid != 0 {
		return fmt.Errorf("%s's pgnoded already runs (pid %d)", name, pid)
	}
	cmd, err := startPgnoded(s, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "started %s's pgnoded (pid %d); it rejoins the cluster as a replica (log: %s)\n", name, cmd.Process.Pid, n.Log())
	return cmd.Process.Release()
}
