package plan

import (
	"fmt"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// decideLeader is Patroni's Ha.process_healthy_cluster: we hold the key and postgres runs.
func decideLeader(o Observation) Decision {
	lock := func(msg, reason string) Decision {
		return Decision{Action: ActionUpdateLock, Message: msg, Reason: reason}
	}
	if o.Paused() {
		if o.PGReady() && o.PG.InRecovery && (o.View.Failover.Empty() || o.View.Failover.Member != o.Name) {
			return Decision{Action: ActionReleaseLock, Reason: "paused_not_primary",
				Message: "PAUSE: the leader is no longer a primary; releasing the leader key"}
		}
		if o.PGReady() && !o.PG.InRecovery {
			// A switchover or failover to a named candidate is the one demotion allowed while paused.
			if d, ok := decideSwitchover(o); ok {
				return d
			}
		}
		return lock(fmt.Sprintf("PAUSE: no action. I am (%s), the leader with the lock", o.Name), "paused")
	}
	if !o.PGReady() {
		return lock(fmt.Sprintf("no action. I am (%s), the leader with the lock; postgres is not answering", o.Name),
			"pg_not_ready")
	}
	if o.PG.InRecovery {
		switch {
		case !o.holdValid():
			return lock("not promoting: the leader lease is about to expire", "lease_deadline")
		case o.FenceFailed:
			return Decision{Action: ActionReleaseLock, Reason: "fence_failed",
				Message: "not promoting self because the fence guard could not be armed; releasing the leader key"}
		case o.PrePromote == PrePromoteFailed:
			return Decision{Action: ActionReleaseLock, Reason: "pre_promote_failed",
				Message: "Promotion cancelled because the pre-promote script failed"}
		}
		return Decision{Action: ActionPromote, Message: "promoted self to leader because I had the session lock",
			Reason: "have_lock"}
	}
	if d, ok := decideSwitchover(o); ok {
		return d
	}
	return lock(fmt.Sprintf("no action. I am (%s), the leader with the lock", o.Name), "leader")
}

// decideSwitchover is process_manual_failover_from_leader: a failover key
// addressed to us with a healthy candidate makes us step down gracefully;
// an impossible or stale request is cleared.
func decideSwitchover(o Observation) (Decision, bool) {
	f := o.View.Failover
	if f.Empty() {
		return Decision{}, false
	}
	keep := func(msg, reason string, clear bool) (Decision, bool) {
		return Decision{Action: ActionUpdateLock, ClearFailover: clear, Message: msg, Reason: reason}, true
	}
	// As Patroni's should_run_scheduled_action, a scheduled request is left
	// alone until its time comes, whatever it names: it is judged (and cleared
	// when impossible) only then, so an operator can still DELETE it.
	if f.ScheduledAt != "" && !o.Paused() {
		at, err := time.Parse(time.RFC3339Nano, f.ScheduledAt)
		if err != nil {
			return keep(fmt.Sprintf("failover key has an invalid scheduled_at %q; clearing it", f.ScheduledAt),
				"failover_invalid", true)
		}
		lw := o.Config.LoopWaitDuration()
		if at.Sub(o.Now) > lw {
			return keep(fmt.Sprintf("Awaiting failover at %s (in %.0f seconds)", at.Format(time.RFC3339),
				at.Sub(o.Now).Seconds()), "failover_scheduled", false)
		}
		if o.Now.Sub(at) > lw*3/2 {
			return keep("Found a stale failover value, cleaning up", "failover_stale", true)
		}
	}
	if f.Leader != "" && f.Leader != o.Name {
		return keep(fmt.Sprintf("failover key names another leader (%s); clearing it", f.Leader), "failover_stale", true)
	}
	if f.Member == o.Name {
		return keep("manual failover: I am already the leader; clearing the failover key", "failover_stale", true)
	}
	if o.Paused() && f.Member == "" {
		return keep("Switchover is possible only to a specific candidate in a paused state; clearing the failover key",
			"failover_impossible", true)
	}
	if f.ScheduledAt != "" && o.Paused() {
		return keep("PAUSE: a scheduled switchover does not run in maintenance mode", "failover_scheduled", false)
	}
	eligible := func(m cluster.Member) bool {
		return o.CandidateOK(o.WithStreamedPosition(m)) && (!o.SyncActive() || o.InSync(m.Name))
	}
	// A candidate that receives no WAL now would miss the end of ours: only one
	// streaming from us (or cascading from a member that does) can take over
	// without losing acknowledged commits.
	receiving := func(m cluster.Member) bool { return o.streamsFromMe(m.Name) || o.cascades(m) }
	if f.Member != "" {
		m, ok := o.Member(f.Member)
		switch {
		case !ok || !eligible(m):
			return keep(fmt.Sprintf("manual failover: member %s is not healthy; failover is not possible", f.Member),
				"failover_impossible", true)
		case !receiving(m):
			return keep(fmt.Sprintf("manual failover: member %s is not streaming from the leader; failover is not possible",
				f.Member), "failover_not_streaming", true)
		}
	} else {
		found := false
		for name, m := range o.View.Members {
			m.Name = name
			found = found || eligible(m) && receiving(m)
		}
		if !found {
			return keep("manual failover: no healthy members found, failover is not possible", "failover_impossible", true)
		}
	}
	return Decision{Action: ActionDemote, Demote: DemoteGraceful, Stop: cluster.StopFast, Member: f.Member,
		Message: "manual failover: demoting myself", Reason: "switchover"}, true
}

// decideFollower: another node holds the key and postgres runs. A primary
// steps down at once; a replica follows the leader (or its replicatefrom member).
func decideFollower(o Observation) Decision {
	leader := o.LeaderName()
	if o.PGWritable() {
		if o.Paused() {
			return none("PAUSE: continue to run as primary without lock", "paused")
		}
		return Decision{Action: ActionDemote, Demote: DemoteImmediateNoLock, Stop: cluster.StopImmediate,
			Message: "demoting self because I do not have the lock and I was a leader", Reason: "no_lock"}
	}
	if !o.PGReady() {
		return wait("postgres is not ready yet", "pg_not_ready")
	}
	if !o.PG.Streaming && !o.Paused() && o.notStreamingLong() {
		if diverged, certain := divergence(o); diverged && certain {
			if d, ok := decideDiverged(o, certain); ok {
				return d
			}
		}
	}
	target := FollowTarget(o)
	following := fmt.Sprintf("no action. I am (%s), a secondary, and following a leader (%s)", o.Name, leader)
	if o.Paused() {
		return none("PAUSE: "+following, "paused")
	}
	if target == "" && !o.Tags.NoStream {
		return none(fmt.Sprintf("no action. I am (%s), a secondary; waiting for the leader's (%s) member key",
			o.Name, leader), "no_leader_member")
	}
	m, _ := o.Member(target)
	if !o.Upstream.Known || o.Upstream.Name != target || o.Upstream.ConnURL != m.ConnURL {
		msg := fmt.Sprintf("following a new leader (%s)", target)
		if target == "" {
			msg = "running as a standalone replica (nostream)"
		}
		return Decision{Action: ActionFollow, Member: target, Message: msg, Reason: "follow"}
	}
	return none(following, "follower")
}
