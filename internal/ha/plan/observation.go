package plan

import (
	"sort"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Read-only helpers on Observation used by the rules. None of them mutate.

// Paused reports maintenance mode (the config key's pause).
func (o Observation) Paused() bool { return o.Config.Pause }

// PGWritable is the conservative "may accept writes" test used for fencing:
// a live postmaster not known to be in recovery.
func (o Observation) PGWritable() bool { return o.PG.Running && !o.PG.InRecovery }

// PGReady reports a postmaster that answered the observation query.
func (o Observation) PGReady() bool { return o.PG.Running && o.PG.Ready }

// LeaderIsMe reports that the DCS view names us as leader and UpdateLeader did not contradict it.
func (o Observation) LeaderIsMe() bool {
	return o.View.Leader != nil && o.View.Leader.Name == o.Name && !o.LockLost
}

// HoldUntil is how long our hold on the leader key is known to last.
func (o Observation) HoldUntil() time.Time {
	h := o.LeaseValidUntil
	if o.FailsafeConfirmed && o.FailsafeUntil.After(h) {
		h = o.FailsafeUntil
	}
	return h
}

// holdValid reports that we may still act as leader (start or promote a primary):
// the hold ends after DemoteStart.
func (o Observation) holdValid() bool {
	h := o.HoldUntil()
	return !h.IsZero() && o.Now.Before(DemoteStart(h, o.Config))
}

// DCSUsable reports a fresh view and a live lease: the precondition for any
// decision that relies on the cluster's keys.
func (o Observation) DCSUsable() bool {
	return o.DCSOK && o.LeaseValidUntil.After(o.Now)
}

// Member returns the member key of name, with its Name filled in.
func (o Observation) Member(name string) (cluster.Member, bool) {
	m, ok := o.View.Members[name]
	if ok && m.Name == "" {
		m.Name = name
	}
	return m, ok
}

// LeaderName is the leader key's holder, or "".
func (o Observation) LeaderName() string {
	if o.View.Leader == nil {
		return ""
	}
	return o.View.Leader.Name
}

// ownWAL is the position compared in the race: primary current/flush, replica max(received, replayed).
func (o Observation) ownWAL() cluster.LSN {
	if o.PGReady() {
		return o.PG.WALPosition()
	}
	if c := o.Data.Control; c != nil {
		return max(c.CheckpointLSN, c.MinRecoveryEndLSN)
	}
	return 0
}

// lagBytes is how far pos is behind the last known primary position (status optime); 0 if unknown.
func (o Observation) lagBytes(pos cluster.LSN) int64 {
	if o.View.Status == nil || o.View.Status.Optime <= 0 {
		return 0
	}
	return o.View.Status.Optime - int64(pos)
}

func (o Observation) tooFarBehind(pos cluster.LSN) bool {
	return o.Config.MaximumLagOnFailover >= 0 && o.lagBytes(pos) > o.Config.MaximumLagOnFailover
}

// SyncActive reports synchronous mode with a populated sync key.
func (o Observation) SyncActive() bool {
	return o.Config.SynchronousMode && o.View.Sync != nil && o.View.Sync.Leader != "" && !o.StandbyCluster()
}

// QuorumActive reports a sync key in force whose candidates need quorum votes
// (Patroni's quorum_commit_mode_is_active): synchronous_mode: quorum, or a key
// written with a quorum above 0 (kept while the mode switches back to on).
func (o Observation) QuorumActive() bool {
	return o.SyncActive() && (o.Config.SynchronousQuorum || o.View.Sync.Quorum != nil && *o.View.Sync.Quorum > 0)
}

// SyncQuorum is the sync key's quorum (0 when absent).
func (o Observation) SyncQuorum() int {
	if o.View.Sync == nil || o.View.Sync.Quorum == nil {
		return 0
	}
	return max(*o.View.Sync.Quorum, 0)
}

// InSync reports whether name is the sync key's leader or one of its standbys.
func (o Observation) InSync(name string) bool {
	s := o.View.Sync
	if s == nil {
		return false
	}
	if strings.EqualFold(s.Leader, name) {
		return true
	}
	return o.InSyncStandby(name)
}

// InSyncStandby reports whether name is listed as a synchronous standby (Patroni's sync.matches).
func (o Observation) InSyncStandby(name string) bool {
	return containsFold(o.View.Sync.Standbys(), name)
}

// CandidateOK reports whether member m could take over from us now, judged from
// its member key: may fail over, has an API, runs as a replica, is not too far
// behind, and (check_timeline) is on the cluster timeline.
func (o Observation) CandidateOK(m cluster.Member) bool {
	if m.Name == o.Name || m.APIURL == "" || !ParseTags(m.Tags).CanFailover() {
		return false
	}
	if m.State != string(cluster.StateRunning) || m.Role != string(cluster.RoleReplica) {
		return false
	}
	if m.XLogLocation != nil && o.tooFarBehind(cluster.LSN(max(*m.XLogLocation, 0))) {
		return false
	}
	if o.Config.CheckTimeline && m.Timeline > 0 && m.Timeline < o.View.Timeline() {
		return false
	}
	return true
}

// viableReplica reports whether some other member could take over (used before
// giving up the key because our own postgres does not come back).
func (o Observation) viableReplica() bool {
	for name, m := range o.View.Members {
		m.Name = name
		if o.CandidateOK(m) {
			return true
		}
	}
	return false
}

// pgStartTimeout is primary_start_timeout as a duration.
func (o Observation) pgStartTimeout() time.Duration {
	return time.Duration(o.Config.PrimaryStartTimeout) * time.Second
}

// releasedRecently reports a voluntary release within the last ttl: such a node does not race.
func (o Observation) releasedRecently() bool {
	return !o.ReleasedLockAt.IsZero() && o.Now.Sub(o.ReleasedLockAt) < o.Config.TTLDuration()
}

// streamsFromMe reports whether member name streams WAL from our postgres now (pg_stat_replication).
func (o Observation) streamsFromMe(name string) bool {
	for _, r := range o.PG.Replication {
		if r.ApplicationName == name && r.State == "streaming" {
			return true
		}
	}
	return false
}

// WithStreamedPosition returns m with its xlog_location raised to what our
// pg_stat_replication shows it replayed now: a member key is written once a
// loop, so right after a replica caught up (a clone's WAL switch, a burst of
// writes) it can show a lag the replica no longer has. Patroni asks the
// members' APIs for their current position for the same reason.
func (o Observation) WithStreamedPosition(m cluster.Member) cluster.Member {
	for _, r := range o.PG.Replication {
		if r.ApplicationName == m.Name && r.State == "streaming" {
			if pos := int64(r.ReplayLSN); m.XLogLocation == nil || pos > *m.XLogLocation {
				m.XLogLocation = &pos
			}
		}
	}
	return m
}

// cascades reports whether m replicates from another running member (replicatefrom)
// rather than from us: it is then absent from our pg_stat_replication.
func (o Observation) cascades(m cluster.Member) bool {
	rf := ParseTags(m.Tags).ReplicateFrom
	if rf == "" || rf == o.Name || rf == m.Name {
		return false
	}
	up, ok := o.View.Members[rf]
	return ok && up.State == string(cluster.StateRunning)
}

// notStreamingGrace is how long a running replica may go without streaming
// before its timeline is trusted for a rewind decision: while its WAL receiver
// reconnects (after a new leader, up to wal_retrieve_retry_interval) postgres
// reports the timeline of its last restartpoint, often an older one.
func (o Observation) notStreamingGrace() time.Duration {
	return max(2*o.Config.LoopWaitDuration(), 10*time.Second)
}

// notStreamingLong reports a replica that has not streamed for notStreamingGrace (or is not tracked).
func (o Observation) notStreamingLong() bool {
	return o.NotStreamingSince.IsZero() || o.Now.Sub(o.NotStreamingSince) >= o.notStreamingGrace()
}

// switchoverDemoted reports that this node stepped down for a switchover less than ttl ago.
func (o Observation) switchoverDemoted() bool {
	return !o.SwitchoverDemotedAt.IsZero() && o.Now.Sub(o.SwitchoverDemotedAt) < o.Config.TTLDuration()
}

// otherPrimary names another member whose key says it runs as primary, or "".
func (o Observation) otherPrimary() string {
	names := make([]string, 0, len(o.View.Members))
	for name := range o.View.Members {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m := o.View.Members[name]
		if name != o.Name && IsPrimaryRole(m.Role) && m.State == string(cluster.StateRunning) {
			return name
		}
	}
	return ""
}

func (o Observation) msgPrefix() string {
	if o.Paused() {
		return "PAUSE: "
	}
	return ""
}
