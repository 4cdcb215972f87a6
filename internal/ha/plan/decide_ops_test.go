package plan

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Decide cases for the operator workflows: switchover and failover while
// paused, the candidate's last-WAL check, the old primary after stepping
// down, and maintenance mode with postgres down.

func TestDecidePausedSwitchover(t *testing.T) {
	replicaNoLeader := func(o *Observation) { o.View.Leader = nil }
	runDecideCases(t, []decideCase{
		{"paused: a switchover to a named candidate still demotes gracefully",
			newObs(iLead, paused, failover("pg1", "pg2", "")),
			want{action: ActionDemote, demote: DemoteGraceful, stop: cluster.StopFast, member: "pg2", reason: "switchover"}},
		{"paused: a switchover without a candidate is refused and cleared",
			newObs(iLead, paused, failover("pg1", "", "")),
			want{action: ActionUpdateLock, clear: true, reason: "failover_impossible", msg: "specific candidate"}},
		{"paused: a scheduled switchover waits and is kept",
			newObs(iLead, paused, failover("pg1", "pg2", t0.Add(2*time.Second).Format(time.RFC3339))),
			want{action: ActionUpdateLock, reason: "failover_scheduled", msg: "PAUSE"}},
		{"paused: a failover to an unhealthy candidate is cleared",
			newObs(iLead, paused, failover("", "pg2", ""), setMember("pg2", func(m *cluster.Member) { m.State = "stopped" })),
			want{action: ActionUpdateLock, clear: true, reason: "failover_impossible"}},
		{"paused: the named candidate promotes once the key is free",
			newObs(replicaNoLeader, paused, failover("pg2", "pg1", "")),
			want{action: ActionAcquire, reason: "failover_candidate", msg: "PAUSE: manual failover"}},
		{"paused: another replica does not race for a named candidate",
			newObs(replicaNoLeader, paused, failover("pg2", "pg3", "")),
			want{action: ActionNone, reason: "paused"}},
		{"paused: a scheduled failover key does not promote its candidate",
			newObs(replicaNoLeader, paused, failover("pg2", "pg1", t0.Format(time.RFC3339))),
			want{action: ActionNone, reason: "paused"}},
	})
}

func TestDecideSwitchoverNeedsAStreamingCandidate(t *testing.T) {
	notStreaming := func(name string) fx {
		return func(o *Observation) {
			var rows []cluster.ReplicationRow
			for _, r := range o.PG.Replication {
				if r.ApplicationName != name {
					rows = append(rows, r)
				}
			}
			o.PG.Replication = rows
		}
	}
	runDecideCases(t, []decideCase{
		{"a candidate that does not stream from the leader is refused: it would miss the end of the WAL",
			newObs(iLead, failover("pg1", "pg2", ""), notStreaming("pg2")),
			want{action: ActionUpdateLock, clear: true, reason: "failover_not_streaming", msg: "not streaming"}},
		{"a catching-up candidate is refused too",
			newObs(iLead, failover("pg1", "pg2", ""), func(o *Observation) { o.PG.Replication[0].State = "catchup" }),
			want{action: ActionUpdateLock, clear: true, reason: "failover_not_streaming"}},
		{"a candidate cascading from a running member is accepted",
			newObs(iLead, failover("pg1", "pg2", ""), notStreaming("pg2"), memberTags("pg2", map[string]any{"replicatefrom": "pg3"})),
			want{action: ActionDemote, demote: DemoteGraceful, member: "pg2"}},
		{"switchover to any: one streaming member is enough",
			newObs(iLead, failover("pg1", "", ""), notStreaming("pg2")),
			want{action: ActionDemote, demote: DemoteGraceful}},
		{"switchover to any: nobody streaming, nothing happens",
			newObs(iLead, failover("pg1", "", ""), notStreaming("pg2"), notStreaming("pg3")),
			want{action: ActionUpdateLock, clear: true, reason: "failover_impossible"}},
	})
}

func TestDecideCandidateWaitsForTheLastWAL(t *testing.T) {
	noLeader := func(o *Observation) { o.View.Leader = nil }
	goneAt := func(d time.Duration) fx { return func(o *Observation) { o.LeaderGoneAt = t0.Add(d) } }
	behind := func(o *Observation) { o.View.Status.Optime = 1500 }
	runDecideCases(t, []decideCase{
		{"the candidate holding the old leader's last position takes over at once",
			newObs(noLeader, failover("pg2", "pg1", ""), goneAt(0)),
			want{action: ActionAcquire, reason: "failover_candidate"}},
		{"a candidate missing the shutdown checkpoint waits for it",
			newObs(noLeader, failover("pg2", "pg1", ""), goneAt(-500*time.Millisecond), behind),
			want{action: ActionWait, reason: ReasonAwaitingWAL, msg: "500 bytes missing"}},
		{"a candidate still missing it after loop_wait takes over anyway",
			newObs(noLeader, failover("pg2", "pg1", ""), goneAt(-10*time.Second), behind),
			want{action: ActionAcquire, reason: "failover_candidate"}},
		{"the named candidate takes over even if it released the key itself a moment ago",
			newObs(noLeader, failover("pg2", "pg1", ""), goneAt(0), func(o *Observation) { o.ReleasedLockAt = t0.Add(-2 * time.Second) }),
			want{action: ActionAcquire, reason: "failover_candidate"}},
		{"a nofailover node named as candidate still does not race",
			newObs(noLeader, failover("pg2", "pg1", ""), goneAt(0), tags(map[string]any{"nofailover": true})),
			want{action: ActionNone, reason: "nofailover"}},
		{"a candidate that received WAL past the position does not wait",
			newObs(noLeader, failover("pg2", "pg1", ""), goneAt(0), func(o *Observation) {
				o.View.Status.Optime = 900
			}),
			want{action: ActionAcquire}},
	})
}

func TestDecideAfterSteppingDown(t *testing.T) {
	// pg1 was the leader, stopped cleanly at its shutdown checkpoint (LSN 1000)
	// and released the key for pg2.
	steppedDown := func(o *Observation) {
		oldPrimaryStopped("shut down", 1000)(o)
		o.SwitchoverDemotedAt = t0.Add(-time.Second)
		o.ReleasedLockAt = o.SwitchoverDemotedAt
		o.UsePgRewind = true
	}
	newLeaderTL2 := setMember("pg2", func(m *cluster.Member) { m.Timeline = 2 })
	runDecideCases(t, []decideCase{
		{"stepped down: waits for the new leader instead of starting standalone",
			newObs(leader(""), steppedDown),
			want{action: ActionWait, reason: "switchover_demoted"}},
		{"stepped down more than ttl ago without a new leader: starts as a secondary",
			newObs(leader(""), steppedDown, func(o *Observation) { o.SwitchoverDemotedAt = t0.Add(-31 * time.Second) }),
			want{action: ActionStartReplica, reason: "no_leader"}},
		{"stepped down: follows the new leader on the same timeline at once",
			newObs(steppedDown),
			want{action: ActionStartReplica, member: "pg2", reason: "follow_leader"}},
		{"stepped down: waits for the new leader's history entry rather than rewinding",
			newObs(steppedDown, newLeaderTL2),
			want{action: ActionWait, reason: "await_history"}},
		{"stepped down: with the history entry it follows without pg_rewind",
			newObs(steppedDown, newLeaderTL2, history(cluster.HistoryEntry{Timeline: 1, LSN: 1100})),
			want{action: ActionStartReplica, member: "pg2", reason: "follow_leader"}},
		{"a crashed old primary without the history entry still rewinds",
			newObs(oldPrimaryStopped("in production", 1000), newLeaderTL2, func(o *Observation) { o.UsePgRewind = true }),
			want{action: ActionRewind, member: "pg2"}},
		{"paused: a primary that stepped down for a switchover follows the new leader",
			newObs(steppedDown, paused),
			want{action: ActionStartReplica, member: "pg2"}},
		{"paused: a stopped replica that did not step down is left alone",
			newObs(pgDown("shut down in recovery"), paused),
			want{action: ActionNone, reason: "paused"}},
	})
}

func TestDecideReplicaBetweenUpstreams(t *testing.T) {
	// While its WAL receiver reconnects to a new leader a replica reports the
	// timeline of its last restartpoint; that must not look like a divergence.
	reconnecting := func(since time.Duration) fx {
		return func(o *Observation) {
			o.PG.Streaming = false
			o.PG.ReplayedLSN, o.PG.ReceivedLSN = 1300, 1300
			o.NotStreamingSince = t0.Add(-since)
		}
	}
	runDecideCases(t, []decideCase{
		{"a replica not streaming for a moment is not rewound", newObs(promotedAt1000, reconnecting(time.Second)),
			want{action: ActionNone, reason: "follower"}},
		{"a replica not streaming for longer than the grace is rewound", newObs(promotedAt1000, reconnecting(30*time.Second)),
			want{action: ActionRewind, member: "pg2"}},
	})
}

func TestDecideSwitchoverAfterResume(t *testing.T) {
	leaderDown := func(o *Observation) {
		iLead(o)
		pgDown("in production")(o)
	}
	runDecideCases(t, []decideCase{
		{"resumed: the leader whose postmaster died during the pause restarts in place",
			newObs(leaderDown),
			want{action: ActionRestartInPlace, reason: "postmaster_down"}},
		{"paused: the replicas do not race while the leader's postgres is down",
			newObs(pgDown("shut down in recovery"), paused, func(o *Observation) {
				o.View.Members["pg2"] = func(m cluster.Member) cluster.Member { m.State = "stopped"; return m }(o.View.Members["pg2"])
			}),
			want{action: ActionNone, reason: "paused"}},
	})
}
