package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// decideRace is Patroni's Ha.process_unhealthy_cluster and is_healthiest_node: the leader key is absent and postgres runs.
func decideRace(o Observation) Decision {
	if o.Paused() {
		// In maintenance mode only a running primary takes the free key, and only
		// the candidate of a manual switchover or failover is promoted.
		if f := o.View.Failover; !f.Empty() && f.Member == o.Name && o.PGReady() && o.PG.InRecovery && f.ScheduledAt == "" {
			return decideCandidate(o)
		}
		if o.PGReady() && !o.PG.InRecovery && (o.View.Initialize == nil || *o.View.Initialize == o.PG.SystemID) {
			return Decision{Action: ActionAcquire, Message: "PAUSE: acquired session lock as a leader", Reason: "paused_primary"}
		}
		return none("PAUSE: no leader; not racing in maintenance mode", "paused")
	}
	if !o.PGReady() {
		return wait("postgres is not ready; not racing for the leader key", "pg_not_ready")
	}
	if !o.PG.InRecovery {
		// Already a primary (e.g. pgnoded restarted after the key expired): take
		// the key, unless another node was promoted meanwhile (3.1+ timeline guard).
		if ct := o.View.Timeline(); ct > 0 && o.PG.Timeline > 0 && o.PG.Timeline < ct {
			return Decision{Action: ActionDemote, Demote: DemoteImmediateNoLock, Stop: cluster.StopImmediate,
				Reason: "stale_primary", Message: fmt.Sprintf(
					"demoting self because my timeline (%d) is behind the cluster's (%d)", o.PG.Timeline, ct)}
		}
		return Decision{Action: ActionAcquire, Message: "acquired session lock as a leader", Reason: "running_primary"}
	}
	return decideReplicaRace(o)
}

// notHealthiest keeps following (there is no leader to switch to, so recovery stays as it is).
func notHealthiest(why, reason string) Decision {
	return none("following a different leader because i am not the healthiest node: "+why, reason)
}

// decideReplicaRace is is_healthiest_node for a replica.
func decideReplicaRace(o Observation) Decision {
	switch {
	case o.FailsafeLeader != "" && o.FailsafeLeader != o.Name:
		return notHealthiest(o.FailsafeLeader+" is running as primary in failsafe mode", "failsafe_leader")
	case o.FenceFailed:
		return notHealthiest("the fence guard could not be armed", "fence_failed")
	case !o.Tags.CanFailover():
		return notHealthiest("nofailover", "nofailover")
	case o.prePromoteBackoff():
		// Patroni checks this before anything else, even for a named candidate.
		return notHealthiest("backoff: skip leader race after pre_promote script failure and releasing the lock voluntarily",
			"pre_promote_backoff")
	case !o.View.Failover.Empty() && o.View.Failover.Member == o.Name:
		// The operator named us: a release of our own a moment ago does not hold us back.
		return decideCandidate(o)
	case o.releasedRecently():
		return notHealthiest("I released the leader key less than ttl ago", "released_recently")
	}
	if !o.View.Failover.Empty() {
		return decideManualRace(o)
	}
	if o.Config.FailsafeMode && len(o.View.Failsafe) > 0 {
		if _, ok := o.View.Failsafe[o.Name]; !ok {
			return notHealthiest("not listed in the failsafe key", "failsafe_absent")
		}
	}
	if o.SyncActive() && !o.QuorumActive() && !o.InSync(o.Name) {
		return notHealthiest("not a synchronous standby", "not_sync")
	}
	if pos := o.ownWAL(); o.tooFarBehind(pos) {
		return notHealthiest(fmt.Sprintf("lagging %d bytes behind the last known primary position (maximum_lag_on_failover %d)",
			o.lagBytes(pos), o.Config.MaximumLagOnFailover), "lagging")
	}
	if o.Config.CheckTimeline {
		if own, ct := o.dataTimeline(), o.View.Timeline(); own == 0 || own < ct {
			return notHealthiest(fmt.Sprintf("my timeline (%d) is behind the cluster's (%d)", own, ct), "timeline")
		}
	}
	return racePeers(o, "", "promoted self to leader by acquiring session lock")
}

// decideManualRace covers a failover key with the old leader gone
// (manual_failover_process_no_leader): the candidate takes over; others wait
// for a healthy candidate; otherwise the rest race without the lag check.
func decideManualRace(o Observation) Decision {
	f := o.View.Failover
	const won = "manual failover: promoted self to leader by acquiring session lock"
	if f.Member == o.Name {
		return decideCandidate(o)
	}
	if f.Member != "" {
		if o.SyncActive() && !o.QuorumActive() && !o.InSync(o.Name) {
			return notHealthiest("not a synchronous standby", "not_sync")
		}
		if o.Peers == nil {
			return askPeers(o, "")
		}
		for _, p := range o.Peers {
			if p.Name == f.Member && p.Reachable && !p.NoFailover && !p.WatchdogFailed {
				return notHealthiest(fmt.Sprintf("waiting for the failover candidate (%s)", f.Member), "failover_candidate")
			}
		}
	}
	if f.Leader == o.Name {
		if o.Peers == nil {
			return askPeers(o, "")
		}
		for _, p := range o.Peers {
			if p.Name != o.Name && p.Reachable && !p.NoFailover && !p.WatchdogFailed {
				return notHealthiest(fmt.Sprintf("I asked to be replaced and %s is healthy", p.Name), "failover_from_me")
			}
		}
		return Decision{Action: ActionAcquire, Message: won, Reason: "failover_no_candidate"}
	}
	return racePeers(o, f.Leader, won)
}

// ReasonAwaitingWAL marks the candidate's wait for the old leader's last WAL;
// the loop re-runs the cycle shortly while it lasts (no event announces WAL).
const ReasonAwaitingWAL = "awaiting_wal"

// decideCandidate: I am the named candidate and the leader key is free. The
// old leader published its last position (the shutdown checkpoint after a
// switchover) as status optime; a candidate that has not received it yet
// waits up to loop_wait for it, then takes over anyway as Patroni does.
func decideCandidate(o Observation) Decision {
	const won = "manual failover: promoted self to leader by acquiring session lock"
	if lag := o.lagBytes(o.ownWAL()); lag > 0 && !o.LeaderGoneAt.IsZero() &&
		o.Now.Sub(o.LeaderGoneAt) < o.Config.LoopWaitDuration() {
		return wait(fmt.Sprintf("manual failover: waiting for the old leader's last WAL (%d bytes missing)", lag),
			ReasonAwaitingWAL)
	}
	return Decision{Action: ActionAcquire, Message: o.msgPrefix() + won, Reason: "failover_candidate"}
}

// racePeers compares us with the other members' /patroni documents: any primary
// still alive, anyone ahead, or anyone level with a higher failover_priority
// wins over us. exclude is a former leader whose answer is ignored.
//
// Quorum mode (QuorumActive; docs/synchronous-replication.md "Quorum"): we
// also need the votes of quorum+1 members of the sync key's leader and
// voters — ourselves when listed, and every listed peer whose running
// postgres reports a position at or below ours. Any quorum+1 of them include
// one holding the newest acknowledged commit, so we hold it too. The former
// leader itself needs no votes when nobody is ahead.
func racePeers(o Observation, exclude, wonMsg string) Decision {
	quorum := o.QuorumActive()
	if o.Peers == nil {
		if ask := peersToAsk(o, exclude); len(ask) > 0 {
			return Decision{Action: ActionAskPeers, AskPeers: ask, Message: "asking peers before racing for the leader key",
				Reason: "ask_peers"}
		}
	}
	own := o.ownWAL()
	votes := 0
	if quorum && o.InSync(o.Name) {
		votes = 1
	}
	var voters []string
	for _, p := range o.Peers {
		if p.Name == o.Name || p.Name == exclude || !p.Reachable {
			continue
		}
		if IsPrimaryRole(p.Role) {
			return notHealthiest(fmt.Sprintf("Primary (%s) is still alive", p.Name), "primary_alive")
		}
		if p.NoFailover || p.WatchdogFailed || o.SyncActive() && !o.InSync(p.Name) {
			continue
		}
		if p.WALPosition > own {
			return notHealthiest(fmt.Sprintf("%s is ahead (%d > %d)", p.Name, p.WALPosition, own), "peer_ahead")
		}
		if p.WALPosition == own && p.FailoverPriority > o.Tags.FailoverPriority {
			return notHealthiest(fmt.Sprintf("%s has the same WAL position and a higher failover_priority (%d > %d)",
				p.Name, p.FailoverPriority, o.Tags.FailoverPriority), "peer_priority")
		}
		if quorum && p.WALPosition > 0 && o.InSync(p.Name) {
			votes++
			voters = append(voters, p.Name)
		}
	}
	if need := o.SyncQuorum() + 1; quorum && votes < need && !strings.EqualFold(o.View.Sync.Leader, o.Name) {
		return notHealthiest(fmt.Sprintf("quorum not reached: %d of the %d votes needed (sync key quorum %d, votes from %v)",
			votes, need, o.SyncQuorum(), voters), "quorum_votes")
	}
	return Decision{Action: ActionAcquire, Message: wonMsg, Reason: "healthiest"}
}

func askPeers(o Observation, exclude string) Decision {
	return Decision{Action: ActionAskPeers, AskPeers: peersToAsk(o, exclude),
		Message: "asking peers before racing for the leader key", Reason: "ask_peers"}
}

// peersToAsk lists every other member with an api_url, plus failsafe entries
// without a member key, sorted by name.
func peersToAsk(o Observation, exclude string) []cluster.Member {
	var out []cluster.Member
	for name, m := range o.View.Members {
		if name == o.Name || name == exclude || m.APIURL == "" {
			continue
		}
		m.Name = name
		out = append(out, m)
	}
	for name, url := range o.View.Failsafe {
		if _, ok := o.View.Members[name]; ok || name == o.Name || name == exclude || url == "" {
			continue
		}
		out = append(out, cluster.Member{Name: name, APIURL: url})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// IsPrimaryRole reports whether a member key's role names a primary (Patroni writes "master" or "primary").
func IsPrimaryRole(role string) bool { return role == "master" || role == "primary" }
