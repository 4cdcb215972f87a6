package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// run is one demo: what it made, so teardown can remove exactly that.
type run struct {
	out     io.Writer
	s       *State
	net     *netClient
	started time.Time

	wg          sync.WaitGroup // one goroutine per child, reaping it
	postmasters map[int]bool   // every postmaster pid seen, for the shared-memory cleanup
}

// runDemo is `make demo`: set up, show the live view until a signal, tear down.
func runDemo(ctx context.Context, o options, out io.Writer) (err error) {
	if o.check {
		return runCheck(ctx, o, out)
	}
	r, err := setup(ctx, o, out)
	if r != nil {
		defer func() { err = errors.Join(err, r.teardown()) }()
	}
	if err != nil {
		return err
	}
	tty := isTerminal(os.Stdout) && out == io.Writer(os.Stdout)
	if !tty {
		fmt.Fprint(out, instructions(r.s, Snapshot{}))
	}
	v := newViewer(out, tty, r.s, r.started)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		snap := r.snapshot(ctx)
		v.show(snap, recentEvents(r.s, 8))
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\nstopping the demo: removing processes, namespaces and data…")
			return nil
		case <-tick.C:
		}
	}
}

// snapshot collects one refresh and remembers the postmasters it saw.
func (r *run) snapshot(ctx context.Context) Snapshot {
	cctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	snap := collect(cctx, r.net)
	for _, n := range snap.Nodes {
		if n.PostmasterPID != 0 {
			r.postmasters[n.PostmasterPID] = true
		}
	}
	return snap
}

// setup checks prerequisites and starts etcd and the three nodes. A non-nil run
// is returned whenever something was made, even with an error, so it can be torn down.
func setup(ctx context.Context, o options, out io.Writer) (*run, error) {
	started := time.Now()
	bins, err := findBins(o.binDir)
	if err != nil {
		return nil, err
	}
	if bins.PGBin, err = ensurePG(ctx, out); err != nil {
		return nil, err
	}
	if err := cleanStale(ctx, out, false); err != nil {
		return nil, err
	}
	mode, reason := ModeNetns, netnsReason(o.loopback)
	if reason != "" {
		mode = ModeLoopback
		fmt.Fprintf(out, "loopback mode, without a VIP: %s\n", reason)
	}
	workDir := filepath.Join(os.TempDir(), dirPrefix+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	_ = os.Chmod(workDir, 0o755) // the postgres user must reach its node directory
	r := &run{out: out, started: started, postmasters: map[int]bool{}}
	r.s = &State{WorkDir: workDir} // enough for teardown until the layout exists
	if mode == ModeNetns {
		if err := r.layoutNetns(ctx, bins); err != nil {
			fmt.Fprintf(out, "network namespaces unavailable (%v): falling back to loopback ports without a VIP\n", err)
			if err := r.removeNamespaces(); err != nil {
				return r, err
			}
			mode = ModeLoopback
		}
	}
	if mode == ModeLoopback {
		if r.s, err = newState(ModeLoopback, workDir, netip.Prefix{}, bins); err != nil {
			return r, err
		}
	}
	r.net = newNetClient(r.s)
	if err := r.s.save(); err != nil {
		return r, err
	}
	if err := prepareNodes(r.s); err != nil {
		return r, err
	}
	fmt.Fprintf(out, "starting etcd and 3 pgnoded nodes (%s mode, work dir %s)\n", r.s.Mode, workDir)
	etcd, err := startEtcd(r.s)
	if err != nil {
		return r, err
	}
	r.reap(etcd)
	ectx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := waitEtcd(ectx, r.net); err != nil {
		return r, err
	}
	for _, n := range r.s.Nodes {
		cmd, err := startPgnoded(r.s, n)
		if err != nil {
			return r, err
		}
		r.reap(cmd)
	}
	return r, nil
}

// layoutNetns picks the subnet, records the layout and builds the namespaces.
func (r *run) layoutNetns(ctx context.Context, bins Bins) error {
	subnet, err := pickSubnet(ctx)
	if err != nil {
		return err
	}
	s, err := newState(ModeNetns, r.s.WorkDir, subnet, bins)
	if err != nil {
		return err
	}
	r.s = s
	if err := s.save(); err != nil { // before the first namespace, so `demo cleanup` finds them
		return err
	}
	return createTopology(ctx, s)
}

// reap waits for a child in the background so it never lingers as a zombie.
func (r *run) reap(cmd *exec.Cmd) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		_ = cmd.Wait()
	}()
}

// removeNamespaces deletes this run's namespaces after killing what runs in them.
func (r *run) removeNamespaces() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	names := r.s.Namespace
	err := killAll(ctx, "", names)
	return errors.Join(err, deleteNamespaces(ctx, names))
}
