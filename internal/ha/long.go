package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// Long actions (bootstrap, clone, start, rewind, reinitialize) run in one
// worker goroutine at a time, owned by the loop: the loop keeps cycling (the
// demote deadline and lease upkeep never wait for them), sees them in
// Observation.Long, and can cancel them. Workers only call the deps with
// values captured at launch; they report back through longRun.result.

func (l *loop) launch(ctx context.Context, kind plan.LongKind, asReplica *bool, fn func(context.Context) longResult) {
	if at, ok := l.st.long.failedAt[kind]; ok && l.now().Sub(at) < l.st.conf.dyn.LoopWaitDuration() {
		l.st.action = fmt.Sprintf("backing off: the last %s failed less than loop_wait ago", kind)
		l.log.Debug(l.st.action)
		return
	}
	lctx, cancel := context.WithCancel(ctx)
	lr := &longRun{kind: kind, since: l.now(), cancel: cancel, result: make(chan longResult, 1), done: make(chan struct{})}
	l.st.long.run = lr
	if asReplica != nil {
		l.st.pg.roleKnown, l.st.pg.inRecovery = true, *asReplica
	}
	if l.hooks.longStarted != nil {
		l.hooks.longStarted()
	}
	l.log.Info("long action started", "kind", kind.String())
	go func() {
		defer close(lr.done)
		res := fn(lctx)
		res.kind = kind
		lr.result <- res
	}()
}

// finishLong takes a long action's result into the loop state.
func (l *loop) finishLong(res longResult) {
	lr := l.st.long.run
	l.st.long.run = nil
	if l.hooks.longFinished != nil {
		l.hooks.longFinished()
	}
	if lr != nil {
		lr.cancel()
	}
	if res.upstream != nil {
		l.st.pg.upstream = *res.upstream
	}
	if res.startedAs != nil {
		l.st.pg.roleKnown, l.st.pg.inRecovery = true, *res.startedAs
	}
	if res.sysid != "" {
		l.st.pg.sysid = res.sysid
	}
	if res.kind == plan.LongPrePromote {
		l.st.long.prePromote = res.prePromote
		l.st.sched.recycle = true
	}
	if lr != nil && res.err == nil {
		l.fire(lr.callbacks, plan.AfterStart)
	}
	if lr != nil && lr.endsSyncRelease {
		l.endSyncRelease()
	}
	if lr != nil && lr.waiter != nil {
		if res.err == nil {
			replyTo(lr.waiter, cluster.Done("restarted successfully"), nil)
		} else {
			replyTo(lr.waiter, cluster.OpResult{}, errRestartFailed)
		}
	}
	if res.err == nil {
		delete(l.st.long.failedAt, res.kind)
		l.log.Info("long action finished", "kind", res.kind.String())
		return
	}
	if l.st.long.failedAt == nil {
		l.st.long.failedAt = map[plan.LongKind]time.Time{}
	}
	l.st.long.failedAt[res.kind] = l.now()
	cancelled := lr != nil && lr.cancelled && errors.Is(res.err, context.Canceled)
	l.log.Error("long action failed", "kind", res.kind.String(), "cancelled", cancelled, "err", res.err)
	if res.remoteClone && !cancelled {
		l.st.upstreamErr = res.err.Error()
	}
	switch res.kind {
	case plan.LongBootstrap:
		if !cancelled {
			l.st.fatal = fmt.Errorf("%w: bootstrap failed (initialize key removed, data directory wiped): %v", ErrFatal, res.err)
		}
	case plan.LongStartPrimary, plan.LongStartReplica:
		l.st.pg.lastStartFailed = true
	case plan.LongRewind:
		if res.rewindFailed {
			l.st.pg.rewindFailed, l.st.pg.rewindLeader = true, res.leader
		}
	}
}

// cancelLong cancels the running long action and waits (bounded) for it to report.
func (l *loop) cancelLong() {
	lr := l.st.long.run
	if lr == nil {
		return
	}
	lr.cancel()
	lr.cancelled = true
	t := time.NewTimer(max(l.st.conf.dyn.RetryTimeoutDuration(), time.Second))
	defer t.Stop()
	select {
	case res := <-lr.result:
		l.finishLong(res)
	case <-t.C:
		l.log.Warn("long action did not stop in time after cancel", "kind", lr.kind.String())
	}
}

// stopLong ends the running long action when Run returns (it owns the goroutine).
func (l *loop) stopLong() {
	lr := l.st.long.run
	if lr == nil {
		return
	}
	lr.cancel()
	lr.cancelled = true
	<-lr.done
	l.finishLong(<-lr.result)
}

// bootstrap wins the initialize race, takes the leader key, then initdb and
// start as primary in the background; the fence is armed before postgres exists.
func (l *loop) bootstrap(ctx context.Context, o plan.Observation) {
	if !l.claimBootstrap(ctx, "bootstrap") {
		return
	}
	l.st.fence.want = true
	l.armFence()
	opts := l.primaryOpts(o.Config)
	l.noteParams(opts)
	rawCfg := l.bootstrapConfigJSON()
	creds := l.cfg.Credentials
	pg, store := l.deps.Postgres, l.deps.Store
	custom := l.cfg.CustomBootstrap
	primary := false
	l.launch(ctx, plan.LongBootstrap, &primary, func(ctx context.Context) longResult {
		fail := func(step string, err error) longResult {
			undoBootstrap(ctx, pg, store)
			return longResult{err: fmt.Errorf("%s: %w", step, err)}
		}
		if custom {
			if err := pg.CustomBootstrap(ctx, opts); err != nil {
				return fail("custom bootstrap", err)
			}
		} else if err := pg.Initdb(ctx); err != nil {
			return fail("initdb", err)
		}
		if err := pg.Start(ctx, opts); err != nil {
			return fail("start", err)
		}
		cd, err := pg.ControlData(ctx)
		if err != nil {
			return fail("pg_controldata", err)
		}
		if err := createRoles(ctx, pg, creds); err != nil {
			return fail("create roles", err)
		}
		if err := pg.RunPostBootstrap(ctx); err != nil {
			return fail("post_bootstrap", err)
		}
		if err := store.SetInitialize(ctx, cd.SystemID); err != nil {
			return fail("write initialize", err)
		}
		if _, err := store.SetConfig(ctx, rawCfg, 0); err != nil {
			return fail("write config", err)
		}
		started := false
		return longResult{sysid: cd.SystemID, startedAs: &started}
	})
}

// claimBootstrap wins the initialize race and takes the leader key before a
// bootstrap (what names it in the log); false: the race or the key was lost,
// and initialize was given back in the latter case.
func (l *loop) claimBootstrap(ctx context.Context, what string) bool {
	octx, cancel := l.opCtx(ctx)
	defer cancel()
	won, err := l.deps.Store.AttemptInitialize(octx)
	if err != nil || !won {
		l.st.action = "failed to acquire initialize lock"
		l.log.Info(l.st.action, "err", err)
		return false
	}
	if ok, err := l.deps.Store.AcquireLeader(octx); err != nil || !ok {
		l.log.Warn("won the initialize race but not the leader key; giving up the "+what, "err", err)
		if err := l.deps.Store.CancelInitialize(octx); err != nil {
			l.log.Warn("cannot cancel the initialize key", "err", err)
		}
		return false
	}
	l.st.lease.view.Leader = &cluster.LeaderKey{Name: l.cfg.Name}
	return true
}

// undoBootstrap undoes a failed bootstrap (postgres, the data directory, the
// leader key, initialize) so that another node, or this one restarted, can
// bootstrap cleanly; it runs on a context that outlives the cancelled action.
func undoBootstrap(ctx context.Context, pg Postgres, store Store) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = pg.Stop(cctx, cluster.StopImmediate)
	_ = pg.RemoveDataDir(cctx)
	_ = store.ReleaseLeader(cctx)
	_ = store.CancelInitialize(cctx)
}

// bootstrapConfigJSON is bootstrap.dcs with Patroni's timing defaults filled in.
func (l *loop) bootstrapConfigJSON() []byte {
	m := map[string]any{
		"ttl": cluster.DefaultTTL, "loop_wait": cluster.DefaultLoopWait, "retry_timeout": cluster.DefaultRetryTimeout,
		"maximum_lag_on_failover": cluster.DefaultMaximumLagOnFailover,
	}
	for k, v := range l.cfg.BootstrapDCS {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil { // bootstrap.dcs came from YAML/JSON; this cannot fail for such values
		l.log.Error("cannot encode bootstrap.dcs", "err", err)
		return []byte("{}")
	}
	return b
}

// launchStart starts postgres as primary (we hold the key) or as a replica of target ("" = standalone).
func (l *loop) launchStart(ctx context.Context, o plan.Observation, asReplica bool, target string) {
	l.launchStartTimeout(ctx, o, asReplica, target, 0)
}

// launchStartTimeout is launchStart with the start budget set (0: the configured one).
func (l *loop) launchStartTimeout(ctx context.Context, o plan.Observation, asReplica bool, target string, timeout time.Duration) {
	var opts cluster.StartOptions
	var up plan.Upstream
	kind := plan.LongStartPrimary
	if asReplica {
		var err error
		if opts, up, err = l.replicaOpts(o.View, o.Config, target); err != nil {
			l.log.Warn("cannot build the recovery configuration; starting standalone", "target", target, "err", err)
			opts, up, _ = l.replicaOpts(o.View, o.Config, "")
		}
		kind = plan.LongStartReplica
	} else {
		opts = l.primaryOpts(o.Config)
		l.st.fence.want = true
		l.armFence() // before postgres can accept writes
	}
	if timeout > 0 {
		opts.Timeout = timeout
	}
	l.noteParams(opts)
	pg := l.deps.Postgres
	l.launch(ctx, kind, &asReplica, func(ctx context.Context) longResult {
		if err := pg.Start(ctx, opts); err != nil {
			return longResult{err: fmt.Errorf("start: %w", err)}
		}
		res := longResult{startedAs: &asReplica}
		if asReplica {
			res.upstream = &up
		}
		return res
	})
}

// launchPrePromote runs postgresql.pre_promote in the background: the loop
// keeps renewing the key meanwhile; a pass lets the next decision promote, a
// failure makes it give the key up (Patroni's _pre_promote).
func (l *loop) launchPrePromote(ctx context.Context) {
	h := l.deps.Hooks
	replica := true
	l.launch(ctx, plan.LongPrePromote, &replica, func(ctx context.Context) longResult {
		if h == nil {
			return longResult{prePromote: plan.PrePromotePassed}
		}
		if _, exit, err := h.Run(ctx, cluster.PrePromote); err != nil || exit != 0 {
			return longResult{prePromote: plan.PrePromoteFailed}
		}
		return longResult{prePromote: plan.PrePromotePassed}
	})
}

// launchClone builds the data directory from src by create_replica_methods and
// starts as a replica of the follow target; src "" clones with no member to
// clone from (the no_leader methods only).
func (l *loop) launchClone(ctx context.Context, o plan.Observation, src string) {
	var ci cluster.ConnInfo
	if src != "" {
		var ok bool
		if ci, ok = l.sourceConnInfo(o, src, l.cfg.Credentials.Replication, "clone"); !ok {
			return
		}
	}
	opts, up := l.followOpts(o)
	pg := l.deps.Postgres
	replica := true
	l.launch(ctx, plan.LongClone, &replica, func(ctx context.Context) longResult {
		if err := pg.Clone(ctx, ci, cluster.CloneOptions{}); err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = pg.RemoveDataDir(cctx)
			if src == "" {
				return longResult{err: fmt.Errorf("clone without a leader: %w", err)}
			}
			return longResult{err: fmt.Errorf("clone from %s (%s): %w", src, hostPort(ci), err)}
		}
		if err := pg.Start(ctx, opts); err != nil {
			return longResult{err: fmt.Errorf("start after clone: %w", err)}
		}
		return longResult{upstream: &up, startedAs: &replica}
	})
}

// launchRewind stops postgres if needed, rewinds it from the leader and starts it as a replica.
func (l *loop) launchRewind(ctx context.Context, o plan.Observation, leader string) {
	ci, ok := l.sourceConnInfo(o, leader, l.cfg.Credentials.RewindRole(), "rewind")
	if !ok {
		return
	}
	pg := l.deps.Postgres
	l.launchOverStopped(ctx, o, plan.LongRewind, cluster.StopFast, "pg_rewind", func(ctx context.Context) *longResult {
		if err := pg.Rewind(ctx, ci); err != nil {
			return &longResult{err: fmt.Errorf("pg_rewind from %s: %w", leader, err), rewindFailed: true, leader: leader}
		}
		return nil
	})
}

// launchReinit wipes the data directory and clones again from leader (config
// allowed it) by create_replica_methods, or as copts says (from_leader: basebackup only).
func (l *loop) launchReinit(ctx context.Context, o plan.Observation, leader string, copts cluster.CloneOptions) {
	ci, ok := l.sourceConnInfo(o, leader, l.cfg.Credentials.Replication, "reinitialize")
	if !ok {
		return
	}
	pg := l.deps.Postgres
	l.launchOverStopped(ctx, o, plan.LongReinitialize, cluster.StopImmediate, "reinitialize", func(ctx context.Context) *longResult {
		if err := pg.RemoveDataDir(ctx); err != nil {
			return &longResult{err: fmt.Errorf("remove data directory: %w", err)}
		}
		if err := pg.Clone(ctx, ci, copts); err != nil {
			_ = pg.RemoveDataDir(context.WithoutCancel(ctx))
			return &longResult{err: fmt.Errorf("clone from %s: %w", leader, err)}
		}
		return nil
	})
}

// sourceConnInfo is how to reach member src with cred; false (logged as
// "cannot <action>") when its conn_url is unusable.
func (l *loop) sourceConnInfo(o plan.Observation, src string, cred Credential, action string) (cluster.ConnInfo, bool) {
	if src == plan.RemotePrimary {
		ci, err := remoteConnInfo(o.Config.StandbyCluster, cred)
		if err != nil {
			l.log.Warn("cannot "+action, "source", "standby_cluster", "err", err)
		}
		return ci, err == nil
	}
	m, _ := o.Member(src)
	ci, err := connInfo(m.ConnURL, cred)
	if err != nil {
		l.log.Warn("cannot "+action, "source", src, "err", err)
		return ci, false
	}
	return ci, true
}

// launchOverStopped runs a long action of kind that stops postgres (mode) when
// it is running, runs step on the data directory, and starts postgres as a
// replica of the follow target; a non-nil result from step ends it there.
// verb names the step in the stop and start errors.
func (l *loop) launchOverStopped(ctx context.Context, o plan.Observation, kind plan.LongKind, mode cluster.StopMode, verb string,
	step func(ctx context.Context) *longResult) {
	opts, up := l.followOpts(o)
	running := o.PG.Running
	if running {
		l.st.pg.stopping = true
	}
	pg := l.deps.Postgres
	hooks, log := l.deps.Hooks, l.log
	var stopped []plan.PlannedCallback
	if d := l.st.deciding; d != nil {
		stopped = hooksFor(d.Callbacks, plan.AfterStop)
	}
	replica := true
	l.launch(ctx, kind, &replica, func(ctx context.Context) longResult {
		if running {
			runBeforeStop(ctx, hooks, beforeStopLimit, log)
			if err := pg.Stop(ctx, mode); err != nil {
				return longResult{err: fmt.Errorf("stop before %s: %w", verb, err)}
			}
			fireFrom(hooks, stopped)
		}
		if res := step(ctx); res != nil {
			return *res
		}
		if err := pg.Start(ctx, opts); err != nil {
			return longResult{err: fmt.Errorf("start after %s: %w", verb, err)}
		}
		return longResult{upstream: &up, startedAs: &replica}
	})
}

// primaryOpts are the start options of a primary: budget primary_start_timeout when set.
func (l *loop) primaryOpts(cfg cluster.DynamicConfig) cluster.StartOptions {
	timeout := l.cfg.StartTimeout
	if cfg.PrimaryStartTimeout > 0 {
		timeout = time.Duration(cfg.PrimaryStartTimeout) * time.Second
	}
	return cluster.StartOptions{Timeout: timeout, Params: l.params(cfg)}
}

// followOpts are the options to start as a replica of the follow target after a
// clone, rewind or reinitialize; without a usable target, a standalone replica
// (replicaOpts with no target). The parameters are noted as the ones in effect.
func (l *loop) followOpts(o plan.Observation) (cluster.StartOptions, plan.Upstream) {
	opts, up, err := l.replicaOpts(o.View, o.Config, plan.FollowTarget(o))
	if err != nil {
		opts, up, _ = l.replicaOpts(o.View, o.Config, "")
	}
	l.noteParams(opts)
	return opts, up
}

// replicaOpts are the start/reload options of a replica following target ("" = standalone).
// The slot is ours on the leader (the leader creates one per member); none when cascading.
func (l *loop) replicaOpts(v cluster.View, cfg cluster.DynamicConfig, target string) (cluster.StartOptions, plan.Upstream, error) {
	opts := cluster.StartOptions{AsReplica: true, Timeout: l.cfg.StartTimeout, Params: l.params(cfg)}
	opts.Recovery.ApplicationName = l.cfg.Name
	up := plan.Upstream{Known: true, Name: target}
	if sc := cfg.StandbyCluster; sc.Active() {
		// Every member of a standby cluster recovers from the archive too (Patroni's _get_node_to_follow).
		opts.Recovery.RestoreCommand, opts.Recovery.ArchiveCleanupCommand = sc.RestoreCommand, sc.ArchiveCleanupCommand
	}
	if target == plan.RemotePrimary {
		return l.remoteReplicaOpts(opts, cfg)
	}
	if target == "" {
		return opts, up, nil
	}
	m, ok := v.Members[target]
	if !ok {
		return opts, plan.Upstream{Known: true}, fmt.Errorf("member %s has no member key", target)
	}
	ci, err := connInfo(m.ConnURL, l.cfg.Credentials.Replication)
	if err != nil {
		return opts, plan.Upstream{Known: true}, err
	}
	opts.Recovery.Upstream = ci
	up.ConnURL = m.ConnURL
	if cfg.UseSlots && v.Leader != nil && v.Leader.Name == target {
		opts.Recovery.SlotName = cluster.SlotName(l.cfg.Name)
	}
	return opts, up, nil
}

// params merges postgresql.parameters: dynamic first, local values win.
func (l *loop) params(cfg cluster.DynamicConfig) map[string]any {
	out := make(map[string]any, len(cfg.Parameters)+len(l.st.conf.localParams))
	for k, v := range cfg.Parameters {
		out[k] = v
	}
	for k, v := range l.st.conf.localParams {
		out[k] = v
	}
	l.overrideSyncParam(cfg, out)
	return out
}
