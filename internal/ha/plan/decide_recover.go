package plan

import (
	"fmt"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// decideNotRunning is Patroni's Ha.recover: postgres is down, the data directory is
// there and the DCS is usable.
//
// In maintenance mode nothing is started: a leader keeps its key (so that
// resuming restarts it in place) unless another member runs as primary (it
// was promoted by hand); the one exception is a primary that stepped down for
// a switchover, which follows the new leader as Patroni does.
//
// Right after stepping down for a switchover a node waits for the new leader
// instead of starting standalone: it then follows it without a second restart.
func decideNotRunning(o Observation) Decision {
	if o.Paused() {
		switch {
		case o.LeaderIsMe():
			if p := o.otherPrimary(); p != "" {
				return Decision{Action: ActionReleaseLock, Reason: "paused_pg_down", Message: fmt.Sprintf(
					"PAUSE: postgres is not running and %s runs as primary; releasing the leader key", p)}
			}
			return Decision{Action: ActionUpdateLock, Reason: "paused_pg_down",
				Message: "PAUSE: postgres is not running; keeping the leader key"}
		case o.switchoverDemoted() && o.View.Leader != nil:
			return decideReplicaStart(o)
		}
		return none("PAUSE: postgres is not running", "paused")
	}
	switch {
	case o.LeaderIsMe():
		return decideLeaderDown(o)
	case o.View.Leader == nil && o.switchoverDemoted():
		return wait("stepped down for a switchover; waiting for the new leader", "switchover_demoted")
	case o.View.Leader == nil:
		return Decision{Action: ActionStartReplica, Message: "starting as a secondary", Reason: "no_leader"}
	default:
		return decideReplicaStart(o)
	}
}

// decideLeaderDown: we hold the key and our postmaster is gone (a crash, or a
// pgnoded restart found it stopped). Restart in place as primary, unless it
// already failed to come back (start failed, primary_start_timeout passed, or
// primary_start_timeout is 0) and a replica can take over: then hand over by
// releasing the key at once instead of letting it expire.
func decideLeaderDown(o Observation) Decision {
	if !o.holdValid() {
		return wait("not starting postgres as primary: the leader lease is about to expire", "lease_deadline")
	}
	if o.viableReplica() {
		handover := func(msg, reason string) Decision {
			return Decision{Action: ActionDemote, Demote: DemoteImmediate, Stop: cluster.StopImmediate,
				Message: msg, Reason: reason}
		}
		switch {
		case o.LastStartFailed:
			return handover("postgres failed to start as primary; releasing the leader key so a replica can take over",
				"start_failed")
		case o.Config.PrimaryStartTimeout <= 0:
			return handover("postgres is not running and primary_start_timeout is 0; failing over instead of restarting",
				"primary_start_timeout")
		case !o.PGDownSince.IsZero() && o.Now.Sub(o.PGDownSince) >= o.pgStartTimeout():
			return handover(fmt.Sprintf("postgres did not come back within primary_start_timeout (%ds); releasing the leader key",
				o.Config.PrimaryStartTimeout), "primary_start_timeout")
		}
	}
	if c := o.Data.Control; c != nil && InRecoveryState(c.ClusterState) {
		return Decision{Action: ActionStartReplica, Reason: "leader_was_replica",
			Message: "starting as readonly because i had the session lock"}
	}
	return Decision{Action: ActionRestartInPlace, Message: "starting primary after failure", Reason: "postmaster_down"}
}

// InRecoveryState reports whether pg_controldata's cluster state is a replica's.
func InRecoveryState(state string) bool {
	return state == "shut down in recovery" || state == "in archive recovery"
}

// decideReplicaStart: another node leads and our postgres is down. Rewind first
// if our timeline forked from the leader's, then start as a replica of it.
func decideReplicaStart(o Observation) Decision {
	diverged, certain := divergence(o)
	if diverged && !certain && o.switchoverDemoted() {
		// After a clean step-down our end of WAL is known: only the new leader's
		// history entry is missing, and it writes it right after promotion.
		return wait(fmt.Sprintf("waiting for the new leader's (%s) timeline history before following it", o.LeaderName()),
			"await_history")
	}
	if diverged {
		if d, ok := decideDiverged(o, certain); ok {
			return d
		}
	}
	d := Decision{Action: ActionStartReplica, Member: FollowTarget(o), Message: "starting as a secondary",
		Reason: "follow_leader"}
	if diverged {
		d.Reason = "timeline_diverged"
		d.Message = fmt.Sprintf("starting as a secondary although my timeline (%d) may have diverged from the leader's (%d) "+
			"and pg_rewind is not possible: replication may fail", o.dataTimeline(), o.leaderTimeline())
		if certain {
			d.Message = fmt.Sprintf("starting as a secondary although my timeline (%d) diverged from the leader's (%d) "+
				"and pg_rewind is not possible: replication will fail", o.dataTimeline(), o.leaderTimeline())
		}
	}
	return d
}

// FollowTarget is the member to stream from (Patroni's Ha._get_node_to_follow): none with nostream; the
// replicatefrom member when it runs; else the leader (when its member key has a conn_url).
func FollowTarget(o Observation) string {
	if o.Tags.NoStream {
		return ""
	}
	if rf := o.Tags.ReplicateFrom; rf != "" && rf != o.Name {
		if m, ok := o.Member(rf); ok && m.ConnURL != "" && m.State == string(cluster.StateRunning) {
			return rf
		}
	}
	if m, ok := o.Member(o.LeaderName()); ok && m.ConnURL != "" {
		return m.Name
	}
	return ""
}

var longMessages = map[LongKind]string{
	LongBootstrap:    "bootstrap in progress",
	LongClone:        "replica is being created in progress",
	LongStartPrimary: "restarting after failure in progress",
	LongStartReplica: "starting as a secondary in progress",
	LongRewind:       "pg_rewind in progress",
	LongReinitialize: "reinitialize in progress",
	LongPrePromote:   "running pre_promote before promoting",
}

// decideLongAction is Patroni's Ha.handle_long_action_in_progress: while a long action runs we only keep the
// lock, and cancel it when it can no longer end well.
func decideLongAction(o Observation) Decision {
	msg := o.msgPrefix() + longMessages[o.Long.Kind]
	cancelAnd := func(d Decision) Decision { d.CancelLong = true; return d }
	switch o.Long.Kind {
	case LongStartPrimary, LongBootstrap:
		if o.Paused() {
			return none(msg, "long_action")
		}
		if o.LeaderIsMe() && !o.holdValid() {
			return cancelAnd(Decision{Action: ActionDemote, Demote: DemoteOffline, Stop: cluster.StopImmediate,
				Message: "stopping the primary start: the leader lease is about to expire", Reason: "lease_deadline"})
		}
		if o.DCSUsable() && !o.LeaderIsMe() {
			return cancelAnd(Decision{Action: ActionDemote, Demote: DemoteImmediateNoLock, Stop: cluster.StopImmediate,
				Message: "lost leader lock during " + o.Long.Kind.String(), Reason: "lock_lost"})
		}
		if o.Long.Kind == LongStartPrimary && o.Now.Sub(o.Long.Since) >= o.pgStartTimeout() && o.viableReplica() {
			return cancelAnd(Decision{Action: ActionDemote, Demote: DemoteImmediate, Stop: cluster.StopImmediate,
				Message: "postgres did not start within primary_start_timeout; releasing the leader key",
				Reason:  "primary_start_timeout"})
		}
		if !o.DCSUsable() {
			return wait(msg, "long_action")
		}
		return Decision{Action: ActionUpdateLock, Message: msg, Reason: "long_action"}
	}
	if o.Long.Kind == LongPrePromote && o.DCSUsable() && !o.LeaderIsMe() {
		return cancelAnd(wait("lost the leader key while pre_promote ran; not promoting", "lock_lost"))
	}
	if !o.Paused() && o.PGReady() && !o.PG.InRecovery && !o.LeaderIsMe() {
		return cancelAnd(Decision{Action: ActionDemote, Demote: DemoteImmediateNoLock, Stop: cluster.StopImmediate,
			Message: "demoting self because I do not have the lock and I was a leader", Reason: "no_lock"})
	}
	if o.LeaderIsMe() && o.DCSUsable() {
		return Decision{Action: ActionUpdateLock, Message: msg, Reason: "long_action"}
	}
	return wait(msg, "long_action")
}
