package ha

import (
	"context"
	"fmt"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// apply carries out a decision. replan is true when the observation gained a
// fact (peers' answers, a lost lock) and the cycle must plan again; done is
// false when the action did not happen as planned (the key was not won, the
// promotion failed, ...): the failure is logged where it happened, and the
// decision's message, which tells the outcome, is not (record).
func (l *loop) apply(ctx context.Context, d plan.Decision, o *plan.Observation) (replan, done bool) {
	if d.CancelLong {
		l.cancelLong()
	}
	l.fire(d.Callbacks, plan.AfterNow)
	if d.Callbacks != nil {
		o.Callbacks.Called = l.st.cbCalled
	}
	prev := l.st.long.run
	l.st.deciding = &d
	defer func() {
		l.st.deciding = nil
		// A long action launched by this decision fires its start callbacks when it ends well.
		if run := l.st.long.run; run != nil && run != prev {
			run.callbacks = hooksFor(d.Callbacks, plan.AfterStart)
		}
	}()
	switch d.Action {
	case plan.ActionNone, plan.ActionWait:
	case plan.ActionFatal:
		l.st.fatal = fmt.Errorf("%w: %s", ErrFatal, d.Message)
	case plan.ActionAskPeers:
		o.Peers = l.askPeers(ctx, d.AskPeers)
		return true, true
	case plan.ActionUpdateLock:
		return l.updateLock(ctx, d, o)
	case plan.ActionReleaseLock:
		if o.PrePromote == plan.PrePromoteFailed {
			l.log.Warn("releasing the leader key voluntarily because the pre-promote script failed")
			l.st.long.prePromoteFailedAt = l.now()
		}
		l.releaseLock(ctx)
	case plan.ActionAcquire:
		return false, l.acquire(ctx, *o, d)
	case plan.ActionPromote:
		held, err := l.updateLeader(ctx, o)
		if !held {
			return err == nil, false // lost: plan again (demote); DCS error: wait for the next cycle
		}
		if d.PrePromote {
			l.launchPrePromote(ctx)
			return false, l.st.long.run != nil
		}
		raceWon, manual := false, false
		if r := l.st.long.prePromoteRace; r != nil {
			raceWon, manual = true, *r
		}
		l.st.long.prePromoteRace = nil
		return false, l.promote(ctx, *o, raceWon, manual, d.Callbacks)
	case plan.ActionDemote:
		return false, l.demote(ctx, d, *o)
	case plan.ActionStop:
		if l.stopPG(ctx, cluster.StopFast, time.Time{}) != nil {
			return false, false
		}
		l.fire(d.Callbacks, plan.AfterStop)
	case plan.ActionFollow:
		if !l.follow(ctx, *o, d.Member) {
			return false, false
		}
		l.fire(d.Callbacks, plan.AfterReload)
	case plan.ActionClaimInitialize:
		l.claimInitialize(ctx)
	case plan.ActionBootstrap:
		if o.StandbyCluster() {
			l.bootstrapStandbyLeader(ctx, *o)
			break
		}
		l.bootstrap(ctx, *o)
	case plan.ActionClone:
		l.launchClone(ctx, *o, d.Member)
	case plan.ActionStartPrimary, plan.ActionRestartInPlace:
		l.launchStart(ctx, *o, false, "")
	case plan.ActionStartReplica:
		if d.ArchiveShutdown || d.RewindRemote {
			l.launchResumeDemoteCluster(ctx, *o, d)
			break
		}
		l.launchStart(ctx, *o, true, d.Member)
	case plan.ActionRewind:
		l.launchRewind(ctx, *o, d.Member)
	case plan.ActionReinitialize:
		l.launchReinit(ctx, *o, d.Member, cluster.CloneOptions{})
	}
	return false, true
}

func (l *loop) askPeers(ctx context.Context, members []cluster.Member) []PeerStatus {
	if len(members) == 0 {
		return []PeerStatus{}
	}
	pctx, cancel := shortCtx(ctx, 3*time.Second)
	defer cancel()
	st := l.deps.Peers.Status(pctx, members)
	if st == nil {
		st = []PeerStatus{}
	}
	l.logPeers(st)
	return st
}

// updateLeader refreshes our leader key; on "someone else holds it" it marks
// the observation so Decide demotes. held is true only when the Store confirmed it.
func (l *loop) updateLeader(ctx context.Context, o *plan.Observation) (held bool, err error) {
	octx, cancel := l.dcsCtx(ctx)
	ok, err := l.deps.Store.UpdateLeader(octx)
	cancel()
	if err != nil {
		l.log.Warn("failed to update the leader key", "err", err)
		l.st.lease.dcsFailing = true
		return false, err
	}
	if !ok {
		o.LockLost, l.st.lease.lockLost = true, true
	}
	return ok, nil
}

// updateLock keeps the key. A DCS error is not a lost lock: the demote deadline
// decides when a leader that cannot renew must step down.
func (l *loop) updateLock(ctx context.Context, d plan.Decision, o *plan.Observation) (replan, done bool) {
	held, err := l.updateLeader(ctx, o)
	if !held {
		return err == nil, false
	}
	if d.ClearFailover {
		l.clearFailover(ctx, o.View)
	}
	if o.Long == nil && o.PGReady() && !o.PG.InRecovery {
		l.leaderDuties(ctx, *o, d.Sync)
	} else if o.Long == nil && o.PGReady() && o.StandbyCluster() {
		l.standbyLeaderDuties(ctx, *o)
	}
	return false, true
}

func (l *loop) clearFailover(ctx context.Context, v cluster.View) {
	if v.Failover.Empty() {
		return
	}
	octx, cancel := l.opCtx(ctx)
	defer cancel()
	if _, err := l.deps.Store.SetFailover(octx, cluster.Failover{}, v.Failover.ModRevision); err != nil {
		l.log.Warn("cannot clear the failover key", "err", err)
	}
}

// acquire takes the free leader key and promotes when postgres is a replica
// (after pre_promote passed, when the decision asks for it). It reports
// whether the key was won and the promotion done or under way.
func (l *loop) acquire(ctx context.Context, o plan.Observation, d plan.Decision) bool {
	octx, cancel := l.opCtx(ctx)
	ok, err := l.deps.Store.AcquireLeader(octx)
	cancel()
	switch {
	case err != nil:
		l.st.action = "failed to acquire the leader key: " + err.Error()
		l.log.Warn(l.st.action)
		return false
	case !ok:
		l.st.action = "failed to acquire the leader key: another member holds it; following"
		l.log.Info(l.st.action)
		return false
	}
	l.st.lease.acquiredAt = l.now()
	l.st.lease.view.Leader = &cluster.LeaderKey{Name: l.cfg.Name}
	l.st.sched.recycle = true
	manual := !o.View.Failover.Empty()
	done := true
	if o.PGReady() && o.PG.InRecovery {
		sctx, cancel := shortCtx(ctx, time.Second)
		l.createMemberSlots(sctx, o)
		cancel()
		if o.StandbyCluster() {
			// A standby leader is not promoted: the next cycle points it at the remote primary.
			l.log.Info("acquired the leader key as the standby leader", "remote", o.Config.StandbyCluster.Addr())
			l.fire(d.Callbacks, plan.AfterAcquire)
		} else if d.PrePromote {
			l.st.long.prePromoteRace = &manual
			l.launchPrePromote(ctx)
			done = l.st.long.run != nil
		} else {
			done = l.promote(ctx, o, true, manual, d.Callbacks)
		}
	} else {
		l.log.Info("acquired the leader key as a running primary")
	}
	if manual {
		l.clearFailover(ctx, o.View)
	}
	return done
}

// promote turns our replica into the primary. The fence is armed before
// postgres can accept a single write; the VIP follows right after; the
// callbacks planned after the promotion fire once postgres is writable. It
// reports whether postgres was promoted.
func (l *loop) promote(ctx context.Context, o plan.Observation, raceWon, manual bool, cbs []plan.PlannedCallback) bool {
	if !l.syncBeforePromote(ctx, o) {
		return false
	}
	l.st.long.promoting = true
	defer func() { l.st.long.promoting = false }()
	l.st.fence.want = true
	if !l.cfg.NoFence && l.deps.Fence != nil {
		l.armFence()
		if l.st.fence.failed {
			l.st.action = "not promoting self because the fence guard could not be armed; releasing the leader key"
			l.log.Error(l.st.action)
			l.releaseLock(ctx)
			return false
		}
	}
	// The lease may have moved since the observation: decide on the fresh value.
	until := plan.DemoteStart(l.deps.Store.LeaseValidUntil(), o.Config).Sub(l.now())
	if until <= 0 {
		l.st.action = "not promoting: the leader lease is about to expire"
		l.log.Warn(l.st.action)
		return false
	}
	d := min(max(l.st.conf.dyn.RetryTimeoutDuration(), 5*time.Second), max(until, 200*time.Millisecond))
	pctx, cancel := context.WithTimeout(ctx, d)
	err := l.deps.Postgres.Promote(pctx)
	cancel()
	l.st.sched.recycle = true
	if err != nil {
		l.st.action = "promotion failed: " + err.Error()
		l.log.Error("promotion failed", "err", err)
		return false
	}
	writable := l.now()
	l.st.long.prePromote = plan.PrePromoteNotRun
	l.fire(cbs, plan.AfterPromote)
	l.st.pg.roleKnown, l.st.pg.inRecovery = true, false
	l.st.pg.obs.InRecovery = false
	l.st.pg.checkpointPending = true
	l.st.counters.Promotions++
	l.publishNow() // /primary answers 200 from now on, before the VIP and the bookkeeping
	l.ensureVIP(ctx, true)
	vipAt := l.now()
	if raceWon {
		if manual {
			l.st.counters.Switchovers++
		} else {
			l.st.counters.Failovers++
		}
		t := cluster.FailoverTiming{Promotion: writable.Sub(l.st.lease.acquiredAt), VIPMove: vipAt.Sub(writable)}
		if !l.st.lease.leaderGoneAt.IsZero() {
			t.Detection = l.st.lease.acquiredAt.Sub(l.st.lease.leaderGoneAt)
		}
		l.st.counters.LastFailover = t
		l.log.Info("promoted to primary", "manual", manual, "detection", t.Detection,
			"promotion", t.Promotion, "vip", t.VIPMove, "timeline_before", o.PG.Timeline)
		return true
	}
	l.log.Info("promoted to primary", "timeline_before", o.PG.Timeline)
	return true
}

// demote stops being a primary in the given mode (Patroni's Ha.demote).
// The VIP is dropped before postgres is touched. It reports whether postgres
// was stopped (a graceful demote reports its progress itself).
func (l *loop) demote(ctx context.Context, d plan.Decision, o plan.Observation) bool {
	if d.Demote == plan.DemoteGraceful {
		l.gracefulDemote(ctx, o, d)
		return true
	}
	if d.Demote == plan.DemoteCluster {
		return l.demoteCluster(ctx, d, o)
	}
	l.ensureVIP(ctx, false)
	l.demoted()
	var err error
	switch d.Demote {
	case plan.DemoteOffline:
		// Read-only before the deadline: a fast stop bounded by it (then immediate), and
		// a restart without upstream. The key stays: we cannot reach the DCS to release it.
		if err = l.stopPG(ctx, d.Stop, plan.DemoteDeadline(o.HoldUntil(), o.Config)); err == nil {
			l.fire(d.Callbacks, plan.AfterStop)
			l.launchStart(ctx, o, true, "")
		}
	case plan.DemoteImmediateNoLock:
		if err = l.stopPG(ctx, cluster.StopImmediate, time.Time{}); err == nil {
			l.fire(d.Callbacks, plan.AfterStop)
		}
	case plan.DemoteImmediate:
		// Hand over now instead of letting the key expire, but only once postgres is down.
		if err = l.stopPG(ctx, cluster.StopImmediate, time.Time{}); err == nil {
			l.fire(d.Callbacks, plan.AfterStop)
			l.releaseLock(ctx)
		}
	}
	return err == nil
}

// demoted records that postgres stops being a primary now.
func (l *loop) demoted() {
	l.st.counters.Demotions++
	l.st.role = cluster.RoleDemoted
	l.st.pg.upstream = plan.Upstream{}
	l.st.sched.recycle = true
	// A replica does not carry the synchronous_standby_names it kept as
	// primary: promoted again, it would wait for standbys of the old topology.
	l.st.sync = syncState{}
}

// stopPG stops postgres; a fast stop that fails or outlives deadline becomes
// immediate. postgresql.before_stop runs first when postgres runs.
func (l *loop) stopPG(ctx context.Context, mode cluster.StopMode, deadline time.Time) error {
	l.st.pg.stopping = true
	if l.st.pg.obs.Running {
		l.runBeforeStop(ctx, mode, deadline)
	}
	d := max(l.st.conf.dyn.RetryTimeoutDuration(), 10*time.Second)
	if !deadline.IsZero() && mode != cluster.StopImmediate {
		d = max(deadline.Sub(l.now()), 0)
	}
	sctx, cancel := context.WithTimeout(ctx, d)
	err := l.deps.Postgres.Stop(sctx, mode)
	cancel()
	if err != nil && mode != cluster.StopImmediate {
		l.log.Warn("stop failed or too slow; stopping immediately", "mode", string(mode), "err", err)
		ictx, cancel := context.WithTimeout(ctx, max(l.st.conf.dyn.RetryTimeoutDuration(), 5*time.Second))
		err = l.deps.Postgres.Stop(ictx, cluster.StopImmediate)
		cancel()
	}
	if err != nil {
		l.log.Error("cannot stop postgres", "err", err)
		return err
	}
	l.st.pg.obs.Running, l.st.pg.obs.Ready = false, false
	l.st.pg.roleKnown = false
	return nil
}

// releaseLock gives up the leader key (VIP first) and remembers when, so we do not race right back.
func (l *loop) releaseLock(ctx context.Context) {
	l.ensureVIP(ctx, false)
	octx, cancel := l.opCtx(ctx)
	err := l.deps.Store.ReleaseLeader(octx)
	cancel()
	if err != nil {
		l.log.Warn("cannot release the leader key", "err", err)
	}
	l.st.lease.releasedAt = l.now()
	l.st.long.prePromote, l.st.long.prePromoteRace = plan.PrePromoteNotRun, nil
	l.st.lease.view.Leader = nil
	l.st.sched.recycle = true
}

// follow points the running replica at target and reloads; true when it did.
func (l *loop) follow(ctx context.Context, o plan.Observation, target string) bool {
	opts, up, err := l.replicaOpts(o.View, o.Config, target)
	if err != nil {
		l.log.Warn("cannot follow", "target", target, "err", err)
		return false
	}
	octx, cancel := l.opCtx(ctx)
	err = l.deps.Postgres.Reload(octx, opts)
	cancel()
	if err != nil {
		l.log.Warn("reload with the new upstream failed", "target", target, "err", err)
		return false
	}
	l.st.pg.upstream = up
	l.noteParams(opts)
	return true
}

// claimInitialize adopts existing data: initialize = our system identifier (create-only).
func (l *loop) claimInitialize(ctx context.Context) {
	octx, cancel := l.opCtx(ctx)
	defer cancel()
	won, err := l.deps.Store.AttemptInitialize(octx)
	if err != nil || !won {
		l.log.Info("cannot claim the initialize key", "won", won, "err", err)
		return
	}
	if err := l.deps.Store.SetInitialize(octx, l.st.pg.sysid); err != nil {
		l.log.Warn("cannot write the initialize key", "err", err)
	}
	l.st.sched.recycle = true
}

// logPeers logs what the leader race learnt from each peer: its WAL position
// and role, or that it could not be asked.
func (l *loop) logPeers(st []PeerStatus) {
	args := make([]any, 0, 2*len(st))
	for _, p := range st {
		v := "unreachable"
		if p.Reachable {
			v = fmt.Sprintf("%s wal=%d tl=%d", p.Role, uint64(p.WALPosition), p.Timeline)
		}
		args = append(args, "peer_"+p.Name, v)
	}
	l.log.Info("peers asked before racing for the leader key", args...)
}
