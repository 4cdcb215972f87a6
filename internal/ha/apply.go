package ha

import (
	"context"
	"fmt"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// apply carries out a decision. replan is true when the observation gained a
// fact (peers' answers, a lost lock) and the cycle must plan again; done is
// false when the action did not happen as planned (the key was not won, the
// promotion failed, ...): the failure is logged where it happened, and the
// decision's message, which tells the outcome, is not (record).
func (n *Node) apply(ctx context.Context, d plan.Decision, o *plan.Observation) (replan, done bool) {
	if d.CancelLong {
		n.cancelLong()
	}
	n.fire(d.Callbacks, plan.AfterNow)
	if d.Callbacks != nil {
		o.Callbacks.Called = n.st.cbCalled
	}
	prev := n.st.long
	n.st.deciding = &d
	defer func() {
		n.st.deciding = nil
		// A long action launched by this decision fires its start callbacks when it ends well.
		if l := n.st.long; l != nil && l != prev {
			l.callbacks = hooksFor(d.Callbacks, plan.AfterStart)
		}
	}()
	switch d.Action {
	case plan.ActionNone, plan.ActionWait:
	case plan.ActionFatal:
		n.st.fatal = fmt.Errorf("%w: %s", ErrFatal, d.Message)
	case plan.ActionAskPeers:
		o.Peers = n.askPeers(ctx, d.AskPeers)
		return true, true
	case plan.ActionUpdateLock:
		return n.updateLock(ctx, d, o)
	case plan.ActionReleaseLock:
		if o.PrePromote == plan.PrePromoteFailed {
			n.log.Warn("releasing the leader key voluntarily because the pre-promote script failed")
			n.st.prePromoteFailedAt = n.now()
		}
		n.releaseLock(ctx)
	case plan.ActionAcquire:
		return false, n.acquire(ctx, *o, d)
	case plan.ActionPromote:
		held, err := n.updateLeader(ctx, o)
		if !held {
			return err == nil, false // lost: plan again (demote); DCS error: wait for the next cycle
		}
		if d.PrePromote {
			n.launchPrePromote(ctx)
			return false, n.st.long != nil
		}
		raceWon, manual := false, false
		if r := n.st.prePromoteRace; r != nil {
			raceWon, manual = true, *r
		}
		n.st.prePromoteRace = nil
		return false, n.promote(ctx, *o, raceWon, manual, d.Callbacks)
	case plan.ActionDemote:
		return false, n.demote(ctx, d, *o)
	case plan.ActionStop:
		if n.stopPG(ctx, cluster.StopFast, time.Time{}) != nil {
			return false, false
		}
		n.fire(d.Callbacks, plan.AfterStop)
	case plan.ActionFollow:
		if !n.follow(ctx, *o, d.Member) {
			return false, false
		}
		n.fire(d.Callbacks, plan.AfterReload)
	case plan.ActionClaimInitialize:
		n.claimInitialize(ctx)
	case plan.ActionBootstrap:
		n.bootstrap(ctx, *o)
	case plan.ActionClone:
		n.launchClone(ctx, *o, d.Member)
	case plan.ActionStartPrimary, plan.ActionRestartInPlace:
		n.launchStart(ctx, *o, false, "")
	case plan.ActionStartReplica:
		n.launchStart(ctx, *o, true, d.Member)
	case plan.ActionRewind:
		n.launchRewind(ctx, *o, d.Member)
	case plan.ActionReinitialize:
		n.launchReinit(ctx, *o, d.Member)
	}
	return false, true
}

func (n *Node) askPeers(ctx context.Context, members []cluster.Member) []PeerStatus {
	if len(members) == 0 {
		return []PeerStatus{}
	}
	pctx, cancel := shortCtx(ctx, 3*time.Second)
	defer cancel()
	st := n.deps.Peers.Status(pctx, members)
	if st == nil {
		st = []PeerStatus{}
	}
	n.logPeers(st)
	return st
}

// updateLeader refreshes our leader key; on "someone else holds it" it marks
// the observation so Decide demotes. held is true only when the Store confirmed it.
func (n *Node) updateLeader(ctx context.Context, o *plan.Observation) (held bool, err error) {
	octx, cancel := n.dcsCtx(ctx)
	ok, err := n.deps.Store.UpdateLeader(octx)
	cancel()
	if err != nil {
		n.log.Warn("failed to update the leader key", "err", err)
		n.st.dcsFailing = true
		return false, err
	}
	if !ok {
		o.LockLost, n.st.lockLost = true, true
	}
	return ok, nil
}

// updateLock keeps the key. A DCS error is not a lost lock: the demote deadline
// decides when a leader that cannot renew must step down.
func (n *Node) updateLock(ctx context.Context, d plan.Decision, o *plan.Observation) (replan, done bool) {
	held, err := n.updateLeader(ctx, o)
	if !held {
		return err == nil, false
	}
	if d.ClearFailover {
		n.clearFailover(ctx, o.View)
	}
	if o.Long == nil && o.PGReady() && !o.PG.InRecovery {
		n.leaderDuties(ctx, *o)
	}
	return false, true
}

func (n *Node) clearFailover(ctx context.Context, v cluster.View) {
	if v.Failover.Empty() {
		return
	}
	octx, cancel := n.opCtx(ctx)
	defer cancel()
	if _, err := n.deps.Store.SetFailover(octx, cluster.Failover{}, v.Failover.ModRevision); err != nil {
		n.log.Warn("cannot clear the failover key", "err", err)
	}
}

// acquire takes the free leader key and promotes when postgres is a replica
// (after pre_promote passed, when the decision asks for it). It reports
// whether the key was won and the promotion done or under way.
func (n *Node) acquire(ctx context.Context, o plan.Observation, d plan.Decision) bool {
	octx, cancel := n.opCtx(ctx)
	ok, err := n.deps.Store.AcquireLeader(octx)
	cancel()
	switch {
	case err != nil:
		n.st.action = "failed to acquire the leader key: " + err.Error()
		n.log.Warn(n.st.action)
		return false
	case !ok:
		n.st.action = "failed to acquire the leader key: another member holds it; following"
		n.log.Info(n.st.action)
		return false
	}
	n.st.acquiredAt = n.now()
	n.st.view.Leader = &cluster.LeaderKey{Name: n.cfg.Name}
	n.st.recycle = true
	manual := !o.View.Failover.Empty()
	done := true
	if o.PGReady() && o.PG.InRecovery {
		sctx, cancel := shortCtx(ctx, time.Second)
		n.createMemberSlots(sctx, o)
		cancel()
		if d.PrePromote {
			n.st.prePromoteRace = &manual
			n.launchPrePromote(ctx)
			done = n.st.long != nil
		} else {
			done = n.promote(ctx, o, true, manual, d.Callbacks)
		}
	} else {
		n.log.Info("acquired the leader key as a running primary")
	}
	if manual {
		n.clearFailover(ctx, o.View)
	}
	return done
}

// promote turns our replica into the primary. The fence is armed before
// postgres can accept a single write; the VIP follows right after; the
// callbacks planned after the promotion fire once postgres is writable. It
// reports whether postgres was promoted.
func (n *Node) promote(ctx context.Context, o plan.Observation, raceWon, manual bool, cbs []plan.PlannedCallback) bool {
	n.st.promoting = true
	defer func() { n.st.promoting = false }()
	n.st.fenceWant = true
	if !n.cfg.NoFence && n.deps.Fence != nil {
		n.armFence()
		if n.st.fenceFailed {
			n.st.action = "not promoting self because the fence guard could not be armed; releasing the leader key"
			n.log.Error(n.st.action)
			n.releaseLock(ctx)
			return false
		}
	}
	// The lease may have moved since the observation: decide on the fresh value.
	until := plan.DemoteStart(n.deps.Store.LeaseValidUntil(), o.Config).Sub(n.now())
	if until <= 0 {
		n.st.action = "not promoting: the leader lease is about to expire"
		n.log.Warn(n.st.action)
		return false
	}
	d := min(max(n.st.dyn.RetryTimeoutDuration(), 5*time.Second), max(until, 200*time.Millisecond))
	pctx, cancel := context.WithTimeout(ctx, d)
	err := n.deps.Postgres.Promote(pctx)
	cancel()
	n.st.recycle = true
	if err != nil {
		n.st.action = "promotion failed: " + err.Error()
		n.log.Error("promotion failed", "err", err)
		return false
	}
	writable := n.now()
	n.st.prePromote = plan.PrePromoteNotRun
	n.fire(cbs, plan.AfterPromote)
	n.st.roleKnown, n.st.inRecovery = true, false
	n.st.pg.InRecovery = false
	n.st.checkpointPending = true
	n.st.counters.Promotions++
	n.publishNow() // /primary answers 200 from now on, before the VIP and the bookkeeping
	n.ensureVIP(ctx, true)
	vipAt := n.now()
	if raceWon {
		if manual {
			n.st.counters.Switchovers++
		} else {
			n.st.counters.Failovers++
		}
		t := cluster.FailoverTiming{Promotion: writable.Sub(n.st.acquiredAt), VIPMove: vipAt.Sub(writable)}
		if !n.st.leaderGoneAt.IsZero() {
			t.Detection = n.st.acquiredAt.Sub(n.st.leaderGoneAt)
		}
		n.st.counters.LastFailover = t
		n.log.Info("promoted to primary", "manual", manual, "detection", t.Detection,
			"promotion", t.Promotion, "vip", t.VIPMove, "timeline_before", o.PG.Timeline)
		return true
	}
	n.log.Info("promoted to primary", "timeline_before", o.PG.Timeline)
	return true
}

// demote stops being a primary in the given mode (Patroni's Ha.demote).
// The VIP is dropped before postgres is touched. It reports whether postgres
// was stopped (a graceful demote reports its progress itself).
func (n *Node) demote(ctx context.Context, d plan.Decision, o plan.Observation) bool {
	if d.Demote == plan.DemoteGraceful {
		n.gracefulDemote(ctx, o, d)
		return true
	}
	n.ensureVIP(ctx, false)
	n.demoted()
	var err error
	switch d.Demote {
	case plan.DemoteOffline:
		// Read-only before the deadline: a fast stop bounded by it (then immediate), and
		// a restart without upstream. The key stays: we cannot reach the DCS to release it.
		if err = n.stopPG(ctx, d.Stop, plan.DemoteDeadline(o.HoldUntil(), o.Config)); err == nil {
			n.fire(d.Callbacks, plan.AfterStop)
			n.launchStart(ctx, o, true, "")
		}
	case plan.DemoteImmediateNoLock:
		if err = n.stopPG(ctx, cluster.StopImmediate, time.Time{}); err == nil {
			n.fire(d.Callbacks, plan.AfterStop)
		}
	case plan.DemoteImmediate:
		// Hand over now instead of letting the key expire, but only once postgres is down.
		if err = n.stopPG(ctx, cluster.StopImmediate, time.Time{}); err == nil {
			n.fire(d.Callbacks, plan.AfterStop)
			n.releaseLock(ctx)
		}
	}
	return err == nil
}

// demoted records that postgres stops being a primary now.
func (n *Node) demoted() {
	n.st.counters.Demotions++
	n.st.role = cluster.RoleDemoted
	n.st.upstream = plan.Upstream{}
	n.st.recycle = true
}

// stopPG stops postgres; a fast stop that fails or outlives deadline becomes
// immediate. postgresql.before_stop runs first when postgres runs.
func (n *Node) stopPG(ctx context.Context, mode cluster.StopMode, deadline time.Time) error {
	n.st.stopping = true
	if n.st.pg.Running {
		n.runBeforeStop(ctx, mode, deadline)
	}
	d := max(n.st.dyn.RetryTimeoutDuration(), 10*time.Second)
	if !deadline.IsZero() && mode != cluster.StopImmediate {
		d = max(deadline.Sub(n.now()), 0)
	}
	sctx, cancel := context.WithTimeout(ctx, d)
	err := n.deps.Postgres.Stop(sctx, mode)
	cancel()
	if err != nil && mode != cluster.StopImmediate {
		n.log.Warn("stop failed or too slow; stopping immediately", "mode", string(mode), "err", err)
		ictx, cancel := context.WithTimeout(ctx, max(n.st.dyn.RetryTimeoutDuration(), 5*time.Second))
		err = n.deps.Postgres.Stop(ictx, cluster.StopImmediate)
		cancel()
	}
	if err != nil {
		n.log.Error("cannot stop postgres", "err", err)
		return err
	}
	n.st.pg.Running, n.st.pg.Ready = false, false
	n.st.roleKnown = false
	return nil
}

// releaseLock gives up the leader key (VIP first) and remembers when, so we do not race right back.
func (n *Node) releaseLock(ctx context.Context) {
	n.ensureVIP(ctx, false)
	octx, cancel := n.opCtx(ctx)
	err := n.deps.Store.ReleaseLeader(octx)
	cancel()
	if err != nil {
		n.log.Warn("cannot release the leader key", "err", err)
	}
	n.st.releasedAt = n.now()
	n.st.prePromote, n.st.prePromoteRace = plan.PrePromoteNotRun, nil
	n.st.view.Leader = nil
	n.st.recycle = true
}

// follow points the running replica at target and reloads; true when it did.
func (n *Node) follow(ctx context.Context, o plan.Observation, target string) bool {
	opts, up, err := n.replicaOpts(o.View, o.Config, target)
	if err != nil {
		n.log.Warn("cannot follow", "target", target, "err", err)
		return false
	}
	octx, cancel := n.opCtx(ctx)
	err = n.deps.Postgres.Reload(octx, opts)
	cancel()
	if err != nil {
		n.log.Warn("reload with the new upstream failed", "target", target, "err", err)
		return false
	}
	n.st.upstream = up
	n.noteParams(opts)
	return true
}

// claimInitialize adopts existing data: initialize = our system identifier (create-only).
func (n *Node) claimInitialize(ctx context.Context) {
	octx, cancel := n.opCtx(ctx)
	defer cancel()
	won, err := n.deps.Store.AttemptInitialize(octx)
	if err != nil || !won {
		n.log.Info("cannot claim the initialize key", "won", won, "err", err)
		return
	}
	if err := n.deps.Store.SetInitialize(octx, n.st.sysid); err != nil {
		n.log.Warn("cannot write the initialize key", "err", err)
	}
	n.st.recycle = true
}

// logPeers logs what the leader race learnt from each peer: its WAL position
// and role, or that it could not be asked.
func (n *Node) logPeers(st []PeerStatus) {
	args := make([]any, 0, 2*len(st))
	for _, p := range st {
		v := "unreachable"
		if p.Reachable {
			v = fmt.Sprintf("%s wal=%d tl=%d", p.Role, uint64(p.WALPosition), p.Timeline)
		}
		args = append(args, "peer_"+p.Name, v)
	}
	n.log.Info("peers asked before racing for the leader key", args...)
}
