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
func (n *Node) finishCycle(ctx context.Context) {
	n.recheckKey()
	n.updateRole()
	n.writeMember(ctx, plan.Settle(n.settleState()).Member)
	// The member write may have waited on the DCS: the fence and the VIP
	// follow the state, and the time, after it.
	n.applyEffects(ctx, plan.Settle(n.settleState()))
	n.st.lastLoop = n.now()
	n.publish()
}

// recheckKey drops the loop's belief that it holds the leader key when the
// Store has since reported that key's lease gone: the view is as old as the
// cycle, and a pgnoded frozen in between may wake to find its lease expired
// (and the key with it). Without this the fence would follow a key that no
// longer exists; the VIP and the hold follow keyLeaseGone too (holdUntil).
func (n *Node) recheckKey() {
	if n.holdsKey() && n.keyLeaseGone() {
		n.log.Warn("the leader key is no longer ours (its lease ended while this cycle ran)")
		n.st.lockLost = true
	}
}

// holdsKey is the loop's belief that the leader key is ours.
func (n *Node) holdsKey() bool {
	return n.st.view.Leader != nil && n.st.view.Leader.Name == n.cfg.Name && !n.st.lockLost
}

func (n *Node) updateRole() {
	pg := n.st.pg
	r := n.st.role
	switch {
	case pg.Running && pg.Ready && pg.InRecovery:
		r = cluster.RoleReplica
	case pg.Running && pg.Ready:
		r = cluster.RolePrimary
	case n.st.long != nil && (n.st.long.kind == plan.LongBootstrap || n.st.long.kind == plan.LongClone ||
		n.st.long.kind == plan.LongReinitialize):
		r = cluster.RoleUninitialized
	case !pg.Running && n.st.data.Empty:
		r = cluster.RoleUninitialized
	}
	if r != n.st.role {
		n.log.Info("role changed", "from", string(n.st.role), "to", string(r), "reason", n.st.action)
		n.st.role = r
	}
}

// writeMember writes members/<name> as Settle planned it (the Store skips unchanged values).
func (n *Node) writeMember(ctx context.Context, m *cluster.Member) {
	if m == nil {
		return
	}
	octx, cancel := n.opCtx(ctx)
	defer cancel()
	if err := n.deps.Store.TouchMember(octx, *m); err != nil {
		n.log.Debug("cannot write the member key", "err", err)
	}
}

// applyEffects carries out the fence and VIP steps Settle planned (VIPLeave
// does nothing); the member key is written by writeMember.
func (n *Node) applyEffects(ctx context.Context, e plan.Effects) {
	n.st.fenceWant = e.FenceWant
	switch e.Fence {
	case plan.FenceArm:
		n.armFenceAt(e.FenceDeadline)
	case plan.FenceDisarm:
		n.disarmFence()
	}
	switch e.VIP {
	case plan.VIPBind:
		n.ensureVIP(ctx, true)
	case plan.VIPUnbind:
		n.ensureVIP(ctx, false)
	}
}

// settleState is the loop's state as the effect rules read it (plan.State):
// taken after the cycle's action, or between cycles (a renewal, the timer).
func (n *Node) settleState() plan.State {
	s := plan.State{
		Now: n.now(), Config: n.st.dyn, HoldsKey: n.holdsKey(), HoldUntil: n.holdUntil(),
		LeaderAbsent:   n.st.view.Leader == nil,
		ViewLeaderIsMe: n.st.view.Leader != nil && n.st.view.Leader.Name == n.cfg.Name,
		PG:             n.st.pg, Promoting: n.st.promoting,
		FenceConfigured: !n.cfg.NoFence && n.deps.Fence != nil, VIPBound: n.st.vipBound,
		Failsafe: n.failsafeFacts(), LastLoop: n.st.lastLoop, PollAfter: n.st.pollAfter,
		ReleasedAt: n.st.releasedAt, WakeAt: n.st.wakeAt, PGDownSince: n.st.pgDownSince,
		Member: plan.MemberFacts{Write: n.st.dcsOK, Name: n.cfg.Name, ConnURL: n.cfg.ConnURL, APIURL: n.cfg.APIURL,
			Compat: n.cfg.Compat, Role: n.st.role, Tags: n.configTags(),
			ScheduledRestart: scheduledRestartDoc(n.st.scheduled), CheckpointAfterPromote: n.st.checkpointPending},
	}
	s.Long = n.st.long.action()
	if r := n.st.scheduled; r != nil {
		s.RestartAt = r.req.Schedule
	}
	if f := n.st.view.Failover; !f.Empty() && f.ScheduledAt != "" {
		if at, err := time.Parse(time.RFC3339Nano, f.ScheduledAt); err == nil {
			s.FailoverAt = at
		}
	}
	return s
}

// reconcileFence applies the fence rule (plan.Fence) alone to the loop's
// current state (after a renewal, a failsafe confirmation): arm to the hold's
// demote deadline, disarm, or leave it as it is.
func (n *Node) reconcileFence() {
	var e plan.Effects // VIPLeave
	e.FenceWant, e.Fence, e.FenceDeadline = plan.Fence(n.settleState())
	n.applyEffects(context.Background(), e)
}

// armFence arms (or extends) the guard to DemoteDeadline of the current hold:
// the lease, or while failsafe keeps leadership the last confirmation + ttl.
func (n *Node) armFence() {
	n.armFenceAt(plan.DemoteDeadline(n.holdUntil(), n.st.dyn))
}

// armFenceAt arms (or extends) the guard to dl (a zero dl changes nothing).
func (n *Node) armFenceAt(dl time.Time) {
	if n.cfg.NoFence || n.deps.Fence == nil {
		return
	}
	if dl.IsZero() || n.st.fenceKnown && n.st.fenceArmed && dl.Equal(n.st.fenceUntil) {
		return
	}
	if err := n.deps.Fence.Arm(dl); err != nil {
		if !n.st.fenceFailed {
			n.log.Error("cannot arm the fence guard", "err", err)
		}
		n.st.fenceFailed = true
		return
	}
	if n.st.fenceFailed {
		n.log.Info("fence guard armed again")
	}
	n.st.fenceFailed = false
	n.st.fenceKnown, n.st.fenceArmed, n.st.fenceUntil = true, true, dl
}

// disarmFence tells the guard we are not a primary. While the guard is marked
// failed, every cycle retries it: a success proves the guard works again.
func (n *Node) disarmFence() {
	if n.cfg.NoFence || n.deps.Fence == nil || n.st.fenceKnown && !n.st.fenceArmed && !n.st.fenceFailed {
		return
	}
	if err := n.deps.Fence.Disarm(); err != nil {
		n.log.Warn("cannot disarm the fence guard", "err", err)
		return
	}
	if n.st.fenceFailed {
		n.log.Info("fence guard answers again")
	}
	n.st.fenceFailed = false
	n.st.fenceKnown, n.st.fenceArmed, n.st.fenceUntil = true, false, time.Time{}
}

// ensureVIP asks for the VIP state; errors are logged and never block anything.
func (n *Node) ensureVIP(ctx context.Context, bound bool) {
	if n.deps.VIP == nil {
		return
	}
	vctx, cancel := shortCtx(ctx, min(n.st.dyn.RetryTimeoutDuration(), 2*time.Second))
	defer cancel()
	if err := n.deps.VIP.Ensure(vctx, bound); err != nil {
		n.st.counters.VIPFailures++
		n.log.Warn("VIP change failed", "bound", bound, "err", err)
		return
	}
	if bound != n.st.vipBound {
		n.log.Info("VIP changed", "bound", bound)
	}
	n.st.vipBound = bound
}

// leaderUntil is what /primary trusts: the hold (lease or failsafe) while we hold the key
// and postgres is a running primary, else zero.
func (n *Node) leaderUntil() time.Time {
	pg := n.st.pg
	if n.holdsKey() && pg.Running && pg.Ready && !pg.InRecovery {
		return n.holdUntil()
	}
	return time.Time{}
}

// publish stores a new immutable snapshot.
func (n *Node) publish() {
	cfg := n.st.dyn
	pg := n.st.pg
	pg.State = plan.PGState(pg, n.st.long.action())
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	s := &cluster.Snapshot{
		Name: n.cfg.Name, Scope: n.cfg.Scope, Compat: n.cfg.Compat, APIURL: n.cfg.APIURL, ConnURL: n.cfg.ConnURL,
		PG: pg, Role: n.st.role, View: n.st.view, LeaderUntil: n.leaderUntil(),
		TTL: cfg.TTLDuration(), LoopWait: cfg.LoopWaitDuration(), RetryTimeout: cfg.RetryTimeoutDuration(), Config: cfg,
		Tags: plan.EffectiveTags(n.configTags()), Paused: cfg.Pause, PendingRestart: pg.PendingRestart,
		SyncStandby:    cfg.SynchronousMode && n.st.view.Sync != nil && (plan.Observation{View: n.st.view}).InSync(n.cfg.Name),
		WatchdogFailed: n.st.fenceFailed, LastLoop: n.st.lastLoop, NextLoopAt: n.nextWake(), Action: n.st.action,
		FailsafeActive: n.failsafeActive(), VIPBound: n.st.vipBound, Counters: n.counters(), ScheduledRestart: scheduledRestartDoc(n.st.scheduled),
		ConfigRefused: n.st.refused,
	}
	n.snap.Store(s)
}

// publishNow publishes the loop's state in the middle of a cycle, when a
// client-visible change (postgres stopped or promoted) must not wait for its end.
func (n *Node) publishNow() {
	n.updateRole()
	n.publish()
}

// republish refreshes LeaderUntil (after a lease renewal) on a copy of the last snapshot.
func (n *Node) republish() {
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	old := n.snap.Load()
	s := *old
	s.LeaderUntil = n.leaderUntil()
	n.snap.Store(&s)
}

// counters are the loop's counters plus the hook runner's counts.
func (n *Node) counters() cluster.Counters {
	c := n.st.counters
	if pc, ok := n.deps.Peers.(PeerErrorCounter); ok {
		c.PeerErrors = pc.ErrorCounts()
	}
	if n.deps.Hooks != nil {
		c.CallbackRuns = n.deps.Hooks.Runs()
	}
	return c
}
