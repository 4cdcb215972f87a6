package ha

import (
	"fmt"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// divergence says whether our data went past the point where the leader's
// timeline forked from ours (§4.10), judged from the history key:
// an entry [tl, lsn] means timeline tl ended at lsn. certain is false when the
// end of our WAL is unknown (a crashed primary) or the entry is missing; callers
// treat that as "diverged, maybe" (pg_rewind is a no-op when it was not).
func divergence(o Observation) (diverged, certain bool) {
	own := o.ownTimeline()
	leaderTL := o.leaderTimeline()
	if own == 0 || leaderTL == 0 || own >= leaderTL {
		return false, true
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

// leaderTimeline is the leader's timeline from its member key, else the cluster's from history.
func (o Observation) leaderTimeline() int {
	if m, ok := o.member(o.leaderName()); ok && m.Timeline > 0 {
		return m.Timeline
	}
	return o.View.Timeline()
}

// walEnd is the end of our WAL when it can be known without reading WAL:
// a running postgres reports it; a clean shutdown ends at its checkpoint; a
// stopped replica has replayed at least to its minimum recovery point.
func (o Observation) walEnd() (cluster.LSN, bool) {
	if o.pgReady() {
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
	leader := o.leaderName()
	lm, ok := o.member(leader)
	if !ok || lm.ConnURL == "" {
		return Decision{}, false
	}
	if o.canRewind() {
		if lm.State != string(cluster.StateRunning) {
			return wait("waiting for leader ("+leader+") to be running before pg_rewind", "timeline_diverged"), true
		}
		end, _ := o.walEnd()
		fork := int64(-1)
		for _, h := range o.View.History {
			if h.Timeline == o.ownTimeline() {
				fork = h.LSN
			}
		}
		return Decision{Action: ActionRewind, Member: leader, Reason: "timeline_diverged",
			Message: fmt.Sprintf("running pg_rewind from %s (my timeline %d ends at %d, the leader's %d forked from it at %d)",
				leader, o.ownTimeline(), uint64(end), o.leaderTimeline(), fork)}, true
	}
	if o.RewindFailed && o.RemoveDataDirOnRewindFailure ||
		certain && !o.canRewind() && o.RemoveDataDirOnDivergedTimelines {
		return Decision{Action: ActionReinitialize, Member: leader, Reason: "timeline_diverged",
			Message: "removing the data directory and cloning again from " + leader +
				" because the timeline diverged and cannot be rewound"}, true
	}
	return Decision{}, false
}
