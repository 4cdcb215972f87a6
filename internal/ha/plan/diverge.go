package plan

import (
	"fmt"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// divergence says whether our data went past the point where the leader's
// timeline forked from ours (Patroni's postgresql/rewind.py), judged from the history key:
// an entry [tl, lsn] means timeline tl ended at lsn. certain is false when the
// end of our WAL is unknown (a crashed primary) or the entry is missing; callers
// treat that as "diverged, maybe" (pg_rewind is a no-op when it was not).
//
// A timeline ahead of the leader's has diverged for sure: it was created by a
// promotion the leader never saw (pg_promote() behind our back, or a primary
// that lost its key), and a promotion always writes at least its
// end-of-recovery record on the new timeline, past the fork point.
func divergence(o Observation) (diverged, certain bool) {
	own := o.dataTimeline()
	leaderTL := o.leaderTimeline()
	switch {
	case own == 0 || leaderTL == 0 || own == leaderTL:
		return false, true
	case own > leaderTL:
		return true, true
	}
	end, known := o.walEnd()
	for _, h := range o.View.History {
		if h.Timeline == own {
			if !known {
				return true, false
			}
			return int64(end) > h.LSN, true
		}
	}
	return true, false
}

// aheadOfLeader reports a data timeline newer than the leader's (see divergence).
func (o Observation) aheadOfLeader() bool {
	own, leaderTL := o.dataTimeline(), o.leaderTimeline()
	return own > 0 && leaderTL > 0 && own > leaderTL
}

// dataTimeline is the timeline our WAL is on. For a stopped postgres that is
// not always pg_control's checkpoint timeline: a node promoted and stopped
// before its first checkpoint on the new timeline has its checkpoint on the
// old one; pg_control then names the new one as the minimum recovery end's
// timeline (crash recovery follows it), so the larger of the two counts.
func (o Observation) dataTimeline() int {
	if o.PGReady() && o.PG.Timeline > 0 {
		return o.PG.Timeline
	}
	if c := o.Data.Control; c != nil {
		return max(c.TimelineID, c.MinRecoveryEndTimeline)
	}
	return 0
}

// leaderTimeline is the leader's timeline: the newer of its member key's and
// the cluster's from the history key (either may lag right after a promotion).
func (o Observation) leaderTimeline() int {
	tl := o.View.Timeline()
	if m, ok := o.Member(o.LeaderName()); ok {
		tl = max(tl, m.Timeline)
	}
	return tl
}

// walEnd is the end of our WAL when it can be known without reading WAL:
// a running postgres reports it; a clean shutdown ends at its checkpoint; a
// stopped replica has replayed at least to its minimum recovery point.
func (o Observation) walEnd() (cluster.LSN, bool) {
	if o.PGReady() {
		return o.PG.WALPosition(), true
	}
	c := o.Data.Control
	if c == nil {
		return 0, false
	}
	switch c.ClusterState {
	case "shut down":
		return c.CheckpointLSN, true
	case "shut down in recovery", "in archive recovery":
		return max(c.CheckpointLSN, c.MinRecoveryEndLSN), true
	}
	return 0, false // in production, in crash recovery, shutting down: WAL may go past the checkpoint
}

// canRewind reports whether pg_rewind may be used: enabled, and the data
// directory has wal_log_hints or checksums (when pg_controldata is known).
func (o Observation) canRewind() bool {
	if !o.UsePgRewind || o.RewindFailed {
		return false
	}
	if c := o.Data.Control; c != nil && !c.WALLogHints && !c.DataChecksumsEnabled {
		return false
	}
	return true
}

// decideDiverged chooses what a node whose timeline forked from the leader's does
// before following it: rewind; re-clone when the config allows; else start anyway, loudly.
func decideDiverged(o Observation, certain bool) (Decision, bool) {
	leader := o.LeaderName()
	lm, ok := o.Member(leader)
	if !ok || lm.ConnURL == "" {
		return Decision{}, false
	}
	if o.canRewind() {
		if lm.State != string(cluster.StateRunning) {
			return wait("waiting for leader ("+leader+") to be running before pg_rewind", "timeline_diverged"), true
		}
		return Decision{Action: ActionRewind, Member: leader, Reason: "timeline_diverged",
			Message: "running pg_rewind from " + leader + " (" + o.forkDescription() + ")"}, true
	}
	if o.RewindFailed && o.RemoveDataDirOnRewindFailure ||
		certain && !o.canRewind() && o.RemoveDataDirOnDivergedTimelines {
		return Decision{Action: ActionReinitialize, Member: leader, Reason: "timeline_diverged",
			Message: "removing the data directory and cloning again from " + leader +
				" because the timeline diverged and cannot be rewound (" + o.forkDescription() + ")"}, true
	}
	return Decision{}, false
}

// forkDescription says how our timeline relates to the leader's, for the logs.
func (o Observation) forkDescription() string {
	own, leaderTL := o.dataTimeline(), o.leaderTimeline()
	if o.aheadOfLeader() {
		return fmt.Sprintf("my timeline %d is ahead of the leader's %d: I was promoted without the leader key", own, leaderTL)
	}
	end, _ := o.walEnd()
	fork := int64(-1)
	for _, h := range o.View.History {
		if h.Timeline == own {
			fork = h.LSN
		}
	}
	return fmt.Sprintf("my timeline %d ends at %d, the leader's %d forked from it at %d", own, uint64(end), leaderTL, fork)
}
