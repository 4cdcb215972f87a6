package plan

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func TestDecideLeaderDuties(t *testing.T) {
	leaderReplica := func(o *Observation) {
		iLead(o)
		o.PG.InRecovery = true
	}
	runDecideCases(t, []decideCase{
		{"a leader whose postgres is a replica promotes", newObs(leaderReplica),
			want{action: ActionPromote, msg: "promoted self to leader because I had the session lock"}},
		{"a leader replica whose lease is about to expire does not promote", newObs(leaderReplica, at(16*time.Second)),
			want{action: ActionUpdateLock, reason: "lease_deadline"}},
		{"a leader replica with a broken fence releases the key instead of promoting",
			newObs(leaderReplica, func(o *Observation) { o.FenceFailed = true }),
			want{action: ActionReleaseLock, reason: "fence_failed"}},
		{"a leader whose postgres does not answer keeps the key", newObs(iLead, func(o *Observation) { o.PG.Ready = false }),
			want{action: ActionUpdateLock, reason: "pg_not_ready"}},
		{"a lost lock demotes immediate-nolock", newObs(iLead, func(o *Observation) { o.LockLost = true }),
			want{action: ActionDemote, demote: DemoteImmediateNoLock, stop: cluster.StopImmediate,
				msg: "demoted self because failed to update leader lock in DCS"}},
		{"a lost lock while paused keeps postgres running",
			newObs(iLead, paused, func(o *Observation) { o.LockLost = true }),
			want{action: ActionNone, reason: "lock_lost"}},
		{"a lost lock on a replica just waits for the new leader",
			newObs(leaderReplica, func(o *Observation) { o.LockLost = true }),
			want{action: ActionWait, reason: "lock_lost"}},
		{"paused: a leader that is no longer primary releases the key", newObs(leaderReplica, paused),
			want{action: ActionReleaseLock, reason: "paused_not_primary"}},
		{"paused: a leader waiting for its own promotion keeps the key",
			newObs(leaderReplica, paused, failover("", "pg1", "")),
			want{action: ActionUpdateLock, reason: "paused"}},
		{"paused: the leader keeps the lock", newObs(iLead, paused),
			want{action: ActionUpdateLock, msg: "PAUSE: no action. I am (pg1), the leader with the lock"}},
	})
}

func TestDecideSwitchover(t *testing.T) {
	runDecideCases(t, []decideCase{
		{"switchover to a healthy candidate demotes gracefully", newObs(iLead, failover("pg1", "pg2", "")),
			want{action: ActionDemote, demote: DemoteGraceful, stop: cluster.StopFast, member: "pg2", reason: "switchover"}},
		{"switchover without a leader field is addressed to the leader", newObs(iLead, failover("", "pg3", "")),
			want{action: ActionDemote, demote: DemoteGraceful, member: "pg3"}},
		{"failover to any healthy member", newObs(iLead, failover("pg1", "", "")),
			want{action: ActionDemote, demote: DemoteGraceful}},
		{"switchover to an unknown member is cleared", newObs(iLead, failover("pg1", "pg9", "")),
			want{action: ActionUpdateLock, clear: true, reason: "failover_impossible"}},
		{"switchover to a nofailover member is cleared",
			newObs(iLead, failover("pg1", "pg2", ""), memberTags("pg2", map[string]any{"nofailover": true})),
			want{action: ActionUpdateLock, clear: true, reason: "failover_impossible"}},
		{"a candidate lagging more than maximum_lag_on_failover is not eligible",
			newObs(iLead, failover("pg1", "pg2", ""), setMember("pg2", func(m *cluster.Member) { m.XLogLocation = i64(0) }),
				func(o *Observation) { o.View.Status.Optime = 4 << 20 }),
			want{action: ActionUpdateLock, clear: true}},
		{"a candidate that is not running is not eligible",
			newObs(iLead, failover("pg1", "pg2", ""), setMember("pg2", func(m *cluster.Member) { m.State = "starting" })),
			want{action: ActionUpdateLock, clear: true}},
		{"no healthy members: the failover key is cleared",
			newObs(iLead, failover("pg1", "", ""), dropMember("pg2"), dropMember("pg3")),
			want{action: ActionUpdateLock, clear: true, msg: "no healthy members found"}},
		{"a scheduled switchover in the future waits",
			newObs(iLead, failover("pg1", "pg2", t0.Add(time.Hour).Format(time.RFC3339))),
			want{action: ActionUpdateLock, reason: "failover_scheduled", msg: "Awaiting failover"}},
		{"a scheduled switchover to the leader itself waits for its time (Patroni judges it only then)",
			newObs(iLead, failover("pg1", "pg1", t0.Add(time.Hour).Format(time.RFC3339))),
			want{action: ActionUpdateLock, reason: "failover_scheduled", msg: "Awaiting failover"}},
		{"a scheduled switchover to the leader itself is cleared when due",
			newObs(iLead, failover("pg1", "pg1", t0.Add(5*time.Second).Format(time.RFC3339))),
			want{action: ActionUpdateLock, clear: true, reason: "failover_stale"}},
		{"a scheduled switchover due within loop_wait runs",
			newObs(iLead, failover("pg1", "pg2", t0.Add(5*time.Second).Format(time.RFC3339))),
			want{action: ActionDemote, demote: DemoteGraceful, member: "pg2"}},
		{"a stale scheduled switchover is cleared",
			newObs(iLead, failover("pg1", "pg2", t0.Add(-time.Hour).Format(time.RFC3339))),
			want{action: ActionUpdateLock, clear: true, msg: "stale failover"}},
		{"an unparsable scheduled_at is cleared", newObs(iLead, failover("pg1", "pg2", "tomorrow")),
			want{action: ActionUpdateLock, clear: true, reason: "failover_invalid"}},
		{"a failover key naming another leader is cleared", newObs(iLead, failover("pg3", "pg2", "")),
			want{action: ActionUpdateLock, clear: true, reason: "failover_stale"}},
		{"a failover key naming me as candidate is cleared", newObs(iLead, failover("", "pg1", "")),
			want{action: ActionUpdateLock, clear: true}},
		{"sync mode: switchover only to a synchronous standby",
			newObs(iLead, failover("pg1", "pg2", ""), func(o *Observation) {
				o.Config.SynchronousMode = true
				o.View.Sync = &cluster.SyncState{Leader: "pg1", SyncStandby: str("pg3")}
			}),
			want{action: ActionUpdateLock, clear: true}},
	})
}

func TestDecideFollower(t *testing.T) {
	runDecideCases(t, []decideCase{
		{"a primary without the lock demotes immediate-nolock", newObs(primary),
			want{action: ActionDemote, demote: DemoteImmediateNoLock, stop: cluster.StopImmediate,
				msg: "demoting self because I do not have the lock and I was a leader"}},
		{"a primary without the lock that stopped answering is demoted too",
			newObs(primary, func(o *Observation) { o.PG.Ready = false }),
			want{action: ActionDemote, demote: DemoteImmediateNoLock}},
		{"paused: a primary without the lock keeps running", newObs(primary, paused),
			want{action: ActionNone, msg: "PAUSE: continue to run as primary without lock"}},
		{"a replica already following the leader does nothing", newObs(),
			want{action: ActionNone, msg: "no action. I am (pg1), a secondary, and following a leader (pg2)"}},
		{"a replica follows a new leader", newObs(leader("pg3")),
			want{action: ActionFollow, member: "pg3", msg: "following a new leader (pg3)"}},
		{"an unknown upstream after a pgnoded restart is reconfigured",
			newObs(func(o *Observation) { o.Upstream = Upstream{} }),
			want{action: ActionFollow, member: "pg2"}},
		{"a leader whose conn_url changed is followed again",
			newObs(setMember("pg2", func(m *cluster.Member) { m.ConnURL = "postgres://10.0.0.22:5432/postgres" })),
			want{action: ActionFollow, member: "pg2"}},
		{"a leader without a member key: keep the current upstream", newObs(dropMember("pg2")),
			want{action: ActionNone, reason: "no_leader_member"}},
		{"replicatefrom: follow that member", newObs(tags(map[string]any{"replicatefrom": "pg3"})),
			want{action: ActionFollow, member: "pg3"}},
		{"nostream: run standalone", newObs(tags(map[string]any{"nostream": true})),
			want{action: ActionFollow, member: "", msg: "nostream"}},
		{"paused: a replica is not reconfigured", newObs(leader("pg3"), paused),
			want{action: ActionNone, reason: "paused"}},
		{"a replica still starting waits", newObs(func(o *Observation) { o.PG.Ready = false }),
			want{action: ActionWait, reason: "pg_not_ready"}},
	})
}

// Timeline 1 ended at LSN 1000 when pg2 was promoted (cluster timeline 2).
func promotedAt1000(o *Observation) {
	o.View.History = []cluster.HistoryEntry{{Timeline: 1, LSN: 1000, Reason: "no recovery target specified"}}
	o.View.Members["pg2"] = func(m cluster.Member) cluster.Member { m.Timeline = 2; return m }(o.View.Members["pg2"])
	o.UsePgRewind = true
}

func oldPrimaryStopped(state string, checkpoint cluster.LSN) fx {
	return func(o *Observation) {
		pgDown(state)(o)
		o.Data.Control.CheckpointLSN = checkpoint
	}
}

func TestDecideRewind(t *testing.T) {
	noRewind := func(o *Observation) { o.UsePgRewind = false }
	runDecideCases(t, []decideCase{
		{"an old primary that went past the fork point rewinds", newObs(promotedAt1000, oldPrimaryStopped("shut down", 1200)),
			want{action: ActionRewind, member: "pg2", msg: "running pg_rewind from pg2"}},
		{"a crashed old primary (end of WAL unknown) on an older timeline rewinds",
			newObs(promotedAt1000, oldPrimaryStopped("in production", 500)),
			want{action: ActionRewind, member: "pg2"}},
		{"a cleanly stopped old primary behind the fork point follows without rewind",
			newObs(promotedAt1000, oldPrimaryStopped("shut down", 900)),
			want{action: ActionStartReplica, member: "pg2", reason: "follow_leader"}},
		{"a stopped replica behind the fork point follows without rewind",
			newObs(promotedAt1000, oldPrimaryStopped("shut down in recovery", 800)),
			want{action: ActionStartReplica, member: "pg2"}},
		{"diverged without use_pg_rewind: start anyway, loudly",
			newObs(promotedAt1000, noRewind, oldPrimaryStopped("shut down", 1200)),
			want{action: ActionStartReplica, member: "pg2", reason: "timeline_diverged", msg: "replication will fail"}},
		{"pg_rewind failed with remove_data_directory_on_rewind_failure: reinitialize",
			newObs(promotedAt1000, oldPrimaryStopped("shut down", 1200), func(o *Observation) {
				o.RewindFailed, o.RemoveDataDirOnRewindFailure = true, true
			}),
			want{action: ActionReinitialize, member: "pg2"}},
		{"pg_rewind failed without removal: start anyway",
			newObs(promotedAt1000, oldPrimaryStopped("shut down", 1200), func(o *Observation) { o.RewindFailed = true }),
			want{action: ActionStartReplica, member: "pg2", reason: "timeline_diverged"}},
		{"diverged, no rewind, remove_data_directory_on_diverged_timelines: reinitialize",
			newObs(promotedAt1000, noRewind, oldPrimaryStopped("shut down", 1200),
				func(o *Observation) { o.RemoveDataDirOnDivergedTimelines = true }),
			want{action: ActionReinitialize, member: "pg2"}},
		{"maybe diverged does not wipe data even with remove_data_directory_on_diverged_timelines",
			newObs(promotedAt1000, noRewind, oldPrimaryStopped("in production", 500),
				func(o *Observation) { o.RemoveDataDirOnDivergedTimelines = true }),
			want{action: ActionStartReplica, member: "pg2", msg: "may have diverged"}},
		{"no wal_log_hints and no checksums: pg_rewind is not possible",
			newObs(promotedAt1000, oldPrimaryStopped("shut down", 1200), func(o *Observation) { o.Data.Control.WALLogHints = false }),
			want{action: ActionStartReplica, member: "pg2", reason: "timeline_diverged"}},
		{"pg_rewind waits for the leader to be running",
			newObs(promotedAt1000, oldPrimaryStopped("shut down", 1200), setMember("pg2", func(m *cluster.Member) { m.State = "starting" })),
			want{action: ActionWait, reason: "timeline_diverged"}},
		{"a running replica that diverged and does not stream rewinds",
			newObs(promotedAt1000, func(o *Observation) { o.PG.Streaming = false; o.PG.ReplayedLSN = 1300; o.PG.ReceivedLSN = 1300 }),
			want{action: ActionRewind, member: "pg2"}},
		{"a streaming replica is never rewound",
			newObs(promotedAt1000, func(o *Observation) { o.PG.ReplayedLSN = 1300; o.PG.ReceivedLSN = 1300 }),
			want{action: ActionNone, reason: "follower"}},
		{"same timeline as the leader: nothing to rewind", newObs(oldPrimaryStopped("in production", 5000)),
			want{action: ActionStartReplica, member: "pg2", reason: "follow_leader"}},
	})
}

func TestDecideLongAction(t *testing.T) {
	runDecideCases(t, []decideCase{
		{"a clone in progress: wait", newObs(long(LongClone, 0), pgDown("")),
			want{action: ActionWait, reason: "long_action"}},
		{"a restart in place in progress keeps the lock", newObs(iLead, pgDown("in production"), long(LongStartPrimary, 0)),
			want{action: ActionUpdateLock, msg: "restarting after failure in progress"}},
		{"lost the lock during a restart in place: cancel and stop",
			newObs(iLead, pgDown("in production"), long(LongStartPrimary, 0), leader("pg2")),
			want{action: ActionDemote, demote: DemoteImmediateNoLock, cancel: true, reason: "lock_lost"}},
		{"a primary start past primary_start_timeout with a viable replica: cancel and hand over",
			newObs(iLead, pgDown("in production"), long(LongStartPrimary, -301*time.Second)),
			want{action: ActionDemote, demote: DemoteImmediate, cancel: true, reason: "primary_start_timeout"}},
		{"a primary start whose lease is about to expire is cancelled",
			newObs(iLead, pgDown("in production"), long(LongStartPrimary, 0), at(16*time.Second)),
			want{action: ActionDemote, demote: DemoteOffline, cancel: true, reason: "lease_deadline"}},
		{"a bootstrap in progress keeps the lock",
			newObs(leader("pg1"), pgDown(""), long(LongBootstrap, 0), func(o *Observation) { o.View.Initialize = str("") }),
			want{action: ActionUpdateLock, msg: "bootstrap in progress"}},
		{"a bootstrap that lost the key is cancelled",
			newObs(leader("pg2"), pgDown(""), long(LongBootstrap, 0)),
			want{action: ActionDemote, demote: DemoteImmediateNoLock, cancel: true}},
		{"a replica-side long action with postgres running as primary without the lock: cancel and demote",
			newObs(primary, long(LongRewind, 0)),
			want{action: ActionDemote, demote: DemoteImmediateNoLock, cancel: true, reason: "no_lock"}},
		{"a long action during a DCS outage: wait",
			newObs(iLead, pgDown("in production"), long(LongStartPrimary, 0), func(o *Observation) { o.DCSOK = false }),
			want{action: ActionWait, reason: "long_action"}},
		{"paused: a long action is left alone", newObs(iLead, pgDown("in production"), long(LongStartPrimary, 0), paused),
			want{action: ActionNone, reason: "long_action"}},
	})
}
