package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// maxBurst bounds the cycles run back to back without waiting for an event.
const maxBurst = 4

// Run runs the HA loop until ctx ends, Shutdown is called, or a fatal decision
// (an error wrapping ErrFatal). It is event-driven: a cycle runs at once when
// the DCS view changes, the lease is lost or renewed, the postmaster exits,
// Wake is called, a long action ends, or the demote deadline comes; loop_wait
// is only the idle tick. Run leaves postgres, the VIP, the key and the fence as
// they are when it returns: Shutdown applies the clean-stop order.
func (n *Node) Run(ctx context.Context) error {
	if err := n.cfg.validate(n.deps); err != nil {
		return err
	}
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("ha: Run called twice, or after Shutdown")
	}
	defer close(n.runDone)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // owned by Run: ends when Run's ctx is cancelled on return
		select {
		case <-n.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer n.stopLong()

	n.startup(ctx)
	if err := n.refusedAtStartup(); err != nil {
		return err
	}
	wake := n.clock.NewTimer(time.Hour)
	defer wake.Stop()
	rn, notifies := n.deps.Store.(RenewalNotifier)
	var poll timer
	if !notifies {
		poll = n.clock.NewTimer(renewalPoll)
		defer poll.Stop()
	}
	lastLease := n.deps.Store.LeaseValidUntil()

	runCycles := func() {
		for burst := 0; burst < maxBurst; burst++ {
			n.st.recycle = false
			n.cycle(ctx)
			if !n.st.recycle || n.st.fatal != nil || ctx.Err() != nil {
				return
			}
		}
	}
	runCycles()
	n.eventDone()
	for {
		if n.st.fatal != nil {
			return n.st.fatal
		}
		if ctx.Err() != nil {
			return n.exitErr(ctx)
		}
		wake.Stop()
		wake.Reset(max(n.nextWake().Sub(n.now()), 0))
		var pollC <-chan time.Time
		if poll != nil {
			pollC = poll.C()
		}
		var longC <-chan longResult
		if n.st.long != nil {
			longC = n.st.long.result
		}
		var renewed <-chan struct{}
		if notifies {
			renewed = rn.Renewed()
		}
		cycle, counted := true, true
		select {
		case <-ctx.Done():
			return n.exitErr(ctx)
		case <-n.deps.Store.Changed():
			cycle = plan.ViewDigest(n.deps.Store.View(), n.cfg.Name, n.now(), n.st.dyn.TTLDuration()) != n.st.digest
		case <-n.deps.Store.LeaseLost():
			n.st.counters.LeaseRenewFails++
			n.st.dcsFailing = true
			n.log.Warn("lease keepalive failed or lease lost")
		case <-n.deps.Postgres.Exited():
			n.onPostmasterExit()
		case <-n.wakeCh:
		case req := <-n.opCh:
			n.handleOp(ctx, req)
		case res := <-longC:
			n.finishLong(res) // counted by the longStarted/longFinished hooks
			counted = false
		case <-wake.C():
		case <-renewed:
			cycle = n.onRenewal()
		case <-pollC:
			poll.Reset(renewalPoll)
			cycle = false
			if lu := n.deps.Store.LeaseValidUntil(); !lu.Equal(lastLease) {
				lastLease = lu
				cycle = n.onRenewal()
			}
		}
		if cycle {
			runCycles()
		}
		if counted {
			n.eventDone()
		}
	}
}

func (n *Node) eventDone() {
	if n.hooks.eventDone != nil {
		n.hooks.eventDone()
	}
}

func (n *Node) exitErr(ctx context.Context) error {
	select {
	case <-n.quit:
		return nil
	default:
		return ctx.Err()
	}
}

// startup makes sure we have a lease and a first view of the cluster before
// the first decision: without them a running primary would be demoted as if
// the DCS were down. Both waits are bounded by retry_timeout.
func (n *Node) startup(ctx context.Context) {
	octx, cancel := context.WithTimeout(ctx, n.st.dyn.RetryTimeoutDuration())
	defer cancel()
	if _, err := n.deps.Store.KeepAlive(octx); err != nil {
		n.log.Warn("cannot get a lease from the DCS at startup", "err", err)
	}
	for n.deps.Store.View().ReadAt.IsZero() {
		select {
		case <-n.deps.Store.Changed():
		case <-octx.Done():
			n.log.Warn("no view of the DCS at startup; continuing as if it were unreachable")
			n.ensureVIP(ctx, false)
			return
		}
	}
	// A VIP left bound by a previous pgnoded that no longer leads goes first.
	if v := n.deps.Store.View(); v.Leader == nil || v.Leader.Name != n.cfg.Name {
		n.ensureVIP(ctx, false)
	}
}

// refusedAtStartup refuses to run on a config key that holds settings pgnoded
// refuses: the operator is told at once, before this node takes any part.
func (n *Node) refusedAtStartup() error {
	v := n.deps.Store.View()
	if v.Config == nil {
		return nil
	}
	refused := n.refusedIn(v.Config.Raw)
	if len(refused) == 0 {
		return nil
	}
	lines := make([]string, len(refused))
	for i, k := range refused {
		lines[i] = "/config: " + k.String()
		n.log.Error(lines[i])
	}
	return fmt.Errorf("%w:\n%s", ErrConfigRefused, strings.Join(lines, "\n"))
}

// nextWake is the latest time the next cycle must run (plan.NextWake of the
// loop's current state): loop_wait after the last cycle, or earlier when a
// deadline, a timer or a short poll comes first.
func (n *Node) nextWake() time.Time {
	return plan.NextWake(n.settleState(), n.st.fenceWant)
}

// onRenewal runs after every lease renewal: extend the fence and republish
// LeaderUntil without a full cycle. It asks for a full cycle after a ttl
// change (the renewal may have brought a new lease to move the leader key to)
// and when it ends failsafe mode (the DCS is back).
func (n *Node) onRenewal() bool {
	n.st.dcsFailing = false
	n.reconcileFence()
	n.republish()
	if n.st.fs.engaged {
		// Leave failsafe mode through a full cycle (it re-takes the key and rewrites the keys).
		return true
	}
	if n.st.ttlPending {
		n.st.ttlPending = false
		return true
	}
	// A wait the plan said a renewal ends (a leader waiting for a longer hold
	// before restarting postgres as primary).
	return n.st.cycleOnRenewal
}

func (n *Node) onPostmasterExit() {
	if n.st.stopping {
		n.log.Debug("postmaster exited (stopped by pgnoded)")
		return
	}
	n.log.Warn("postmaster exited unexpectedly")
}
