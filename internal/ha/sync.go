package ha

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// Synchronous replication at the edge: the rule is plan.NextSync; here the
// sync key is written (compare on its revision) and synchronous_standby_names
// is set through the parameters postgres is reloaded with (reconcileParams,
// later in the same cycle), so the key is always narrowed before the GUC and
// the GUC widened before the key.

// syncState is what the loop keeps of synchronous replication.
type syncState struct {
	facts plan.SyncFacts // the recorded confirmation position (fed back into NextSync)
	// guc is the synchronous_standby_names pgnoded set; gucSet false: the
	// default of the mode (strict: nobody may be skipped; else none).
	guc    string
	gucSet bool
}

// syncFacts are the facts NextSync reads.
func (l *loop) syncFacts() plan.SyncFacts {
	f := l.st.sync.facts
	f.Compat4 = l.cfg.Compat == cluster.Compat4
	f.Asked, f.AskedSet = l.st.sync.guc, l.st.sync.gucSet
	return f
}

// syncGUC is the synchronous_standby_names postgres runs with while
// synchronous mode is on (the operator's own value is overridden then, and
// comes back when the mode is turned off, as in Patroni's get_server_parameters).
func (l *loop) syncGUC(cfg cluster.DynamicConfig) string {
	if l.st.sync.gucSet {
		return l.st.sync.guc
	}
	if l.quorumMode(cfg) {
		// Until the primary's first cycle decided (plan.NextSync), commits
		// wait: an acknowledgement nobody promised in the sync key is never given.
		return plan.FormatQuorumSSN([]string{plan.SyncPlaceholder}, 1)
	}
	return plan.FormatSSN(nil, cfg.SynchronousModeStrict, l.cfg.Compat == cluster.Compat4, nil)
}

// quorumMode: synchronous_mode: quorum is in force (Patroni 4.x layout only).
func (l *loop) quorumMode(cfg cluster.DynamicConfig) bool {
	return cfg.SynchronousMode && cfg.SynchronousQuorum && l.cfg.Compat == cluster.Compat4
}

// promoteGUC is synchronous_standby_names set before the promotion, with the
// sync key naming this node and no standby: non-strict none (asynchronous
// until the first cycle as primary lists the standbys); strict the former
// standbys (quorum mode: any synchronous_node_count of them), so commits wait.
func (l *loop) promoteGUC(cfg cluster.DynamicConfig, last []string) string {
	if !l.quorumMode(cfg) {
		return plan.FormatSSN(nil, cfg.SynchronousModeStrict, l.cfg.Compat == cluster.Compat4, last)
	}
	if !cfg.SynchronousModeStrict {
		return ""
	}
	if len(last) == 0 {
		last = []string{plan.SyncPlaceholder}
	}
	return plan.FormatQuorumSSN(last, max(cfg.SynchronousNodeCount, 1))
}

// overrideSyncParam puts pgnoded's synchronous_standby_names into params
// while synchronous mode is on.
func (l *loop) overrideSyncParam(cfg cluster.DynamicConfig, params map[string]any) {
	if !cfg.SynchronousMode {
		return
	}
	for k := range params {
		if strings.EqualFold(k, "synchronous_standby_names") {
			delete(params, k)
		}
	}
	params["synchronous_standby_names"] = l.syncGUC(cfg)
}

// applySync carries out the sync step of a primary that just kept its key:
// the sync key first (Patroni's messages), then the GUC wanted, which the
// reload of this cycle puts in effect.
func (l *loop) applySync(ctx context.Context, o plan.Observation, st plan.SyncStep) {
	rev := int64(0)
	if o.View.Sync != nil {
		rev = o.View.Sync.ModRevision
	}
	if st.DeleteSync {
		ok, err := l.deps.Store.DeleteSync(ctx, rev)
		switch {
		case err != nil:
			l.log.Warn("cannot delete the sync key", "err", err)
		case ok:
			l.log.Info("Disabled synchronous replication")
		default:
			l.log.Info("Synchronous replication key updated by someone else")
		}
		l.st.sync = syncState{}
		return
	}
	if !st.Manage {
		return
	}
	l.st.sync.facts = l.st.sync.facts.Advance(st, o.PG.SyncStandbyNames, o.PG.FlushLSN, o.Now)
	if st.WriteSync {
		ok, err := l.deps.Store.WriteSync(ctx, st.Sync, rev)
		switch {
		case err != nil:
			l.log.Warn("cannot write the sync key; synchronous_standby_names unchanged", "err", err)
			return
		case !ok:
			l.log.Info("Synchronous replication key updated by someone else")
			return
		}
		standby := "null"
		if st.Sync.SyncStandby != nil {
			standby = *st.Sync.SyncStandby
		}
		if st.Sync.Quorum != nil && *st.Sync.Quorum > 0 || l.quorumMode(o.Config) {
			q := 0
			if st.Sync.Quorum != nil {
				q = *st.Sync.Quorum
			}
			l.log.Info(fmt.Sprintf("Setting leader to %s, quorum to %d of (%s)", st.Sync.Leader, q, standby),
				"picked", st.Picked, "confirmed", st.Confirmed)
		} else {
			l.log.Info("Synchronous standby status assigned to "+standby, "leader", st.Sync.Leader, "picked", st.Picked)
		}
	}
	if !l.st.sync.gucSet || l.st.sync.guc != st.GUC {
		if len(st.Picked) == 0 && o.Config.SynchronousModeStrict {
			l.log.Warn("No standbys available!")
		}
		l.log.Info("Assigning synchronous standby status to "+strings.Join(st.Picked, ","),
			"synchronous_standby_names", st.GUC)
		l.st.sync.guc, l.st.sync.gucSet = st.GUC, true
	}
}

// syncBeforePromote is Patroni's step before promoting in synchronous mode:
// this node becomes the sync key's leader with no standby (compare on the
// key's revision), and postgres is told to wait for nobody yet (strict: for
// anybody) before it leaves recovery. False: somebody else updated the key;
// the promotion waits for the next cycle.
func (l *loop) syncBeforePromote(ctx context.Context, o plan.Observation) bool {
	if !o.Config.SynchronousMode {
		return true
	}
	rev := int64(0)
	if o.View.Sync != nil {
		rev = o.View.Sync.ModRevision
	}
	last := slices.DeleteFunc(o.View.Sync.Standbys(), func(n string) bool { return strings.EqualFold(n, l.cfg.Name) })
	octx, cancel := l.dcsCtx(ctx)
	ok, err := l.deps.Store.WriteSync(octx, plan.SyncKey(l.cfg.Name, l.cfg.Compat == cluster.Compat4), rev)
	cancel()
	if err != nil || !ok {
		l.st.action = "Postponing promotion because synchronous replication state was updated by somebody else"
		if err != nil {
			l.log.Warn(l.st.action, "err", err)
		} else {
			l.log.Info(l.st.action)
		}
		return false
	}
	l.st.sync = syncState{guc: l.promoteGUC(o.Config, last), gucSet: true}
	opts, _, err := l.replicaOpts(o.View, o.Config, l.st.pg.upstream.Name)
	if err != nil {
		opts, _, _ = l.replicaOpts(o.View, o.Config, "")
	}
	if paramsKey(opts.Params) == l.st.conf.paramsKey {
		return true
	}
	rctx, rcancel := l.opCtx(ctx)
	err = l.deps.Postgres.Reload(rctx, opts)
	rcancel()
	if err != nil {
		l.log.Warn("cannot set synchronous_standby_names before the promotion", "err", err)
		return true // the primary's reload after the promotion sets it
	}
	l.noteParams(opts)
	return true
}
