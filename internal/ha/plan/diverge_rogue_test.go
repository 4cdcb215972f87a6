package plan

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// A rogue is pg1 promoted behind pgnoded's back (SQL pg_promote()) while pg2
// leads on timeline 1: pg1's timeline 2 forked from the leader's and is not in
// its history, so pg1 must be demoted, then rewound (or re-cloned) before it
// can stream from pg2 again.

// rogueRunning: pg1 runs as a primary on timeline 2 without the leader key.
func rogueRunning(o *Observation) {
	primary(o)
	o.PG.Timeline = 2
	o.UsePgRewind = true
}

// rogueStopped: pg1 after the demotion (an immediate stop), before its first
// checkpoint on timeline 2: pg_control's checkpoint is still on timeline 1 and
// its minimum recovery end names timeline 2 (the end-of-recovery record).
func rogueStopped(o *Observation) {
	pgDown("in production")(o)
	o.Data.Control.TimelineID, o.Data.Control.MinRecoveryEndTimeline = 1, 2
	o.UsePgRewind = true
}

// rogueReplica: pg1 restarted as a replica on timeline 2; it cannot stream
// ("highest timeline 1 of the primary is behind recovery timeline 2").
func rogueReplica(notStreamingFor time.Duration) fx {
	return func(o *Observation) {
		o.PG.Timeline, o.PG.Streaming = 2, false
		o.NotStreamingSince = t0.Add(-notStreamingFor)
		o.Data.Control.TimelineID, o.Data.Control.MinRecoveryEndTimeline = 1, 2
		o.UsePgRewind = true
	}
}

func TestDecideRogueAheadOfLeader(t *testing.T) {
	noRewind := func(o *Observation) { o.UsePgRewind = false }
	runDecideCases(t, []decideCase{
		{"a rogue primary without the key is demoted", newObs(rogueRunning),
			want{action: ActionDemote, demote: DemoteImmediateNoLock, stop: cluster.StopImmediate, reason: "no_lock"}},
		{"paused: a rogue primary is left running", newObs(rogueRunning, paused),
			want{action: ActionNone, reason: "paused"}},
		{"a demoted rogue before its first checkpoint on its timeline rewinds", newObs(rogueStopped),
			want{action: ActionRewind, member: "pg2", reason: "timeline_diverged", msg: "ahead of the leader's 1"}},
		{"a demoted rogue whose checkpoint is on its own timeline rewinds",
			newObs(rogueStopped, func(o *Observation) { o.Data.Control.TimelineID, o.Data.Control.MinRecoveryEndTimeline = 2, 0 }),
			want{action: ActionRewind, member: "pg2", reason: "timeline_diverged"}},
		{"a rogue shut down as a replica rewinds",
			newObs(rogueStopped, func(o *Observation) { o.Data.Control.ClusterState = "shut down in recovery" }),
			want{action: ActionRewind, member: "pg2"}},
		{"a rogue several timelines ahead rewinds",
			newObs(rogueStopped, func(o *Observation) { o.Data.Control.MinRecoveryEndTimeline = 5 }),
			want{action: ActionRewind, member: "pg2", msg: "my timeline 5"}},
		{"a rogue ahead of a leader on a later timeline rewinds",
			newObs(rogueStopped, history(cluster.HistoryEntry{Timeline: 1, LSN: 500}),
				setMember("pg2", func(m *cluster.Member) { m.Timeline = 2 }),
				func(o *Observation) { o.Data.Control.TimelineID, o.Data.Control.MinRecoveryEndTimeline = 2, 3 }),
			want{action: ActionRewind, member: "pg2"}},
		{"a rogue waits for the leader to run before pg_rewind",
			newObs(rogueStopped, setMember("pg2", func(m *cluster.Member) { m.State = "starting" })),
			want{action: ActionWait, reason: "timeline_diverged"}},
		{"a rogue without use_pg_rewind but remove_data_directory_on_diverged_timelines reinitializes",
			newObs(rogueStopped, noRewind, func(o *Observation) { o.RemoveDataDirOnDivergedTimelines = true }),
			want{action: ActionReinitialize, member: "pg2", reason: "timeline_diverged"}},
		{"a rogue without wal_log_hints or checksums but remove_data_directory_on_diverged_timelines reinitializes",
			newObs(rogueStopped, func(o *Observation) {
				o.Data.Control.WALLogHints, o.RemoveDataDirOnDivergedTimelines = false, true
			}),
			want{action: ActionReinitialize, member: "pg2"}},
		{"a rogue that cannot be rewound nor re-cloned starts anyway, loudly", newObs(rogueStopped, noRewind),
			want{action: ActionStartReplica, member: "pg2", reason: "timeline_diverged", msg: "replication will fail"}},
		{"a rogue whose pg_rewind failed reinitializes when allowed",
			newObs(rogueStopped, func(o *Observation) { o.RewindFailed, o.RemoveDataDirOnRewindFailure = true, true }),
			want{action: ActionReinitialize, member: "pg2"}},
		{"a rogue whose pg_rewind failed starts anyway",
			newObs(rogueStopped, func(o *Observation) { o.RewindFailed = true }),
			want{action: ActionStartReplica, member: "pg2", reason: "timeline_diverged"}},
		{"a rogue running as a replica that cannot stream rewinds", newObs(rogueReplica(time.Minute)),
			want{action: ActionRewind, member: "pg2", reason: "timeline_diverged", msg: "ahead of the leader's 1"}},
		{"a rogue replica is given the reconnect grace first", newObs(rogueReplica(time.Second)),
			want{action: ActionNone, reason: "follower"}},
		{"a rogue replica whose pg_rewind failed is left running (no restart loop)",
			newObs(rogueReplica(time.Minute), func(o *Observation) { o.RewindFailed = true }),
			want{action: ActionNone, reason: "follower"}},
		{"a rogue replica without use_pg_rewind but remove_data_directory_on_diverged_timelines reinitializes",
			newObs(rogueReplica(time.Minute), noRewind, func(o *Observation) { o.RemoveDataDirOnDivergedTimelines = true }),
			want{action: ActionReinitialize, member: "pg2"}},
		{"paused: a rogue replica is not rewound", newObs(rogueReplica(time.Minute), paused),
			want{action: ActionNone, reason: "paused"}},
	})
}

// The leader's timeline is the newer of its member key's and the history's:
// right after a promotion one of them may lag, and a replica that already
// replays the new timeline must not look like a rogue.
func TestDecideLeaderTimelineLag(t *testing.T) {
	onTL2 := func(o *Observation) {
		pgDown("shut down in recovery")(o)
		o.Data.Control.TimelineID, o.Data.Control.MinRecoveryEndTimeline = 1, 2
		o.Data.Control.CheckpointLSN, o.Data.Control.MinRecoveryEndLSN = 900, 1300
		o.UsePgRewind = true
	}
	runDecideCases(t, []decideCase{
		{"member key still on timeline 1, history already says 2: follow",
			newObs(onTL2, history(cluster.HistoryEntry{Timeline: 1, LSN: 1000})),
			want{action: ActionStartReplica, member: "pg2", reason: "follow_leader"}},
		{"history not written yet, member key says 2: follow",
			newObs(onTL2, setMember("pg2", func(m *cluster.Member) { m.Timeline = 2 })),
			want{action: ActionStartReplica, member: "pg2", reason: "follow_leader"}},
		{"a replica past the fork point on timeline 1 is judged by its replayed timeline, not its checkpoint's",
			newObs(onTL2, promotedAt1000),
			want{action: ActionStartReplica, member: "pg2", reason: "follow_leader"}},
	})
}
