package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// shortPolls are the waits no event announces, by decision reason, and how
// soon the cycle runs again to look (docs/ha-waits.md): every other wait ends
// on an event (a key change, the lease, the postmaster, a long action, a timer).
var shortPolls = map[string]time.Duration{
	plan.ReasonAwaitingWAL: 100 * time.Millisecond, // the candidate waiting for the old leader's last WAL
	"pg_not_ready":         250 * time.Millisecond, // postgres running but not accepting connections yet
	"lagging":              time.Second,            // a replica replaying towards maximum_lag_on_failover
}

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

// nextWake is the latest time the next cycle must run: loop_wait after the last
// one, or earlier when the demote deadline or primary_start_timeout comes first.
func (n *Node) nextWake() time.Time {
	now := n.now()
	next := n.st.lastLoop.Add(max(n.st.dyn.LoopWaitDuration(), 100*time.Millisecond))
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	if n.st.fs.engaged {
		earlier(n.st.fs.lastRound.Add(failsafeInterval(n.st.dyn)))
	} else if n.st.fenceWant && n.st.dyn.FailsafeMode && !n.st.dyn.Pause {
		earlier(n.leaseOverdueAt()) // a missed renewal starts failsafe rounds before the lease runs short
	}
	if n.st.fenceWant && !n.st.dyn.Pause {
		hold := n.holdUntil()
		start, deadline := DemoteStart(hold, n.st.dyn), DemoteDeadline(hold, n.st.dyn)
		switch {
		case start.After(now):
			earlier(start)
		case deadline.After(now):
			earlier(deadline)
		default: // demotion due but not done yet: retry soon
			earlier(now.Add(250 * time.Millisecond))
		}
	}
	if n.st.pollAfter > 0 {
		earlier(now.Add(n.st.pollAfter))
	}
	if r := n.st.releasedAt; !r.IsZero() && n.st.view.Leader == nil {
		if at := r.Add(n.st.dyn.TTLDuration()); at.After(now) {
			earlier(at) // the end of released_recently: this node may race again
		}
	}
	earlier(n.st.wakeAt)
	if s := n.st.scheduled; s != nil && !n.st.dyn.Pause {
		earlier(s.req.Schedule)
	}
	if f := n.st.view.Failover; n.holdsKey() && !f.Empty() && f.ScheduledAt != "" {
		if at, err := time.Parse(time.RFC3339Nano, f.ScheduledAt); err == nil {
			earlier(at.Add(-n.st.dyn.LoopWaitDuration()))
		}
	}
	pst := time.Duration(n.st.dyn.PrimaryStartTimeout) * time.Second
	if l := n.st.long; l != nil && l.kind == LongStartPrimary {
		earlier(l.since.Add(pst))
	}
	if !n.st.pgDownSince.IsZero() && n.st.view.Leader != nil && n.st.view.Leader.Name == n.cfg.Name {
		earlier(n.st.pgDownSince.Add(pst))
	}
	return next
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
	// A leader waiting for a longer hold before restarting postgres as primary: the renewal is its event.
	return n.st.reason == "lease_deadline"
}

func (n *Node) onPostmasterExit() {
	if n.st.stopping {
		n.log.Debug("postmaster exited (stopped by pgnoded)")
		return
	}
	n.log.Warn("postmaster exited unexpectedly")
}
