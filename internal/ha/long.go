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

func (n *Node) launch(ctx context.Context, kind plan.LongKind, asReplica *bool, fn func(context.Context) longResult) {
	if at, ok := n.st.longFailedAt[kind]; ok && n.now().Sub(at) < n.st.dyn.LoopWaitDuration() {
		n.st.action = fmt.Sprintf("backing off: the last %s failed less than loop_wait ago", kind)
		n.log.Debug(n.st.action)
		return
	}
	lctx, cancel := context.WithCancel(ctx)
	lr := &longRun{kind: kind, since: n.now(), cancel: cancel, result: make(chan longResult, 1), done: make(chan struct{})}
	n.st.long = lr
	if asReplica != nil {
		n.st.roleKnown, n.st.inRecovery = true, *asReplica
	}
	if n.hooks.longStarted != nil {
		n.hooks.longStarted()
	}
	n.log.Info("long action started", "kind", kind.String())
	go func() {
		defer close(lr.done)
		res := fn(lctx)
		res.kind = kind
		lr.result <- res
	}()
}

// finishLong takes a long action's result into the loop state.
func (n *Node) finishLong(res longResult) {
	lr := n.st.long
	n.st.long = nil
	if n.hooks.longFinished != nil {
		n.hooks.longFinished()
	}
	if lr != nil {
		lr.cancel()
	}
	if res.upstream != nil {
		n.st.upstream = *res.upstream
	}
	if res.startedAs != nil {
		n.st.roleKnown, n.st.inRecovery = true, *res.startedAs
	}
	if res.sysid != "" {
		n.st.sysid = res.sysid
	}
	if res.kind == plan.LongPrePromote {
		n.st.prePromote = res.prePromote
		n.st.recycle = true
	}
	if lr != nil && res.err == nil {
		n.fire(lr.callbacks, plan.AfterStart)
	}
	if lr != nil && lr.waiter != nil {
		if res.err == nil {
			replyTo(lr.waiter, cluster.Done("restarted successfully"), nil)
		} else {
			replyTo(lr.waiter, cluster.OpResult{}, errRestartFailed)
		}
	}
	if res.err == nil {
		delete(n.st.longFailedAt, res.kind)
		n.log.Info("long action finished", "kind", res.kind.String())
		return
	}
	if n.st.longFailedAt == nil {
		n.st.longFailedAt = map[plan.LongKind]time.Time{}
	}
	n.st.longFailedAt[res.kind] = n.now()
	cancelled := lr != nil && lr.cancelled && errors.Is(res.err, context.Canceled)
	n.log.Error("long action failed", "kind", res.kind.String(), "cancelled", cancelled, "err", res.err)
	switch res.kind {
	case plan.LongBootstrap:
		if !cancelled {
			n.st.fatal = fmt.Errorf("%w: bootstrap failed (initialize key removed, data directory wiped): %v", ErrFatal, res.err)
		}
	case plan.LongStartPrimary, plan.LongStartReplica:
		n.st.lastStartFailed = true
	case plan.LongRewind:
		if res.rewindFailed {
			n.st.rewindFailed, n.st.rewindLeader = true, res.leader
		}
	}
}

// cancelLong cancels the running long action and waits (bounded) for it to report.
func (n *Node) cancelLong() {
	lr := n.st.long
	if lr == nil {
		return
	}
	lr.cancel()
	lr.cancelled = true
	t := time.NewTimer(max(n.st.dyn.RetryTimeoutDuration(), time.Second))
	defer t.Stop()
	select {
	case res := <-lr.result:
		n.finishLong(res)
	case <-t.C:
		n.log.Warn("long action did not stop in time after cancel", "kind", lr.kind.String())
	}
}

// stopLong ends the running long action when Run returns (it owns the goroutine).
func (n *Node) stopLong() {
	lr := n.st.long
	if lr == nil {
		return
	}
	lr.cancel()
	lr.cancelled = true
	<-lr.done
	n.finishLong(<-lr.result)
}

// bootstrap wins the initialize race, takes the leader key, then initdb and
// start as primary in the background; the fence is armed before postgres exists.
func (n *Node) bootstrap(ctx context.Context, o plan.Observation) {
	octx, cancel := n.opCtx(ctx)
	defer cancel()
	won, err := n.deps.Store.AttemptInitialize(octx)
	if err != nil || !won {
		n.st.action = "failed to acquire initialize lock"
		n.log.Info(n.st.action, "err", err)
		return
	}
	if ok, err := n.deps.Store.AcquireLeader(octx); err != nil || !ok {
		n.log.Warn("won the initialize race but not the leader key; giving up the bootstrap", "err", err)
		if err := n.deps.Store.CancelInitialize(octx); err != nil {
			n.log.Warn("cannot cancel the initialize key", "err", err)
		}
		return
	}
	n.st.view.Leader = &cluster.LeaderKey{Name: n.cfg.Name}
	n.st.fenceWant = true
	n.armFence()
	opts := n.primaryOpts(o.Config)
	n.noteParams(opts)
	rawCfg := n.bootstrapConfigJSON()
	creds := n.cfg.Credentials
	pg, store := n.deps.Postgres, n.deps.Store
	primary := false
	n.launch(ctx, plan.LongBootstrap, &primary, func(ctx context.Context) longResult {
		fail := func(step string, err error) longResult {
			// Undo everything so that another node (or this one, restarted) can bootstrap cleanly.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = pg.Stop(cctx, cluster.StopImmediate)
			_ = pg.RemoveDataDir(cctx)
			_ = store.ReleaseLeader(cctx)
			_ = store.CancelInitialize(cctx)
			return longResult{err: fmt.Errorf("%s: %w", step, err)}
		}
		if err := pg.Initdb(ctx); err != nil {
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

// bootstrapConfigJSON is bootstrap.dcs with Patroni's timing defaults filled in.
func (n *Node) bootstrapConfigJSON() []byte {
	m := map[string]any{
		"ttl": cluster.DefaultTTL, "loop_wait": cluster.DefaultLoopWait, "retry_timeout": cluster.DefaultRetryTimeout,
		"maximum_lag_on_failover": cluster.DefaultMaximumLagOnFailover,
	}
	for k, v := range n.cfg.BootstrapDCS {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil { // bootstrap.dcs came from YAML/JSON; this cannot fail for such values
		n.log.Error("cannot encode bootstrap.dcs", "err", err)
		return []byte("{}")
	}
	return b
}

// launchStart starts postgres as primary (we hold the key) or as a replica of target ("" = standalone).
func (n *Node) launchStart(ctx context.Context, o plan.Observation, asReplica bool, target string) {
	n.launchStartTimeout(ctx, o, asReplica, target, 0)
}

// launchStartTimeout is launchStart with the start budget set (0: the configured one).
func (n *Node) launchStartTimeout(ctx context.Context, o plan.Observation, asReplica bool, target string, timeout time.Duration) {
	var opts cluster.StartOptions
	var up plan.Upstream
	kind := plan.LongStartPrimary
	if asReplica {
		var err error
		if opts, up, err = n.replicaOpts(o.View, o.Config, target); err != nil {
			n.log.Warn("cannot build the recovery configuration; starting standalone", "target", target, "err", err)
			opts, up, _ = n.replicaOpts(o.View, o.Config, "")
		}
		kind = plan.LongStartReplica
	} else {
		opts = n.primaryOpts(o.Config)
		n.st.fenceWant = true
		n.armFence() // before postgres can accept writes
	}
	if timeout > 0 {
		opts.Timeout = timeout
	}
	n.noteParams(opts)
	pg := n.deps.Postgres
	n.launch(ctx, kind, &asReplica, func(ctx context.Context) longResult {
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
func (n *Node) launchPrePromote(ctx context.Context) {
	h := n.deps.Hooks
	replica := true
	n.launch(ctx, plan.LongPrePromote, &replica, func(ctx context.Context) longResult {
		if h == nil {
			return longResult{prePromote: plan.PrePromotePassed}
		}
		if _, exit, err := h.Run(ctx, cluster.PrePromote); err != nil || exit != 0 {
			return longResult{prePromote: plan.PrePromoteFailed}
		}
		return longResult{prePromote: plan.PrePromotePassed}
	})
}

// launchClone runs pg_basebackup from src and starts as a replica of the follow target.
func (n *Node) launchClone(ctx context.Context, o plan.Observation, src string) {
	ci, ok := n.sourceConnInfo(o, src, n.cfg.Credentials.Replication, "clone")
	if !ok {
		return
	}
	opts, up := n.followOpts(o)
	pg := n.deps.Postgres
	replica := true
	n.launch(ctx, plan.LongClone, &replica, func(ctx context.Context) longResult {
		if err := pg.Clone(ctx, ci); err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = pg.RemoveDataDir(cctx)
			return longResult{err: fmt.Errorf("clone from %s (%s): %w", src, hostPort(ci), err)}
		}
		if err := pg.Start(ctx, opts); err != nil {
			return longResult{err: fmt.Errorf("start after clone: %w", err)}
		}
		return longResult{upstream: &up, startedAs: &replica}
	})
}

// launchRewind stops postgres if needed, rewinds it from the leader and starts it as a replica.
func (n *Node) launchRewind(ctx context.Context, o plan.Observation, leader string) {
	cred := n.cfg.Credentials.Rewind
	if cred.Username == "" {
		cred = n.cfg.Credentials.Superuser
	}
	ci, ok := n.sourceConnInfo(o, leader, cred, "rewind")
	if !ok {
		return
	}
	pg := n.deps.Postgres
	n.launchOverStopped(ctx, o, plan.LongRewind, cluster.StopFast, "pg_rewind", func(ctx context.Context) *longResult {
		if err := pg.Rewind(ctx, ci); err != nil {
			return &longResult{err: fmt.Errorf("pg_rewind from %s: %w", leader, err), rewindFailed: true, leader: leader}
		}
		return nil
	})
}

// launchReinit wipes the data directory and clones again from leader (config allowed it).
func (n *Node) launchReinit(ctx context.Context, o plan.Observation, leader string) {
	ci, ok := n.sourceConnInfo(o, leader, n.cfg.Credentials.Replication, "reinitialize")
	if !ok {
		return
	}
	pg := n.deps.Postgres
	n.launchOverStopped(ctx, o, plan.LongReinitialize, cluster.StopImmediate, "reinitialize", func(ctx context.Context) *longResult {
		if err := pg.RemoveDataDir(ctx); err != nil {
			return &longResult{err: fmt.Errorf("remove data directory: %w", err)}
		}
		if err := pg.Clone(ctx, ci); err != nil {
			_ = pg.RemoveDataDir(context.WithoutCancel(ctx))
			return &longResult{err: fmt.Errorf("clone from %s: %w", leader, err)}
		}
		return nil
	})
}

// sourceConnInfo is how to reach member src with cred; false (logged as
// "cannot <action>") when its conn_url is unusable.
func (n *Node) sourceConnInfo(o plan.Observation, src string, cred Credential, action string) (cluster.ConnInfo, bool) {
	m, _ := o.Member(src)
	ci, err := connInfo(m.ConnURL, cred)
	if err != nil {
		n.log.Warn("cannot "+action, "source", src, "err", err)
		return ci, false
	}
	return ci, true
}

// launchOverStopped runs a long action of kind that stops postgres (mode) when
// it is running, runs step on the data directory, and starts postgres as a
// replica of the follow target; a non-nil result from step ends it there.
// verb names the step in the stop and start errors.
func (n *Node) launchOverStopped(ctx context.Context, o plan.Observation, kind plan.LongKind, mode cluster.StopMode, verb string,
	step func(ctx context.Context) *longResult) {
	opts, up := n.followOpts(o)
	running := o.PG.Running
	if running {
		n.st.stopping = true
	}
	pg := n.deps.Postgres
	hooks, log := n.deps.Hooks, n.log
	var stopped []plan.PlannedCallback
	if d := n.st.deciding; d != nil {
		stopped = hooksFor(d.Callbacks, plan.AfterStop)
	}
	replica := true
	n.launch(ctx, kind, &replica, func(ctx context.Context) longResult {
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
func (n *Node) primaryOpts(cfg cluster.DynamicConfig) cluster.StartOptions {
	timeout := n.cfg.StartTimeout
	if cfg.PrimaryStartTimeout > 0 {
		timeout = time.Duration(cfg.PrimaryStartTimeout) * time.Second
	}
	return cluster.StartOptions{Timeout: timeout, Params: n.params(cfg)}
}

// followOpts are the options to start as a replica of the follow target after a
// clone, rewind or reinitialize; without a usable target, a standalone replica
// (replicaOpts with no target). The parameters are noted as the ones in effect.
func (n *Node) followOpts(o plan.Observation) (cluster.StartOptions, plan.Upstream) {
	opts, up, err := n.replicaOpts(o.View, o.Config, plan.FollowTarget(o))
	if err != nil {
		opts, up, _ = n.replicaOpts(o.View, o.Config, "")
	}
	n.noteParams(opts)
	return opts, up
}

// replicaOpts are the start/reload options of a replica following target ("" = standalone).
// The slot is ours on the leader (the leader creates one per member); none when cascading.
func (n *Node) replicaOpts(v cluster.View, cfg cluster.DynamicConfig, target string) (cluster.StartOptions, plan.Upstream, error) {
	opts := cluster.StartOptions{AsReplica: true, Timeout: n.cfg.StartTimeout, Params: n.params(cfg)}
	opts.Recovery.ApplicationName = n.cfg.Name
	up := plan.Upstream{Known: true, Name: target}
	if target == "" {
		return opts, up, nil
	}
	m, ok := v.Members[target]
	if !ok {
		return opts, plan.Upstream{Known: true}, fmt.Errorf("member %s has no member key", target)
	}
	ci, err := connInfo(m.ConnURL, n.cfg.Credentials.Replication)
	if err != nil {
		return opts, plan.Upstream{Known: true}, err
	}
	opts.Recovery.Upstream = ci
	up.ConnURL = m.ConnURL
	if cfg.UseSlots && v.Leader != nil && v.Leader.Name == target {
		opts.Recovery.SlotName = cluster.SlotName(n.cfg.Name)
	}
	return opts, up, nil
}

// params merges postgresql.parameters: dynamic first, local values win.
func (n *Node) params(cfg cluster.DynamicConfig) map[string]any {
	out := make(map[string]any, len(cfg.Parameters)+len(n.st.localParams))
	for k, v := range cfg.Parameters {
		out[k] = v
	}
	for k, v := range n.st.localParams {
		out[k] = v
	}
	return out
}
