package ha

import (
	"context"
	"log/slog"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// maxRounds bounds the plan/apply rounds in one cycle (a failsafe round, ask
// the peers, then plan again, ...).
const maxRounds = 5

// cycle is one HA iteration (docs/architecture.md): prepare (reload, config
// key, lease), observe, plan and apply, possibly planning again with new facts
// such as the peers' answers; then the effects that follow the state the
// action left (finishCycle).
func (l *loop) cycle(ctx context.Context) {
	l.st.sched.wakeAt = time.Time{}
	view := l.prepare(ctx)
	obs := l.observe(ctx, view)
	var p plan.Plan
	for round := 0; round < maxRounds; round++ {
		p = plan.Make(obs)
		if p.Failsafe != plan.FailsafeStay {
			l.applyFailsafe(ctx, p.Failsafe, p.FailsafeWhy, &obs)
			obs.Failsafe.RoundThisCycle = obs.Failsafe.RoundThisCycle || p.Failsafe == plan.FailsafeRound
			continue
		}
		if !l.step(ctx, p, &obs) {
			break
		}
	}
	if p.Action == plan.ActionUpdateLock && l.st.lease.dcsFailing && !l.st.lease.fs.engaged {
		// The leader-key update of this cycle failed: ask the members now
		// rather than a cycle later, when the hold may already be too short
		// to keep the VIP and to pat the fence.
		obs.Now = l.now()
		l.failsafeStep(ctx, &obs)
	}
	l.evaluateSyncRelease(ctx)
	l.evaluateScheduledRestart(ctx)
	l.reconcileParams(ctx)
	if l.st.long.run == nil {
		l.keepReplicaSlots(ctx, obs)
	}
	l.finishCycle(ctx)
}

// step applies one plan: its intent is noted, its action applied, and its
// outcome logged once known. It reports whether to plan again.
func (l *loop) step(ctx context.Context, p plan.Plan, obs *plan.Observation) (replan bool) {
	d := p.Decision
	l.st.action = d.Message // the published action: what the loop is doing now
	l.st.upstreamErr = plan.UpstreamError(l.st.upstreamErr, *obs, d)
	attrs := []any{"action", d.Action.String(), "reason", d.Reason}
	if d.Member != "" {
		attrs = append(attrs, "target", d.Member)
	}
	l.log.Log(ctx, slog.LevelDebug, "planning to "+d.Action.String(), attrs...)
	l.st.sched.pollAfter = p.PollAfter
	l.st.sched.cycleOnRenewal = p.CycleOnRenewal
	replan, done := l.apply(ctx, p.Decision, obs)
	if done {
		l.record(ctx, p.Decision)
	}
	return replan
}

// prepare readies the cycle's inputs before anything is observed: a pending
// reload, the config key (timing pushed to the Store) and, when the lease has
// run out, a keepalive (the Store renews it on its own every
// KeepAliveInterval; this one renews a lease that ran out between them). It
// returns the view the cycle observes.
func (l *loop) prepare(ctx context.Context) cluster.View {
	if r := l.takeReload(); r != nil {
		if r.params != nil {
			l.st.conf.localParams = r.params
		}
		l.st.conf.reloadPG = true
	}
	view := l.deps.Store.View()
	l.applyDynamicConfig(view)
	if !l.deps.Store.LeaseValidUntil().After(l.now()) {
		kctx, cancel := shortCtx(ctx, min(time.Second, l.st.conf.dyn.RetryTimeoutDuration()))
		if _, err := l.deps.Store.KeepAlive(kctx); err != nil {
			l.log.Debug("lease keepalive failed", "err", err)
			l.st.lease.dcsFailing = true
		}
		cancel()
	}
	return view
}

// observe takes one consistent picture: the view, lease, postgres, the data
// directory and what the loop remembers. It writes nothing outside the loop's
// memory (the timestamps it keeps: first seen down, first seen without a leader, ...).
func (l *loop) observe(ctx context.Context, view cluster.View) plan.Observation {
	l.st.lease.lockLost = false
	l.st.lease.view = view
	now := l.now()
	l.st.lease.digest = plan.ViewDigest(view, l.cfg.Name, now, l.st.conf.dyn.TTLDuration())
	lease := l.deps.Store.LeaseValidUntil()
	pg := l.observePG(ctx)
	l.observeDataDir(ctx, pg)
	if !pg.Running {
		if l.st.pg.downSince.IsZero() {
			l.st.pg.downSince = now
		}
	} else {
		l.st.pg.downSince = time.Time{}
		l.st.pg.lastStartFailed = false
		l.st.pg.stopping = false
		l.st.pg.switchoverDemotedAt = time.Time{}
	}
	if pg.Running && pg.Ready && pg.InRecovery && !pg.Streaming {
		if l.st.pg.notStreamingSince.IsZero() {
			l.st.pg.notStreamingSince = now
		}
	} else {
		l.st.pg.notStreamingSince = time.Time{}
	}
	if view.Leader == nil {
		if l.st.lease.leaderGoneAt.IsZero() {
			l.st.lease.leaderGoneAt = now
		}
	} else {
		l.st.lease.leaderGoneAt = time.Time{}
		if l.st.pg.rewindFailed && view.Leader.Name != l.st.pg.rewindLeader {
			l.st.pg.rewindFailed = false
		}
	}
	l.st.lease.dcsOK = view.Valid(now, l.st.conf.dyn.TTLDuration()) || (!view.ReadAt.IsZero() && lease.After(now))
	if !view.Valid(now, l.st.conf.dyn.TTLDuration()) {
		l.st.lease.dcsFailing = true
	}
	if view.Leader == nil || view.Leader.Name != l.cfg.Name {
		l.st.long.prePromote, l.st.long.prePromoteRace = plan.PrePromoteNotRun, nil
	}
	return l.observation(now, view, lease)
}

// observation is the one constructor of an Observation: the loop's memory
// with the view, the lease and the time given. The cycle builds it after
// observe has refreshed that memory; an operation between cycles builds it
// from the Store's current view and lease (opObservation).
func (l *loop) observation(now time.Time, view cluster.View, lease time.Time) plan.Observation {
	usePgRewind := l.st.conf.dyn.UsePgRewind
	if l.cfg.UsePgRewind != nil {
		usePgRewind = *l.cfg.UsePgRewind
	}
	obs := plan.Observation{
		Now: now, Name: l.cfg.Name, Tags: plan.ParseTags(l.configTags()), Config: l.st.conf.dyn,
		UsePgRewind: usePgRewind, RemoveDataDirOnRewindFailure: l.cfg.RemoveDataDirOnRewindFailure,
		RemoveDataDirOnDivergedTimelines: l.cfg.RemoveDataDirOnDivergedTimelines, HasBootstrapConfig: l.cfg.HasBootstrap,
		View: view, DCSOK: l.st.lease.dcsOK, LeaseValidUntil: lease, FenceFailed: l.st.fence.failed,
		PG: l.st.pg.obs, Data: l.st.pg.data, PGDownSince: l.st.pg.downSince, LastStartFailed: l.st.pg.lastStartFailed,
		RewindFailed: l.st.pg.rewindFailed, Upstream: l.st.pg.upstream, ReleasedLockAt: l.st.lease.releasedAt,
		SwitchoverDemotedAt: l.st.pg.switchoverDemotedAt, LeaderGoneAt: l.st.lease.leaderGoneAt,
		NotStreamingSince: l.st.pg.notStreamingSince, FailsafeLeader: l.failsafeLeaderNow(now),
		RefusedConfig: l.st.conf.refused, Failsafe: l.failsafeFacts(),
		Callbacks:     plan.CallbackState{Called: l.st.cbCalled, Role: l.st.role},
		HasPrePromote: l.deps.Hooks != nil && l.deps.Hooks.Configured(cluster.PrePromote),
		PrePromote:    l.st.long.prePromote, PrePromoteFailedAt: l.st.long.prePromoteFailedAt,
		Sync: l.syncFacts(),
	}
	obs.CloneWithoutLeader = l.cfg.CloneWithoutLeader
	if fs := l.st.lease.fs; fs.engaged && fs.confirmed {
		obs.FailsafeConfirmed, obs.FailsafeUntil = true, fs.confirmedAt.Add(l.st.conf.dyn.TTLDuration())
	}
	obs.Long = l.st.long.run.action()
	return obs
}

// observePG queries postgres, bounded, and fills in its recovery state from
// what we know when the query failed (a primary that does not answer is still
// treated as writable).
func (l *loop) observePG(ctx context.Context) cluster.PGObservation {
	octx, cancel := shortCtx(ctx, min(2*time.Second, max(l.st.conf.dyn.RetryTimeoutDuration(), time.Second)))
	pg := l.deps.Postgres.Observe(octx)
	cancel()
	switch {
	case pg.Running && pg.Ready:
		l.st.pg.roleKnown, l.st.pg.inRecovery = true, pg.InRecovery
	case pg.Running && l.st.pg.roleKnown:
		pg.InRecovery = l.st.pg.inRecovery
	case pg.Running && l.st.pg.data.Control != nil:
		pg.InRecovery = plan.InRecoveryState(l.st.pg.data.Control.ClusterState)
	case !pg.Running:
		if l.st.long.run == nil {
			l.st.pg.roleKnown = false
		}
	}
	l.st.pg.obs = pg
	return pg
}

// observeDataDir refreshes the data directory facts (not while a long action rewrites it).
func (l *loop) observeDataDir(ctx context.Context, pg cluster.PGObservation) {
	if l.st.long.run != nil {
		return
	}
	empty, err := l.deps.Postgres.DataDirEmpty()
	data := plan.DataDir{Empty: empty}
	if err != nil {
		data.Err = err.Error()
	}
	switch {
	case empty || err != nil:
		l.st.pg.sysid = ""
	case !pg.Running || !pg.Ready || l.st.pg.sysid == "":
		cctx, cancel := shortCtx(ctx, max(l.st.conf.dyn.RetryTimeoutDuration(), time.Second))
		cd, cerr := l.deps.Postgres.ControlData(cctx)
		cancel()
		if cerr == nil {
			data.Control = &cd
			l.st.pg.sysid = cd.SystemID
		} else {
			l.log.Debug("pg_controldata failed", "err", cerr)
			data.Control = l.st.pg.data.Control
		}
	default:
		data.Control = l.st.pg.data.Control
	}
	l.st.pg.data = data
}

// applyDynamicConfig takes the config key (or keeps the last good one) and
// pushes a changed ttl to the Store.
func (l *loop) applyDynamicConfig(view cluster.View) {
	cfg := l.st.conf.dyn
	if view.Config != nil {
		cfg = *view.Config
	}
	if cfg.TTL < 1 {
		cfg.TTL = cluster.DefaultTTL
	}
	cfg.LoopWait = max(cfg.LoopWait, 1)
	cfg.RetryTimeout = max(cfg.RetryTimeout, 1)
	old := l.st.conf.dyn
	l.st.conf.dyn = cfg
	l.checkRefused(view)
	if cfg.TTL != l.st.conf.appliedTTL {
		l.deps.Store.SetTTL(cfg.TTLDuration())
		// The Store swaps the lease at its next renewal; the cycle that follows
		// re-attaches the leader key (UpdateLeader) to the new lease at once.
		l.st.conf.ttlPending = l.st.conf.appliedTTL != 0
		l.st.conf.appliedTTL = cfg.TTL
	}
	if rt, ok := l.deps.Store.(interface{ SetRetryTimeout(time.Duration) }); ok && cfg.RetryTimeout != old.RetryTimeout {
		rt.SetRetryTimeout(cfg.RetryTimeoutDuration())
	}
	if old.TTL != cfg.TTL || old.LoopWait != cfg.LoopWait || old.RetryTimeout != cfg.RetryTimeout {
		l.log.Info("timing settings", "ttl", cfg.TTL, "loop_wait", cfg.LoopWait, "retry_timeout", cfg.RetryTimeout,
			"fence_margin", plan.FenceMargin(cfg))
		if cfg.LoopWait+2*cfg.RetryTimeout > cfg.TTL {
			l.log.Warn("loop_wait + 2*retry_timeout > ttl; the demote deadline still holds but DCS hiccups may demote the primary",
				"ttl", cfg.TTL, "loop_wait", cfg.LoopWait, "retry_timeout", cfg.RetryTimeout)
		}
	}
	if old.Pause != cfg.Pause {
		l.log.Info("maintenance mode changed", "paused", cfg.Pause)
		if !cfg.Pause && !l.st.pg.downSince.IsZero() {
			// primary_start_timeout counts from the end of the pause, not from a crash during it.
			l.st.pg.downSince = l.now()
		}
	}
}

// record logs a decision once it was carried out, with Patroni's text for
// the outcome: at Info when its message changed or it changes something, at
// Debug when the same quiet message repeats.
func (l *loop) record(ctx context.Context, d plan.Decision) {
	quiet := d.Action == plan.ActionNone || d.Action == plan.ActionWait || d.Action == plan.ActionUpdateLock || d.Action == plan.ActionAskPeers
	lvl := slog.LevelInfo
	if quiet && d.Message == l.st.lastMsg {
		lvl = slog.LevelDebug
	}
	if d.Action == plan.ActionFatal {
		lvl = slog.LevelError
	}
	l.st.lastMsg = d.Message
	attrs := []any{"action", d.Action.String(), "reason", d.Reason}
	if d.Member != "" {
		attrs = append(attrs, "target", d.Member)
	}
	if d.Action == plan.ActionDemote {
		attrs = append(attrs, "mode", d.Demote.String(), "stop", string(d.Stop))
	}
	l.log.Log(ctx, lvl, d.Message, attrs...)
}

// refusedIn returns the settings of a config-key document pgnoded refuses.
func (sh *shared) refusedIn(doc map[string]any) []cluster.KeyIssue {
	if sh.cfg.RefusedConfig == nil || doc == nil {
		return nil
	}
	return sh.cfg.RefusedConfig(doc)
}

// checkRefused re-checks the config key whenever it changes; every change
// that leaves a refused setting in place is logged as an error again.
func (l *loop) checkRefused(view cluster.View) {
	if view.Config == nil || string(view.ConfigRaw) == l.st.conf.configSeen {
		return
	}
	l.st.conf.configSeen = string(view.ConfigRaw)
	was := len(l.st.conf.refused) > 0
	l.st.conf.refused = l.refusedIn(view.Config.Raw)
	for _, k := range l.st.conf.refused {
		l.log.Error("/config: "+k.String(), "key", k.Key,
			"consequence", "this node takes no leadership and promotes nothing until the setting is removed")
	}
	if l.cfg.WarnedConfig != nil {
		for _, k := range l.cfg.WarnedConfig(view.Config.Raw) {
			l.log.Warn("/config: "+k.String(), "key", k.Key)
		}
	}
	if was && len(l.st.conf.refused) == 0 {
		l.log.Info("/config: no refused settings any more; leader elections resume")
	}
}
