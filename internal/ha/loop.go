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
	l := <-n.idle // New put it there; Shutdown takes it only once runDone is closed
	defer close(n.runDone)
	defer func() { n.idle <- l }() // before runDone closes: Shutdown finds it there
	return l.run(ctx)
}

// run is Run on the loop goroutine.
func (l *loop) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // owned by run: ends when run's ctx is cancelled on return
		select {
		case <-l.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer l.stopLong()

	l.startup(ctx)
	if err := l.refusedAtStartup(); err != nil {
		return err
	}
	wake := l.clock.NewTimer(time.Hour)
	defer wake.Stop()
	rn, notifies := l.deps.Store.(RenewalNotifier)
	var poll timer
	if !notifies {
		poll = l.clock.NewTimer(renewalPoll)
		defer poll.Stop()
	}
	lastLease := l.deps.Store.LeaseValidUntil()

	runCycles := func() {
		for burst := 0; burst < maxBurst; burst++ {
			l.st.sched.recycle = false
			l.cycle(ctx)
			if !l.st.sched.recycle || l.st.fatal != nil || ctx.Err() != nil {
				return
			}
		}
	}
	runCycles()
	l.eventDone()
	for {
		if l.st.fatal != nil {
			return l.st.fatal
		}
		if ctx.Err() != nil {
			return l.exitErr(ctx)
		}
		wake.Stop()
		wake.Reset(max(l.nextWake().Sub(l.now()), 0))
		var pollC <-chan time.Time
		if poll != nil {
			pollC = poll.C()
		}
		var longC <-chan longResult
		if l.st.long.run != nil {
			longC = l.st.long.run.result
		}
		var renewed <-chan struct{}
		if notifies {
			renewed = rn.Renewed()
		}
		cycle, counted := true, true
		select {
		case <-ctx.Done():
			return l.exitErr(ctx)
		case <-l.deps.Store.Changed():
			cycle = plan.ViewDigest(l.deps.Store.View(), l.cfg.Name, l.now(), l.st.conf.dyn.TTLDuration()) != l.st.lease.digest
		case <-l.deps.Store.LeaseLost():
			l.st.counters.LeaseRenewFails++
			// Only the first loss is news: while the DCS is failing, every
			// keepalive the cycle tries fails again and would wake the loop at
			// once, a busy loop for as long as etcd is away. The deadlines
			// that matter then (demotion, failsafe rounds) are on the timer.
			cycle = !l.st.lease.dcsFailing
			if cycle {
				l.st.lease.dcsFailing = true
				l.log.Warn("lease keepalive failed or lease lost")
			}
		case <-l.deps.Postgres.Exited():
			l.onPostmasterExit()
		case <-l.wakeCh:
		case req := <-l.opCh:
			l.handleOp(ctx, req)
		case res := <-longC:
			l.finishLong(res) // counted by the longStarted/longFinished hooks
			counted = false
		case <-wake.C():
		case <-renewed:
			cycle = l.onRenewal()
		case <-pollC:
			poll.Reset(renewalPoll)
			cycle = false
			if lu := l.deps.Store.LeaseValidUntil(); !lu.Equal(lastLease) {
				lastLease = lu
				cycle = l.onRenewal()
			}
		}
		if cycle {
			runCycles()
		}
		if counted {
			l.eventDone()
		}
	}
}

func (l *loop) eventDone() {
	if l.hooks.eventDone != nil {
		l.hooks.eventDone()
	}
}

func (l *loop) exitErr(ctx context.Context) error {
	select {
	case <-l.quit:
		return nil
	default:
		return ctx.Err()
	}
}

// startup makes sure we have a lease and a first view of the cluster before
// the first decision: without them a running primary would be demoted as if
// the DCS were down. Both waits are bounded by retry_timeout.
func (l *loop) startup(ctx context.Context) {
	octx, cancel := context.WithTimeout(ctx, l.st.conf.dyn.RetryTimeoutDuration())
	defer cancel()
	if _, err := l.deps.Store.KeepAlive(octx); err != nil {
		l.log.Warn("cannot get a lease from the DCS at startup", "err", err)
	}
	for l.deps.Store.View().ReadAt.IsZero() {
		select {
		case <-l.deps.Store.Changed():
		case <-octx.Done():
			l.log.Warn("no view of the DCS at startup; continuing as if it were unreachable")
			l.ensureVIP(ctx, false)
			return
		}
	}
	// A VIP left bound by a previous pgnoded that no longer leads goes first.
	if v := l.deps.Store.View(); v.Leader == nil || v.Leader.Name != l.cfg.Name {
		l.ensureVIP(ctx, false)
	}
}

// refusedAtStartup refuses to run on a config key that holds settings pgnoded
// refuses: the operator is told at once, before this node takes any part.
func (l *loop) refusedAtStartup() error {
	v := l.deps.Store.View()
	if v.Config == nil {
		return nil
	}
	refused := l.refusedIn(v.Config.Raw)
	if len(refused) == 0 {
		return nil
	}
	lines := make([]string, len(refused))
	for i, k := range refused {
		lines[i] = "/config: " + k.String()
		l.log.Error(lines[i])
	}
	return fmt.Errorf("%w:\n%s", ErrConfigRefused, strings.Join(lines, "\n"))
}

// nextWake is the latest time the next cycle must run (plan.NextWake of the
// loop's current state): loop_wait after the last cycle, or earlier when a
// deadline, a timer or a short poll comes first.
func (l *loop) nextWake() time.Time {
	return plan.NextWake(l.settleState(), l.st.fence.want)
}

// onRenewal runs after every lease renewal: extend the fence and republish
// LeaderUntil without a full cycle. It asks for a full cycle after a ttl
// change (the renewal may have brought a new lease to move the leader key to)
// and when it ends failsafe mode (the DCS is back).
func (l *loop) onRenewal() bool {
	l.st.lease.dcsFailing = false
	l.reconcileFence()
	l.republish()
	if l.st.lease.fs.engaged {
		// Leave failsafe mode through a full cycle (it re-takes the key and rewrites the keys).
		return true
	}
	if l.st.conf.ttlPending {
		l.st.conf.ttlPending = false
		return true
	}
	// A wait the plan said a renewal ends (a leader waiting for a longer hold
	// before restarting postgres as primary).
	return l.st.sched.cycleOnRenewal
}

func (l *loop) onPostmasterExit() {
	if l.st.pg.stopping {
		l.log.Debug("postmaster exited (stopped by pgnoded)")
		return
	}
	l.log.Warn("postmaster exited unexpectedly")
}
