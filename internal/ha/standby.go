package ha

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// Standby clusters: the standby leader's side effects (plan/standby.go decides).

// remoteConnInfo is how the standby leader reaches the remote primary: the
// standby_cluster host(s) and port with the replication credentials.
func remoteConnInfo(sc *cluster.StandbyCluster, cred Credential) (cluster.ConnInfo, error) {
	if !sc.Active() || sc.Host == "" {
		return cluster.ConnInfo{}, errors.New("standby_cluster has no host: nothing to stream or clone from")
	}
	return cluster.ConnInfo{Host: sc.Host, Port: sc.Port, User: cred.Username, Password: cred.Password,
		DBName: "postgres"}, nil
}

// remoteReplicaOpts completes opts for the standby leader: stream from the
// remote primary with standby_cluster.primary_slot_name (no slot when it is not
// set, as Patroni's get_remote_member), recovery_min_apply_delay, and
// target_session_attrs=read-write for a host list. With restore_command alone
// (no host) it recovers from the archive without streaming.
func (l *loop) remoteReplicaOpts(opts cluster.StartOptions, cfg cluster.DynamicConfig) (cluster.StartOptions, plan.Upstream, error) {
	sc := cfg.StandbyCluster
	up := plan.Upstream{Known: true, Name: plan.RemotePrimary, ConnURL: sc.Addr()}
	opts.Recovery.MinApplyDelay = sc.RecoveryMinApplyDelay
	if sc.Host == "" {
		return opts, up, nil
	}
	ci, err := remoteConnInfo(sc, l.cfg.Credentials.Replication)
	if err != nil {
		return opts, plan.Upstream{Known: true}, err
	}
	opts.Recovery.Upstream = ci
	opts.Recovery.ReadWriteOnly = sc.MultiHost()
	if cfg.UseSlots && sc.PrimarySlotName != "" {
		opts.Recovery.SlotName = cluster.SlotName(sc.PrimarySlotName)
	}
	return opts, up, nil
}

// bootstrapStandbyLeader is bootstrap in a standby cluster (Patroni's
// bootstrap_standby_leader): win the initialize race and the leader key, then
// clone the remote primary with pg_basebackup and start following it. A
// failed clone undoes everything (data directory, key, initialize) and is
// retried by the next decision after loop_wait, since an unreachable remote
// site is expected to come back.
func (l *loop) bootstrapStandbyLeader(ctx context.Context, o plan.Observation) {
	ci, ok := l.sourceConnInfo(o, plan.RemotePrimary, l.cfg.Credentials.Replication, "bootstrap the standby leader")
	if !ok {
		return
	}
	// Back off before taking initialize and the key: launch's own back-off
	// would come after them and leave both taken with nothing running.
	if at, failed := l.st.long.failedAt[plan.LongClone]; failed && l.now().Sub(at) < l.st.conf.dyn.LoopWaitDuration() {
		l.st.action = "backing off: the last standby leader bootstrap failed less than loop_wait ago"
		l.log.Debug(l.st.action)
		return
	}
	if !l.claimBootstrap(ctx, "standby bootstrap") {
		return
	}
	opts, up, err := l.replicaOpts(o.View, o.Config, plan.RemotePrimary)
	if err != nil {
		l.log.Warn("cannot build the standby leader's recovery configuration", "err", err)
		return
	}
	l.noteParams(opts)
	rawCfg := l.bootstrapConfigJSON()
	pg, store := l.deps.Postgres, l.deps.Store
	addr := o.Config.StandbyCluster.Addr()
	methods := o.Config.StandbyCluster.CreateReplicaMethods
	replica := true
	l.log.Info("bootstrapping a standby leader: cloning the remote primary", "remote", addr)
	l.launch(ctx, plan.LongClone, &replica, func(ctx context.Context) longResult {
		fail := func(step string, err error) longResult {
			undoBootstrap(ctx, pg, store)
			return longResult{err: fmt.Errorf("standby leader bootstrap from the remote primary %s: %s: %w", addr, step, err),
				remoteClone: true}
		}
		// Patroni creates a standby leader by standby_cluster.create_replica_methods,
		// or by postgresql.create_replica_methods when that list is empty.
		if err := pg.Clone(ctx, ci, cluster.CloneOptions{Methods: methods}); err != nil {
			return fail("create replica", err)
		}
		if err := pg.Start(ctx, opts); err != nil {
			return fail("start", err)
		}
		cd, err := pg.ControlData(ctx)
		if err != nil {
			return fail("pg_controldata", err)
		}
		if err := store.SetInitialize(ctx, cd.SystemID); err != nil {
			return fail("write initialize", err)
		}
		if _, err := store.SetConfig(ctx, rawCfg, 0); err != nil {
			return fail("write config", err)
		}
		return longResult{sysid: cd.SystemID, startedAs: &replica, upstream: &up}
	})
}

// standbyLeaderDuties is the standby leader's housekeeping: the initialize and
// config keys when missing, the members' replication slots (they stream from
// it) and the status key's optime (the replayed position).
func (l *loop) standbyLeaderDuties(ctx context.Context, o plan.Observation) {
	octx, cancel := l.dcsCtx(ctx)
	defer cancel()
	l.restoreClusterKeys(octx, o)
	pctx, pcancel := l.opCtx(ctx)
	l.createMemberSlots(pctx, o)
	pcancel()
	if err := l.deps.Store.SetStatus(octx, cluster.StatusKey{Optime: int64(o.PG.WALPosition())}); err != nil {
		l.log.Warn("cannot write the status key", "err", err)
	}
}

// demoteCluster turns our primary into the standby leader (Patroni 4.1's
// demote 'demote-cluster'): VIP off, a fast stop, then (launchResumeDemoteCluster)
// the shutdown checkpoint archived, pg_rewind from the remote primary when
// usable, and a start in recovery following it. The leader key stays ours.
func (l *loop) demoteCluster(ctx context.Context, d plan.Decision, o plan.Observation) bool {
	l.ensureVIP(ctx, false)
	l.demoted()
	if err := l.stopPG(ctx, d.Stop, time.Time{}); err != nil {
		return false
	}
	l.fire(d.Callbacks, plan.AfterStop)
	l.log.Info("demoted to a standby leader; following the remote primary", "remote", o.Config.StandbyCluster.Addr())
	l.launchResumeDemoteCluster(ctx, o, d)
	return true
}

// launchResumeDemoteCluster is what follows demote-cluster's stop, in one long
// action: with d.ArchiveShutdown the shutdown checkpoint's WAL segment goes to
// archive_command (Patroni 4.1's archive_shutdown_checkpoint_wal: otherwise
// the remote site's archive lacks our last segment); with d.RewindRemote
// pg_rewind runs from the remote primary (Patroni 4.1 checks the remote
// member after demote-cluster); then postgres starts following it. pg_rewind
// itself finds whether our timeline forked from the remote's ("no rewind
// required" when it did not). A failed archive or rewind is logged and the
// standby leader starts anyway: streaming then fails and says why
// (pgnoded_upstream_error), as Patroni's standby leader does. The decision
// comes from pg_control (plan.resumeDemoteCluster) as well as from
// demote-cluster itself, so a pgnoded restarted between the stop and the
// start still does all of it.
func (l *loop) launchResumeDemoteCluster(ctx context.Context, o plan.Observation, d plan.Decision) {
	if !d.ArchiveShutdown && !d.RewindRemote {
		l.launchStart(ctx, o, true, plan.RemotePrimary)
		return
	}
	var ci cluster.ConnInfo
	if d.RewindRemote {
		var ok bool
		if ci, ok = l.sourceConnInfo(o, plan.RemotePrimary, l.cfg.Credentials.RewindRole(), "rewind from the remote primary"); !ok {
			d.RewindRemote = false
		}
	}
	opts, up, err := l.replicaOpts(o.View, o.Config, plan.RemotePrimary)
	if err != nil {
		l.launchStart(ctx, o, true, plan.RemotePrimary)
		return
	}
	l.noteParams(opts)
	pg, log := l.deps.Postgres, l.log
	addr := o.Config.StandbyCluster.Addr()
	replica := true
	kind := plan.LongStartReplica
	if d.RewindRemote {
		kind = plan.LongRewind
	}
	l.launch(ctx, kind, &replica, func(ctx context.Context) longResult {
		if d.ArchiveShutdown {
			if _, err := pg.ArchiveShutdownCheckpoint(ctx); err != nil {
				log.Error("failed to archive the WAL segment with the shutdown checkpoint; the remote site's archive lacks it",
					"err", err)
			}
		}
		if d.RewindRemote {
			log.Info("running pg_rewind from the remote primary before following it", "remote", addr)
			if err := pg.Rewind(ctx, ci); err != nil {
				log.Warn("pg_rewind from the remote primary failed; following it anyway",
					"remote", addr, "err", err)
			}
		}
		if err := pg.Start(ctx, opts); err != nil {
			return longResult{err: fmt.Errorf("start following the remote primary %s after demote-cluster: %w", addr, err)}
		}
		return longResult{upstream: &up, startedAs: &replica}
	})
}

// standbyAddRefused is the 400 text for a config edit that turns a running
// cluster into a standby cluster under compat 3.0.2 ("" when allowed): that
// needs Patroni 4.1's demote-cluster, which 3.0.2 does not have. Under 4.1.4
// the leader demotes itself into the standby leader (plan.DemoteCluster).
func (n *Node) standbyAddRefused(cur, doc map[string]any) string {
	if n.cfg.Compat == cluster.Compat4 || cur == nil {
		return ""
	}
	before, _ := cluster.FromMap(cur)
	after, _ := cluster.FromMap(doc)
	if before.StandbyCluster.Active() || !after.StandbyCluster.Active() {
		return ""
	}
	return "standby_cluster: turning a running cluster into a standby cluster needs Patroni 4.1's demote-cluster, " +
		"which compat 3.0.2 does not have (set pgnoded.compat: 4.1.4, or bootstrap a new cluster with bootstrap.dcs.standby_cluster)"
}

// standbyCluster is plan.Observation.StandbyCluster for the loop's current state.
func (l *loop) standbyCluster() bool {
	return plan.Observation{Config: l.st.conf.dyn, RefusedConfig: l.st.conf.refused}.StandbyCluster()
}
