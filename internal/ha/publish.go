package ha

import (
	"context"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// finishCycle runs after every cycle: role bookkeeping, then the effects that
// follow the state the action left (plan.Settle: member key, fence, VIP) and
// the published snapshot.
func (l *loop) finishCycle(ctx context.Context) {
	l.recheckKey()
	l.updateRole()
	l.writeMember(ctx, plan.Settle(l.settleState()).Member)
	// The member write may have waited on the DCS: the fence and the VIP
	// follow the state, and the time, after it.
	l.applyEffects(ctx, plan.Settle(l.settleState()))
	l.st.sched.lastLoop = l.now()
	l.publish()
}

// recheckKey drops the loop's belief that it holds the leader key when the
// Store has since reported that key's lease gone: the view is as old as the
// cycle, and a pgnoded frozen in between may wake to find its lease expired
// (and the key with it). Without this the fence would follow a key that no
// longer exists; the VIP and the hold follow keyLeaseGone too (holdUntil).
func (l *loop) recheckKey() {
	if l.holdsKey() && l.keyLeaseGone() {
		l.log.Warn("the leader key is no longer ours (its lease ended while this cycle ran)")
		l.st.lease.lockLost = true
	}
}

// holdsKey is the loop's belief that the leader key is ours.
func (l *loop) holdsKey() bool {
	return l.st.lease.view.Leader != nil && l.st.lease.view.Leader.Name == l.cfg.Name && !l.st.lease.lockLost
}

func (l *loop) updateRole() {
	pg := l.st.pg.obs
	r := l.st.role
	switch {
	case pg.Running && pg.Ready && pg.InRecovery && l.holdsKey() && l.standbyCluster():
		r = cluster.RoleStandbyLeader
	case pg.Running && pg.Ready && pg.InRecovery:
		r = cluster.RoleReplica
	case pg.Running && pg.Ready:
		r = cluster.RolePrimary
	case l.st.long.run != nil && (l.st.long.run.kind == plan.LongBootstrap || l.st.long.run.kind == plan.LongClone ||
		l.st.long.run.kind == plan.LongReinitialize):
		r = cluster.RoleUninitialized
	case !pg.Running && l.st.pg.data.Empty:
		r = cluster.RoleUninitialized
	}
	if r != l.st.role {
		l.log.Info("role changed", "from", string(l.st.role), "to", string(r), "reason", l.st.action)
		l.st.role = r
	}
}

// writeMember writes members/<name> as Settle planned it (the Store skips unchanged values).
func (l *loop) writeMember(ctx context.Context, m *cluster.Member) {
	if m == nil {
		return
	}
	octx, cancel := l.opCtx(ctx)
	defer cancel()
	if err := l.deps.Store.TouchMember(octx, *m); err != nil {
		l.log.Debug("cannot write the member key", "err", err)
	}
}

// applyEffects carries out the fence and VIP steps Settle planned (VIPLeave
// does nothing); the member key is written by writeMember.
func (l *loop) applyEffects(ctx context.Context, e plan.Effects) {
	l.st.fence.want = e.FenceWant
	switch e.Fence {
	case plan.FenceArm:
		l.armFenceAt(e.FenceDeadline)
	case plan.FenceDisarm:
		l.disarmFence()
	}
	switch e.VIP {
	case plan.VIPBind:
		l.ensureVIP(ctx, true)
	case plan.VIPUnbind:
		l.ensureVIP(ctx, false)
	}
}

// settleState is the loop's state as the effect rules read it (plan.State):
// taken after the cycle's action, or between cycles (a renewal, the timer).
func (l *loop) settleState() plan.State {
	s := plan.State{
		Now: l.now(), Config: l.st.conf.dyn, HoldsKey: l.holdsKey(), HoldUntil: l.holdUntil(),
		LeaderAbsent:   l.st.lease.view.Leader == nil,
		ViewLeaderIsMe: l.st.lease.view.Leader != nil && l.st.lease.view.Leader.Name == l.cfg.Name,
		PG:             l.st.pg.obs, Promoting: l.st.long.promoting,
		FenceConfigured: !l.cfg.NoFence && l.deps.Fence != nil, VIPBound: l.st.fence.vipBound,
		Failsafe: l.failsafeFacts(), LastLoop: l.st.sched.lastLoop, PollAfter: l.st.sched.pollAfter,
		ReleasedAt: l.st.lease.releasedAt, WakeAt: l.st.sched.wakeAt, PGDownSince: l.st.pg.downSince,
		Member: plan.MemberFacts{Write: l.st.lease.dcsOK, Name: l.cfg.Name, ConnURL: l.cfg.ConnURL, APIURL: l.cfg.APIURL,
			Compat: l.cfg.Compat, Role: l.st.role, Tags: l.memberTags(),
			ScheduledRestart: scheduledRestartDoc(l.st.sched.restart), CheckpointAfterPromote: l.st.pg.checkpointPending},
	}
	s.Long = l.st.long.run.action()
	if r := l.st.sched.restart; r != nil {
		s.RestartAt = r.req.Schedule
	}
	if r := l.st.sched.release; r != nil && !r.started && (s.WakeAt.IsZero() || r.until.Before(s.WakeAt)) {
		s.WakeAt = r.until // the wait for our release from sync duty ends then at the latest
	}
	if f := l.st.lease.view.Failover; !f.Empty() && f.ScheduledAt != "" {
		if at, err := time.Parse(time.RFC3339Nano, f.ScheduledAt); err == nil {
			s.FailoverAt = at
		}
	}
	return s
}

// reconcileFence applies the fence rule (plan.Fence) alone to the loop's
// current state (after a renewal, a failsafe confirmation): arm to the hold's
// demote deadline, disarm, or leave it as it is.
func (l *loop) reconcileFence() {
	var e plan.Effects // VIPLeave
	e.FenceWant, e.Fence, e.FenceDeadline = plan.Fence(l.settleState())
	l.applyEffects(context.Background(), e)
}

// armFence arms (or extends) the guard to DemoteDeadline of the current hold:
// the lease, or while failsafe keeps leadership the last confirmation + ttl.
func (l *loop) armFence() {
	l.armFenceAt(plan.DemoteDeadline(l.holdUntil(), l.st.conf.dyn))
}

// armFenceAt arms (or extends) the guard to dl (a zero dl changes nothing).
func (l *loop) armFenceAt(dl time.Time) {
	if l.cfg.NoFence || l.deps.Fence == nil {
		return
	}
	if dl.IsZero() || l.st.fence.known && l.st.fence.armed && dl.Equal(l.st.fence.until) {
		return
	}
	if err := l.deps.Fence.Arm(dl); err != nil {
		if !l.st.fence.failed {
			l.log.Error("cannot arm the fence guard", "err", err)
		}
		l.st.fence.failed = true
		return
	}
	if l.st.fence.failed {
		l.log.Info("fence guard armed again")
	}
	l.st.fence.failed = false
	l.st.fence.known, l.st.fence.armed, l.st.fence.until = true, true, dl
}

// disarmFence tells the guard we are not a primary. While the guard is marked
// failed, every cycle retries it: a success proves the guard works again.
func (l *loop) disarmFence() {
	if l.cfg.NoFence || l.deps.Fence == nil || l.st.fence.known && !l.st.fence.armed && !l.st.fence.failed {
		return
	}
	if err := l.deps.Fence.Disarm(); err != nil {
		l.log.Warn("cannot disarm the fence guard", "err", err)
		return
	}
	if l.st.fence.failed {
		l.log.Info("fence guard answers again")
	}
	l.st.fence.failed = false
	l.st.fence.known, l.st.fence.armed, l.st.fence.until = true, false, time.Time{}
}

// ensureVIP asks for the VIP state; errors are logged and never block anything.
func (l *loop) ensureVIP(ctx context.Context, bound bool) {
	if l.deps.VIP == nil {
		return
	}
	vctx, cancel := shortCtx(ctx, min(l.st.conf.dyn.RetryTimeoutDuration(), 2*time.Second))
	defer cancel()
	if err := l.deps.VIP.Ensure(vctx, bound); err != nil {
		l.st.counters.VIPFailures++
		l.log.Warn("VIP change failed", "bound", bound, "err", err)
		return
	}
	if bound != l.st.fence.vipBound {
		l.log.Info("VIP changed", "bound", bound)
	}
	l.st.fence.vipBound = bound
}

// leaderUntil is what /primary trusts: the hold (lease or failsafe) while we
// lead (plan.Leading: the key, a running primary, no bootstrap under way),
// else zero. In a standby cluster the standby leader runs in recovery:
// /standby-leader trusts the same hold (and /primary answers 503 there
// whatever it is).
func (l *loop) leaderUntil() time.Time {
	if plan.Leading(l.holdsKey(), l.st.pg.obs, l.standbyCluster(), l.st.long.run.action()) {
		return l.holdUntil()
	}
	return time.Time{}
}

// publish stores a new immutable snapshot.
func (l *loop) publish() {
	cfg := l.st.conf.dyn
	pg := l.st.pg.obs
	pg.State = plan.PGState(pg, l.st.long.run.action())
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	s := &cluster.Snapshot{
		Name: l.cfg.Name, Scope: l.cfg.Scope, Compat: l.cfg.Compat, APIURL: l.cfg.APIURL, ConnURL: l.cfg.ConnURL,
		PG: pg, Role: l.st.role, View: l.st.lease.view, LeaderUntil: l.leaderUntil(),
		TTL: cfg.TTLDuration(), LoopWait: cfg.LoopWaitDuration(), RetryTimeout: cfg.RetryTimeoutDuration(), Config: cfg,
		Tags: plan.EffectiveTags(l.memberTags()), Paused: cfg.Pause, PendingRestart: pg.PendingRestart,
		SyncStandby:    cfg.SynchronousMode && l.st.lease.view.Sync.Lists(l.cfg.Name, l.cfg.Compat),
		WatchdogFailed: l.st.fence.failed, LastLoop: l.st.sched.lastLoop, NextLoopAt: l.nextWake(), Action: l.st.action,
		FailsafeActive: l.failsafeActive(), VIPBound: l.st.fence.vipBound, Counters: l.counters(), ScheduledRestart: scheduledRestartDoc(l.st.sched.restart),
		ConfigRefused: l.st.conf.refused, StandbyCluster: l.standbyCluster(), UpstreamError: l.st.upstreamErr,
	}
	l.snap.Store(s)
}

// publishNow publishes the loop's state in the middle of a cycle, when a
// client-visible change (postgres stopped or promoted) must not wait for its end.
func (l *loop) publishNow() {
	l.updateRole()
	l.publish()
}

// republish refreshes LeaderUntil (after a lease renewal) on a copy of the last snapshot.
func (l *loop) republish() {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	old := l.snap.Load()
	s := *old
	s.LeaderUntil = l.leaderUntil()
	l.snap.Store(&s)
}

// counters are the loop's counters plus the hook runner's counts.
func (l *loop) counters() cluster.Counters {
	c := l.st.counters
	if pc, ok := l.deps.Peers.(PeerErrorCounter); ok {
		c.PeerErrors = pc.ErrorCounts()
	}
	if l.deps.Hooks != nil {
		c.CallbackRuns = l.deps.Hooks.Runs()
	}
	return c
}
