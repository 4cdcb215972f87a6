package restapi

import (
	"strconv"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// renderMetrics writes Patroni's /metrics (api.py do_GET_metrics) in the
// Prometheus text format for the snapshot's compat level: 3.0.2 labels {scope}
// and includes patroni_master; 4.1.4 labels {scope,name} and adds the quorum,
// streaming, archive-recovery and postgres_state series. Names and TYPEs are
// Patroni's, including its counters without _total (kept for compatibility).
// Unlike 3.0.2, no stray space is written after patroni_postgres_server_version.
func renderMetrics(s *cluster.Snapshot, d *statusDoc) []byte {
	compat4 := s.Compat == cluster.Compat4
	var labels strings.Builder
	labels.WriteString(`{scope="`)
	labels.WriteString(escapeLabel(s.Scope))
	if compat4 {
		labels.WriteString(`",name="`)
		labels.WriteString(escapeLabel(s.Name))
	}
	labels.WriteString(`"}`)
	m := metricWriter{labels: labels.String()}

	var location, received, replayed int64
	paused := false
	replayedTS := "0"
	switch x := d.XLog.(type) {
	case xlogPrimary:
		location = x.Location
	case xlogReplica:
		received, replayed, paused = x.ReceivedLocation, x.ReplayedLocation, x.Paused
		if s.PG.ReplayedAt != nil {
			replayedTS = pyEpochSeconds(*s.PG.ReplayedAt)
		}
	}
	startTime := "0"
	if d.PostmasterStartTime != "" {
		startTime = pyEpochSeconds(s.PG.PostmasterStartTime)
	}
	isPrimary := d.Role == roleMaster || d.Role == rolePrimary
	timeline := "0"
	if len(d.Timeline) > 0 && string(d.Timeline) != "null" {
		timeline = string(d.Timeline)
	}

	m.add("patroni_version", "gauge", "Patroni semver without periods.", paddedVersion(s.Compat.Version()))
	m.add("patroni_postgres_running", "gauge", "Value is 1 if Postgres is running, 0 otherwise.", b2s(d.State == string(cluster.StateRunning)))
	m.add("patroni_postmaster_start_time", "gauge", "Epoch seconds since Postgres started.", startTime)
	if !compat4 {
		m.add("patroni_master", "gauge", "Value is 1 if this node is the leader, 0 otherwise.", b2s(isPrimary))
	}
	m.add("patroni_primary", "gauge", "Value is 1 if this node is the leader, 0 otherwise.", b2s(isPrimary))
	m.add("patroni_xlog_location", "counter", "Current location of the Postgres transaction log, 0 if this node is not the leader.", i2s(location))
	m.add("patroni_standby_leader", "gauge", "Value is 1 if this node is the standby_leader, 0 otherwise.", b2s(d.Role == roleStandbyLeader))
	m.add("patroni_replica", "gauge", "Value is 1 if this node is a replica, 0 otherwise.", b2s(d.Role == roleReplica))
	if compat4 {
		m.add("patroni_sync_standby", "gauge", "Value is 1 if this node is a sync standby, 0 otherwise.", b2s(d.SyncStandby))
		m.add("patroni_quorum_standby", "gauge", "Value is 1 if this node is a quorum standby, 0 otherwise.", b2s(d.QuorumStandby))
	} else {
		m.add("patroni_sync_standby", "gauge", "Value is 1 if this node is a sync standby replica, 0 otherwise.", b2s(d.SyncStandby))
	}
	m.add("patroni_xlog_received_location", "counter", "Current location of the received Postgres transaction log, 0 if this node is not a replica.", i2s(received))
	m.add("patroni_xlog_replayed_location", "counter", "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.", i2s(replayed))
	m.add("patroni_xlog_replayed_timestamp", "gauge", "Current timestamp of the replayed Postgres transaction log, 0 if null.", replayedTS)
	m.add("patroni_xlog_paused", "gauge", "Value is 1 if the Postgres xlog is paused, 0 otherwise.", b2s(paused))
	if compat4 && d.ServerVersion >= 90600 {
		m.add("patroni_postgres_streaming", "gauge", "Value is 1 if Postgres is streaming, 0 otherwise.", b2s(d.ReplicationState == "streaming"))
		m.add("patroni_postgres_in_archive_recovery", "gauge", "Value is 1 if Postgres is replicating from archive, 0 otherwise.", b2s(d.ReplicationState == "in archive recovery"))
	}
	m.add("patroni_postgres_server_version", "gauge", "Version of Postgres (if running), 0 otherwise.", strconv.Itoa(d.ServerVersion))
	m.add("patroni_cluster_unlocked", "gauge", "Value is 1 if the cluster is unlocked, 0 if locked.", b2s(d.ClusterUnlocked))
	if compat4 {
		m.add("patroni_failsafe_mode_is_active", "gauge", "Value is 1 if failsafe mode is active, 0 if inactive.", b2s(d.FailsafeActive))
		m.add("patroni_postgres_timeline", "gauge", "Postgres timeline of this node (if running), 0 otherwise.", timeline)
	} else {
		m.add("patroni_failsafe_mode_is_active", "gauge", "Value is 1 if the cluster is unlocked, 0 if locked.", b2s(d.FailsafeActive))
		m.add("patroni_postgres_timeline", "counter", "Postgres timeline of this node (if running), 0 otherwise.", timeline)
	}
	m.add("patroni_dcs_last_seen", "gauge", "Epoch timestamp when DCS was last contacted successfully by Patroni.", i2s(d.DCSLastSeen))
	m.add("patroni_pending_restart", "gauge", "Value is 1 if the node needs a restart, 0 otherwise.", b2s(d.PendingRestart))
	m.add("patroni_is_paused", "gauge", "Value is 1 if auto failover is disabled, 0 otherwise.", b2s(d.Pause))
	if compat4 {
		m.b.WriteString("# HELP patroni_postgres_state Numeric representation of Postgres state.\n")
		m.b.WriteString("# Values: " + postgresStateValues + "\n")
		m.b.WriteString("# TYPE patroni_postgres_state gauge\n")
		m.sample("patroni_postgres_state", strconv.Itoa(postgresStateIndex(d.State)))
	}
	return []byte(m.b.String())
}

type metricWriter struct {
	labels string
	b      strings.Builder
}

func (m *metricWriter) add(name, typ, help, value string) {
	m.b.WriteString("# HELP " + name + " " + help + "\n")
	m.b.WriteString("# TYPE " + name + " " + typ + "\n")
	m.sample(name, value)
}

func (m *metricWriter) sample(name, value string) {
	m.b.WriteString(name)
	m.b.WriteString(m.labels)
	m.b.WriteByte(' ')
	m.b.WriteString(value)
	m.b.WriteByte('\n')
}

// escapeLabel escapes a label value for the text format.
func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// paddedVersion turns "3.0.2" into "030002".
func paddedVersion(v string) string {
	var b strings.Builder
	for _, part := range strings.Split(v, ".") {
		if len(part) < 2 {
			b.WriteString(strings.Repeat("0", 2-len(part)))
		}
		b.WriteString(part)
	}
	return b.String()
}

func b2s(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func i2s(n int64) string { return strconv.FormatInt(n, 10) }

// postgresStates is Patroni 4.1's PostgresqlState enum in index order.
var postgresStates = []string{
	"initializing new cluster", "initdb failed", "running custom bootstrap script",
	"custom bootstrap failed", "creating replica", "running", "starting",
	"starting after custom bootstrap", "start failed", "restarting", "restart failed",
	"stopping", "stopped", "stop failed", "crashed",
}

const postgresStateValues = "0=initdb, 1=initdb_failed, 2=custom_bootstrap, 3=custom_bootstrap_failed, " +
	"4=creating_replica, 5=running, 6=starting, 7=bootstrap_starting, 8=start_failed, 9=restarting, " +
	"10=restart_failed, 11=stopping, 12=stopped, 13=stop_failed, 14=crashed"

// postgresStateIndex is the numeric state of patroni_postgres_state (-1 unknown).
func postgresStateIndex(state string) int {
	for i, s := range postgresStates {
		if s == state {
			return i
		}
	}
	return -1
}
