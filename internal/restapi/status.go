package restapi

import (
	"encoding/json"
	"maps"
	"strconv"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// statusDoc is the node status document (GET /patroni and the body of every GET
// health check; Patroni's api.py get_postgresql_status). Field order follows Patroni's.
type statusDoc struct {
	State               string                           `json:"state"`
	PostmasterStartTime string                           `json:"postmaster_start_time,omitempty"`
	Role                string                           `json:"role"`
	ServerVersion       int                              `json:"server_version,omitempty"`
	XLog                any                              `json:"xlog,omitempty"`
	SyncStandby         bool                             `json:"sync_standby,omitempty"`
	QuorumStandby       bool                             `json:"quorum_standby,omitempty"` // 4.x
	Timeline            json.RawMessage                  `json:"timeline,omitempty"`
	ReplicationState    string                           `json:"replication_state,omitempty"`
	Replication         []cluster.ReplicationRow         `json:"replication,omitempty"`
	ClusterUnlocked     bool                             `json:"cluster_unlocked,omitempty"`
	FailsafeActive      bool                             `json:"failsafe_mode_is_active,omitempty"`
	DCSLastSeen         int64                            `json:"dcs_last_seen"`
	Tags                map[string]any                   `json:"tags,omitempty"`
	SystemID            string                           `json:"database_system_identifier,omitempty"`
	PendingRestart      bool                             `json:"pending_restart,omitempty"`
	PendingRestartWhy   map[string]cluster.PendingChange `json:"pending_restart_reason,omitempty"`
	Patroni             patroniInfo                      `json:"patroni"`
	ScheduledRestart    map[string]any                   `json:"scheduled_restart,omitempty"`
	WatchdogFailed      bool                             `json:"watchdog_failed,omitempty"`
	Pause               bool                             `json:"pause,omitempty"`
	// UpstreamError is pgnoded's own: why a standby leader does not stream from
	// the remote primary (Patroni's clients ignore keys they do not know).
	UpstreamError string `json:"pgnoded_upstream_error,omitempty"`
}

type patroniInfo struct {
	Version string `json:"version"`
	Scope   string `json:"scope"`
	Name    string `json:"name,omitempty"` // 3.2+
}

type xlogPrimary struct {
	Location int64 `json:"location"`
}

type xlogReplica struct {
	ReceivedLocation  int64   `json:"received_location"`
	ReplayedLocation  int64   `json:"replayed_location"`
	ReplayedTimestamp *string `json:"replayed_timestamp"`
	Paused            bool    `json:"paused"`
}

// Role strings as they appear in the status document.
const (
	roleMaster        = "master"
	rolePrimary       = "primary"
	roleReplica       = "replica"
	roleStandbyLeader = "standby_leader"
)

// facts are the snapshot-derived inputs of the health checks, computed once per
// (snapshot, DCS availability) so that a check does no work beyond comparisons.
type facts struct {
	running          bool   // document state == "running"
	pgStateRunning   bool   // postgres state is "running" (even if the status query failed)
	role             string // the document's role
	isPrimaryRole    bool   // role master/primary
	replayed         int64  // xlog.replayed_location, 0 unless a replica
	received         int64  // xlog.received_location
	replState        string // replication_state
	syncStandby      bool   // document's sync_standby
	quorumStandby    bool   // document's quorum_standby (4.x)
	noLoadBalance    bool
	leaderLSN        int64 // max(status optime while the DCS view is valid, walreceiver latest_end_lsn)
	dcs              bool  // the DCS view is valid (Patroni's dcs.cluster is not None)
	paused           bool
	standbyCluster   bool
	failsafeActive   bool
	compat4          bool
	maxLagOnFailover int64
	tags             map[string]any
}

// queryOK mirrors Patroni's get_postgresql_status: the status query only runs
// (and the full document is only built) while postgres is running, restarting or
// starting and answered in this observation.
func queryOK(pg *cluster.PGObservation) bool {
	switch pg.State {
	case cluster.StateRunning, cluster.StateRestarting, cluster.StateStarting:
		return pg.Running && pg.Ready
	}
	return false
}

// buildStatus derives the status document and the health facts from s; dcs says
// whether the cached DCS view is still valid.
func buildStatus(s *cluster.Snapshot, dcs bool) (statusDoc, facts) {
	pg := &s.PG
	d := statusDoc{DCSLastSeen: unixOrZero(s.View.ReadAt)}
	f := facts{
		dcs: dcs, paused: s.Paused, standbyCluster: s.StandbyCluster, failsafeActive: s.FailsafeActive,
		compat4: s.Compat == cluster.Compat4, tags: s.Tags, noLoadBalance: cluster.TagOn(s.Tags, cluster.TagNoLoadBalance),
		maxLagOnFailover: s.Config.MaximumLagOnFailover,
	}
	if queryOK(pg) {
		d.State = string(pg.State)
		if !pg.PostmasterStartTime.IsZero() {
			d.PostmasterStartTime = pyfmt.Isoformat(pg.PostmasterStartTime, ' ')
		}
		d.ServerVersion = pg.ServerVersion
		if !pg.InRecovery {
			d.Role = s.Compat.RoleName(cluster.RolePrimary)
			loc := pg.CurrentLSN
			if f.compat4 && pg.FlushLSN != 0 {
				loc = pg.FlushLSN
			}
			d.XLog = xlogPrimary{Location: lsnInt(loc)}
			d.Timeline = intJSON(pg.Timeline)
		} else {
			d.Role = roleReplica
			if s.StandbyCluster {
				d.Role = roleName(s)
			}
			x := xlogReplica{ReplayedLocation: lsnInt(pg.ReplayedLSN), Paused: pg.ReplayPaused}
			x.ReceivedLocation = x.ReplayedLocation
			if pg.ReceivedLSN != 0 {
				x.ReceivedLocation = lsnInt(pg.ReceivedLSN)
			}
			if pg.ReplayedAt != nil {
				ts := pyfmt.Isoformat(*pg.ReplayedAt, ' ')
				x.ReplayedTimestamp = &ts
			}
			d.XLog = x
			f.replayed, f.received = x.ReplayedLocation, x.ReceivedLocation
			d.Timeline = intJSON(replicaTimeline(s))
			if pg.Streaming {
				d.ReplicationState = "streaming"
			}
			if d.Role == roleReplica && dcs {
				d.SyncStandby, d.QuorumStandby = syncRole(s)
			}
		}
		d.Replication = pg.Replication
	} else {
		d.State = string(pg.State)
		switch {
		case d.State == "":
			d.State = string(cluster.StateUnknown)
		case pg.State == cluster.StateRunning:
			d.State = string(cluster.StateUnknown) // the status query failed
		}
		d.Role = roleName(s)
	}
	d.ClusterUnlocked = !dcs || s.View.Leader == nil
	d.FailsafeActive = s.FailsafeActive
	if len(s.Tags) > 0 {
		d.Tags = s.Tags
	}
	d.SystemID = pg.SystemID
	d.PendingRestart = s.PendingRestart
	if f.compat4 && len(pg.PendingRestartWhy) > 0 {
		d.PendingRestart = true
		d.PendingRestartWhy = pg.PendingRestartWhy
	}
	d.Patroni = patroniInfo{Version: s.Compat.Version(), Scope: s.Scope}
	if f.compat4 {
		d.Patroni.Name = s.Name
	}
	d.ScheduledRestart = scheduledRestartDoc(s.ScheduledRestart)
	d.WatchdogFailed = s.WatchdogFailed
	d.Pause = s.Paused
	d.UpstreamError = s.UpstreamError

	f.running = d.State == string(cluster.StateRunning)
	f.pgStateRunning = pg.State == cluster.StateRunning
	f.role = d.Role
	f.isPrimaryRole = d.Role == roleMaster || d.Role == rolePrimary
	f.replState = d.ReplicationState
	f.syncStandby, f.quorumStandby = d.SyncStandby, d.QuorumStandby
	if dcs && s.View.Status != nil {
		f.leaderLSN = s.View.Status.Optime
	}
	if latest := lsnInt(pg.ReceiverLatest); queryOK(pg) && pg.InRecovery && latest > f.leaderLSN {
		f.leaderLSN = latest // 4.1+: the WAL receiver's latest_end_lsn counts too
	}
	return d, f
}

// syncRole says whether this replica is a synchronous standby and whether a
// quorum one: listed in the sync key (cluster.SyncState.Lists) while the mode
// is on. 3.0.2 (api.py get_postgresql_status) knows only synchronous_mode on,
// which parse_bool does not read "quorum" as; 4.x reports quorum_standby
// instead under synchronous_mode: quorum and neither in a standby cluster.
func syncRole(s *cluster.Snapshot) (syncStandby, quorumStandby bool) {
	c := s.Config
	if !c.SynchronousMode || !s.View.Sync.Lists(s.Name, s.Compat) {
		return false, false
	}
	if s.Compat != cluster.Compat4 {
		return !c.SynchronousQuorum, false
	}
	if s.StandbyCluster {
		return false, false
	}
	return !c.SynchronousQuorum, c.SynchronousQuorum
}

// roleName is Patroni's cached postgresql.role in the compat spelling.
func roleName(s *cluster.Snapshot) string {
	if s.Role == "" {
		return string(cluster.RoleUninitialized)
	}
	return s.Compat.RoleName(s.Role)
}

// replicaTimeline is the replica's cached timeline: its own, the WAL receiver's, or the leader member's.
func replicaTimeline(s *cluster.Snapshot) int {
	if s.PG.Timeline > 0 {
		return s.PG.Timeline
	}
	if s.PG.ReceiverTLI > 0 {
		return s.PG.ReceiverTLI
	}
	if s.View.Leader != nil {
		if m, ok := s.View.Members[s.View.Leader.Name]; ok {
			return m.Timeline
		}
	}
	return 0
}

// intJSON renders a timeline: the number, or null when unknown (Patroni's None).
func intJSON(n int) json.RawMessage {
	if n <= 0 {
		return json.RawMessage("null")
	}
	return json.RawMessage(strconv.Itoa(n))
}

func lsnInt(l cluster.LSN) int64 {
	if l > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(l)
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// scheduledRestartDoc copies the scheduled restart without postmaster_start_time,
// with the schedule in isoformat (Patroni publishes it that way).
func scheduledRestartDoc(sr map[string]any) map[string]any {
	if len(sr) == 0 {
		return nil
	}
	out := maps.Clone(sr)
	delete(out, "postmaster_start_time")
	switch t := out["schedule"].(type) {
	case time.Time:
		out["schedule"] = pyfmt.Isoformat(t, 'T')
	case *time.Time:
		if t != nil {
			out["schedule"] = pyfmt.Isoformat(*t, 'T')
		}
	}
	return out
}

// minimalStatus is the /patroni body before the first snapshot.
var minimalStatus = []byte(`{"state": "unknown", "role": "uninitialized", "cluster_unlocked": true, "dcs_last_seen": 0}`)
