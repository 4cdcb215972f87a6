package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// runCheck is `demo --check`: start the demo, wait for one primary and two streaming
// replicas, kill -9 the primary's pgnoded and postmaster, wait for a new primary
// (and the VIP on it), optionally let the old primary rejoin, tear down and verify
// nothing is left. Every wait is bounded by o.timeout; teardown has its own budget.
func runCheck(parent context.Context, o options, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(parent, o.timeout)
	defer cancel()
	r, err := setup(ctx, o, out)
	if r != nil {
		defer func() {
			if err != nil {
				r.dumpLogs()
			}
			if terr := r.teardown(); terr != nil {
				err = errors.Join(err, fmt.Errorf("teardown: %w", terr))
			}
			if err == nil {
				fmt.Fprintln(out, "check passed")
			}
		}()
	}
	if err != nil {
		return err
	}
	withVIP := r.s.VIP != ""
	v := newViewer(out, false, r.s, r.started)
	watch := func(what string, cond func(Snapshot) bool) (Snapshot, error) {
		for {
			snap := r.snapshot(ctx)
			v.show(snap, recentEvents(r.s, 8))
			if cond(snap) {
				return snap, nil
			}
			select {
			case <-ctx.Done():
				return snap, fmt.Errorf("waiting for %s: %w", what, context.Cause(ctx))
			case <-time.After(250 * time.Millisecond):
			}
		}
	}

	snap, err := watch("a healthy cluster", func(s Snapshot) bool { return s.Healthy(withVIP) })
	if err != nil {
		return err
	}
	healthy := time.Since(r.started)
	old := snap.Primary()
	fmt.Fprintf(out, "RESULT healthy cluster after %s (primary %s, 2 streaming replicas%s)\n",
		healthy.Round(100*time.Millisecond), old, vipNote(withVIP, old))
	if err := r.expectWriter(ctx, old); err != nil {
		return err
	}

	fmt.Fprintf(out, "failover: kill -9 of %s's pgnoded and postmaster\n", old)
	killed := time.Now()
	if _, err := crashPrimary(r.s, snap); err != nil {
		return err
	}
	snap, err = watch("a new primary", func(s Snapshot) bool {
		p := s.Primary()
		if p == "" || p == old {
			return false
		}
		return !withVIP || s.node(p).VIP
	})
	if err != nil {
		return err
	}
	newP := snap.Primary()
	if err := r.expectWriter(ctx, newP); err != nil {
		return err
	}
	failover := time.Since(killed)
	fmt.Fprintf(out, "RESULT failover %s -> %s in %s (kill to new primary accepting writes%s)\n",
		old, newP, failover.Round(100*time.Millisecond), vipNote(withVIP, ""))
	if withVIP && snap.node(old).VIP {
		// pgnoded removes a VIP left by a crash when it starts again (the rejoin below checks that).
		fmt.Fprintf(out, "note: the VIP is still on %s's interface: its pgnoded was killed with -9 and nothing else removes it\n", old)
	}

	if o.rejoin {
		n, _ := r.s.Node(old)
		rejoinStart := time.Now()
		cmd, err := startPgnoded(r.s, n)
		if err != nil {
			return err
		}
		r.reap(cmd)
		if _, err := watch(old+" rejoining as a streaming replica", func(s Snapshot) bool {
			return s.Healthy(withVIP) && s.Primary() == newP
		}); err != nil {
			return err
		}
		fmt.Fprintf(out, "RESULT %s rejoined as a streaming replica in %s\n", old, time.Since(rejoinStart).Round(100*time.Millisecond))
	}
	return nil
}

// expectWriter connects like a client would (through the VIP in netns mode, to the
// node's port otherwise) and checks that the named node answers as a writable primary.
func (r *run) expectWriter(ctx context.Context, name string) error {
	n, _ := r.s.Node(name)
	host, port, via := n.IP, n.PGPort, name
	if r.s.VIP != "" {
		host, port, via = r.s.VIP, 5432, "the VIP "+r.s.VIP
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		inRec, dataDir, err := r.net.pgInRecovery(ctx, host, port)
		if err == nil && !inRec && filepath.Clean(dataDir) == n.DataDir() {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("answered by %s (in recovery: %v), want %s as primary", dataDir, inRec, name)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("connect through %s: %w", via, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func vipNote(withVIP bool, holder string) string {
	switch {
	case !withVIP:
		return ""
	case holder != "":
		return ", VIP on " + holder
	default:
		return ", VIP moved and answering"
	}
}

// dumpLogs prints the end of every node's log after a failed check.
func (r *run) dumpLogs() {
	for _, n := range r.s.Nodes {
		fmt.Fprintf(r.out, "---- %s (last lines) ----\n%s\n", n.Log(), lastLines(readTail(n.Log(), 16<<10), 40))
	}
	p := filepath.Join(r.s.EtcdDir(), "etcd.log")
	fmt.Fprintf(r.out, "---- %s (last lines) ----\n%s\n", p, lastLines(readTail(p, 8<<10), 15))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
