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
func (n *Node) cycle(ctx context.Context) {
	n.st.wakeAt = time.Time{}
	view := n.prepare(ctx)
	obs := n.observe(ctx, view)
	var p plan.Plan
	for round := 0; round < maxRounds; round++ {
		p = plan.Make(obs)
		if p.Failsafe != plan.FailsafeStay {
			n.applyFailsafe(ctx, p.Failsafe, p.FailsafeWhy, &obs)
			continue
		}
		if !n.step(ctx, p, &obs) {
			break
		}
	}
	if p.Action == plan.ActionUpdateLock && n.st.dcsFailing && !n.st.fs.engaged {
		// The leader-key update of this cycle failed: ask the members now
		// rather than a cycle later, when the hold may already be too short
		// to keep the VIP and to pat the fence.
		obs.Now = n.now()
		n.failsafeStep(ctx, &obs)
	}
	n.evaluateScheduledRestart(ctx)
	n.reconcileParams(ctx)
	if n.st.long == nil {
		n.keepReplicaSlots(ctx, obs)
	}
	n.finishCycle(ctx)
}

// step applies one plan: its intent is noted, its action applied, and its
// outcome logged once known. It reports whether to plan again.
func (n *Node) step(ctx context.Context, p plan.Plan, obs *plan.Observation) (replan bool) {
	d := p.Decision
	n.st.action = d.Message // the published action: what the loop is doing now
	attrs := []any{"action", d.Action.String(), "reason", d.Reason}
	if d.Member != "" {
		attrs = append(attrs, "target", d.Member)
	}
	n.log.Log(ctx, slog.LevelDebug, "planning to "+d.Action.String(), attrs...)
	n.st.pollAfter = p.PollAfter
	n.st.cycleOnRenewal = p.CycleOnRenewal
	replan, done := n.apply(ctx, p.Decision, obs)
	if done {
		n.record(ctx, p.Decision)
	}
	return replan
}

// prepare readies the cycle's inputs before anything is observed: a pending
// reload, the config key (timing pushed to the Store) and, when the lease has
// run out, a keepalive (the Store renews it on its own every
// KeepAliveInterval; this one renews a lease that ran out between them). It
// returns the view the cycle observes.
func (n *Node) prepare(ctx context.Context) cluster.View {
	if r := n.takeReload(); r != nil {
		if r.params != nil {
			n.st.localParams = r.params
		}
		n.st.reloadPG = true
	}
	view := n.deps.Store.View()
	n.applyDynamicConfig(view)
	if !n.deps.Store.LeaseValidUntil().After(n.now()) {
		kctx, cancel := shortCtx(ctx, min(time.Second, n.st.dyn.RetryTimeoutDuration()))
		if _, err := n.deps.Store.KeepAlive(kctx); err != nil {
			n.log.Debug("lease keepalive failed", "err", err)
			n.st.dcsFailing = true
		}
		cancel()
	}
	return view
}

// observe takes one consistent picture: the view, lease, postgres, the data
// directory and what the loop remembers. It writes nothing outside the loop's
// memory (the timestamps it keeps: first seen down, first seen without a leader, ...).
func (n *Node) observe(ctx context.Context, view cluster.View) plan.Observation {
	n.st.lockLost = false
	n.st.view = view
	now := n.now()
	n.st.digest = plan.ViewDigest(view, n.cfg.Name, now, n.st.dyn.TTLDuration())
	lease := n.deps.Store.LeaseValidUntil()
	pg := n.observePG(ctx)
	n.observeDataDir(ctx, pg)
	if !pg.Running {
		if n.st.pgDownSince.IsZero() {
			n.st.pgDownSince = now
		}
	} else {
		n.st.pgDownSince = time.Time{}
		n.st.lastStartFailed = false
		n.st.stopping = false
		n.st.switchoverDemotedAt = time.Time{}
	}
	if pg.Running && pg.Ready && pg.InRecovery && !pg.Streaming {
		if n.st.notStreamingSince.IsZero() {
			n.st.notStreamingSince = now
		}
	} else {
		n.st.notStreamingSince = time.Time{}
	}
	if view.Leader == nil {
		if n.st.leaderGoneAt.IsZero() {
			n.st.leaderGoneAt = now
		}
	} else {
		n.st.leaderGoneAt = time.Time{}
		if n.st.rewindFailed && view.Leader.Name != n.st.rewindLeader {
			n.st.rewindFailed = false
		}
	}
	n.st.dcsOK = view.Valid(now, n.st.dyn.TTLDuration()) || (!view.ReadAt.IsZero() && lease.After(now))
	if !view.Valid(now, n.st.dyn.TTLDuration()) {
		n.st.dcsFailing = true
	}
	if view.Leader == nil || view.Leader.Name != n.cfg.Name {
		n.st.prePromote, n.st.prePromoteRace = plan.PrePromoteNotRun, nil
	}
	return n.observation(now, view, lease)
}

// observation is the one constructor of an Observation: the loop's memory
// with the view, the lease and the time given. The cycle builds it after
// observe has refreshed that memory; an operation between cycles builds it
// from the Store's current view and lease (opObservation).
func (n *Node) observation(now time.Time, view cluster.View, lease time.Time) plan.Observation {
	usePgRewind := n.st.dyn.UsePgRewind
	if n.cfg.UsePgRewind != nil {
		usePgRewind = *n.cfg.UsePgRewind
	}
	obs := plan.Observation{
		Now: now, Name: n.cfg.Name, Tags: plan.ParseTags(n.configTags()), Config: n.st.dyn,
		UsePgRewind: usePgRewind, RemoveDataDirOnRewindFailure: n.cfg.RemoveDataDirOnRewindFailure,
		RemoveDataDirOnDivergedTimelines: n.cfg.RemoveDataDirOnDivergedTimelines, HasBootstrapConfig: n.cfg.HasBootstrap,
		View: view, DCSOK: n.st.dcsOK, LeaseValidUntil: lease, FenceFailed: n.st.fenceFailed,
		PG: n.st.pg, Data: n.st.data, PGDownSince: n.st.pgDownSince, LastStartFailed: n.st.lastStartFailed,
		RewindFailed: n.st.rewindFailed, Upstream: n.st.upstream, ReleasedLockAt: n.st.releasedAt,
		SwitchoverDemotedAt: n.st.switchoverDemotedAt, LeaderGoneAt: n.st.leaderGoneAt,
		NotStreamingSince: n.st.notStreamingSince, FailsafeLeader: n.failsafeLeaderNow(now),
		RefusedConfig: n.st.refused, Failsafe: n.failsafeFacts(),
		Callbacks:     plan.CallbackState{Called: n.st.cbCalled, Role: n.st.role},
		HasPrePromote: n.deps.Hooks != nil && n.deps.Hooks.Configured(cluster.PrePromote),
		PrePromote:    n.st.prePromote, PrePromoteFailedAt: n.st.prePromoteFailedAt,
	}
	if fs := n.st.fs; fs.engaged && fs.confirmed {
		obs.FailsafeConfirmed, obs.FailsafeUntil = true, fs.confirmedAt.Add(n.st.dyn.TTLDuration())
	}
	obs.Long = n.st.long.action()
	return obs
}

// observePG queries postgres, bounded, and fills in its recovery state from
// what we know when the query failed (a primary that does not answer is still
// treated as writable).
func (n *Node) observePG(ctx context.Context) cluster.PGObservation {
	octx, cancel := shortCtx(ctx, min(2*time.Second, max(n.st.dyn.RetryTimeoutDuration(), time.Second)))
	pg := n.deps.Postgres.Observe(octx)
	cancel()
	switch {
	case pg.Running && pg.Ready:
		n.st.roleKnown, n.st.inRecovery = true, pg.InRecovery
	case pg.Running && n.st.roleKnown:
		pg.InRecovery = n.st.inRecovery
	case pg.Running && n.st.data.Control != nil:
		pg.InRecovery = plan.InRecoveryState(n.st.data.Control.ClusterState)
	case !pg.Running:
		if n.st.long == nil {
			n.st.roleKnown = false
		}
	}
	n.st.pg = pg
	return pg
}

// observeDataDir refreshes the data directory facts (not while a long action rewrites it).
func (n *Node) observeDataDir(ctx context.Context, pg cluster.PGObservation) {
	if n.st.long != nil {
		return
	}
	empty, err := n.deps.Postgres.DataDirEmpty()
	data := plan.DataDir{Empty: empty}
	if err != nil {
		data.Err = err.Error()
	}
	switch {
	case empty || err != nil:
		n.st.sysid = ""
	case !pg.Running || !pg.Ready || n.st.sysid == "":
		cctx, cancel := shortCtx(ctx, max(n.st.dyn.RetryTimeoutDuration(), time.Second))
		cd, cerr := n.deps.Postgres.ControlData(cctx)
		cancel()
		if cerr == nil {
			data.Control = &cd
			n.st.sysid = cd.SystemID
		} else {
			n.log.Debug("pg_controldata failed", "err", cerr)
			data.Control = n.st.data.Control
		}
	default:
		data.Control = n.st.data.Control
	}
	n.st.data = data
}

// applyDynamicConfig takes the config key (or keeps the last good one) and
// pushes a changed ttl to the Store.
func (n *Node) applyDynamicConfig(view cluster.View) {
	cfg := n.st.dyn
	if view.Config != nil {
		cfg = *view.Config
	}
	if cfg.TTL < 1 {
		cfg.TTL = cluster.DefaultTTL
	}
	cfg.LoopWait = max(cfg.LoopWait, 1)
	cfg.RetryTimeout = max(cfg.RetryTimeout, 1)
	old := n.st.dyn
	n.st.dyn = cfg
	n.checkRefused(view)
	if cfg.TTL != n.st.appliedTTL {
		n.deps.Store.SetTTL(cfg.TTLDuration())
		// The Store swaps the lease at its next renewal; the cycle that follows
		// re-attaches the leader key (UpdateLeader) to the new lease at once.
		n.st.ttlPending = n.st.appliedTTL != 0
		n.st.appliedTTL = cfg.TTL
	}
	if rt, ok := n.deps.Store.(interface{ SetRetryTimeout(time.Duration) }); ok && cfg.RetryTimeout != old.RetryTimeout {
		rt.SetRetryTimeout(cfg.RetryTimeoutDuration())
	}
	if old.TTL != cfg.TTL || old.LoopWait != cfg.LoopWait || old.RetryTimeout != cfg.RetryTimeout {
		n.log.Info("timing settings", "ttl", cfg.TTL, "loop_wait", cfg.LoopWait, "retry_timeout", cfg.RetryTimeout,
			"fence_margin", plan.FenceMargin(cfg))
		if cfg.LoopWait+2*cfg.RetryTimeout > cfg.TTL {
			n.log.Warn("loop_wait + 2*retry_timeout > ttl; the demote deadline still holds but DCS hiccups may demote the primary",
				"ttl", cfg.TTL, "loop_wait", cfg.LoopWait, "retry_timeout", cfg.RetryTimeout)
		}
	}
	if old.Pause != cfg.Pause {
		n.log.Info("maintenance mode changed", "paused", cfg.Pause)
		if !cfg.Pause && !n.st.pgDownSince.IsZero() {
			// primary_start_timeout counts from the end of the pause, not from a crash during it.
			n.st.pgDownSince = n.now()
		}
	}
}

// record logs a decision once it was carried out, with Patroni's text for
// the outcome: at Info when its message changed or it changes something, at
// Debug when the same quiet message repeats.
func (n *Node) record(ctx context.Context, d plan.Decision) {
	quiet := d.Action == plan.ActionNone || d.Action == plan.ActionWait || d.Action == plan.ActionUpdateLock || d.Action == plan.ActionAskPeers
	lvl := slog.LevelInfo
	if quiet && d.Message == n.st.lastMsg {
		lvl = slog.LevelDebug
	}
	if d.Action == plan.ActionFatal {
		lvl = slog.LevelError
	}
	n.st.lastMsg = d.Message
	attrs := []any{"action", d.Action.String(), "reason", d.Reason}
	if d.Member != "" {
		attrs = append(attrs, "target", d.Member)
	}
	if d.Action == plan.ActionDemote {
		attrs = append(attrs, "mode", d.Demote.String(), "stop", string(d.Stop))
	}
	n.log.Log(ctx, lvl, d.Message, attrs...)
}

// refusedIn returns the settings of a config-key document pgnoded refuses.
func (n *Node) refusedIn(doc map[string]any) []cluster.KeyIssue {
	if n.cfg.RefusedConfig == nil || doc == nil {
		return nil
	}
	return n.cfg.RefusedConfig(doc)
}

// checkRefused re-checks the config key whenever it changes; every change
// that leaves a refused setting in place is logged as an error again.
func (n *Node) checkRefused(view cluster.View) {
	if view.Config == nil || string(view.ConfigRaw) == n.st.configSeen {
		return
	}
	n.st.configSeen = string(view.ConfigRaw)
	was := len(n.st.refused) > 0
	n.st.refused = n.refusedIn(view.Config.Raw)
	for _, k := range n.st.refused {
		n.log.Error("/config: "+k.String(), "key", k.Key,
			"consequence", "this node takes no leadership and promotes nothing until the setting is removed")
	}
	if n.cfg.WarnedConfig != nil {
		for _, k := range n.cfg.WarnedConfig(view.Config.Raw) {
			n.log.Warn("/config: "+k.String(), "key", k.Key)
		}
	}
	if was && len(n.st.refused) == 0 {
		n.log.Info("/config: no refused settings any more; leader elections resume")
	}
}
