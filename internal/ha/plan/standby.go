package plan

import (
	"fmt"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Standby clusters (Patroni's docs/standby_cluster.rst; ha.py
// process_healthy_cluster, _get_node_to_follow, recover and bootstrap_standby_leader):
// while the config key holds an active standby_cluster section, the member
// holding the leader key is the standby leader. It runs in recovery
// streaming from the remote primary (standby_cluster.host:port), never
// promotes, and the other members follow it as they follow any leader.

// RemotePrimary is the Decision.Member and Upstream.Name that stand for the
// standby cluster's remote primary instead of a member of this cluster.
const RemotePrimary = "(standby_cluster remote primary)"

// StandbyCluster reports that the effective config makes this a standby
// cluster. A standby_cluster section with a refused setting (its
// create_replica_methods) is not acted on: the node holds still as for any
// refused setting (holdRefused).
func (o Observation) StandbyCluster() bool {
	if !o.Config.StandbyCluster.Active() {
		return false
	}
	for _, k := range o.RefusedConfig {
		if k.Key == "standby_cluster" || strings.HasPrefix(k.Key, "standby_cluster.") {
			return false
		}
	}
	return true
}

// followsRemote reports that the running replica was configured to stream
// from the standby cluster's current remote primary.
func (o Observation) followsRemote() bool {
	return o.Upstream.Known && o.Upstream.Name == RemotePrimary && o.Upstream.ConnURL == o.Config.StandbyCluster.Addr()
}

// decideStandbyLeader replaces decideLeader in a standby cluster: we hold the
// key and postgres runs. A primary is demoted into the standby leader; a
// replica is pointed at the remote primary; nothing is ever promoted.
func decideStandbyLeader(o Observation) Decision {
	lock := func(msg, reason string) Decision {
		return Decision{Action: ActionUpdateLock, Message: msg, Reason: reason}
	}
	if o.Paused() {
		return lock(fmt.Sprintf("PAUSE: no action. I am (%s), the standby leader with the lock", o.Name), "paused")
	}
	if !o.PGReady() {
		return lock(fmt.Sprintf("no action. I am (%s), the standby leader with the lock; postgres is not answering", o.Name),
			"pg_not_ready")
	}
	if !o.PG.InRecovery {
		// The remote primary may be a former standby cluster of ours, promoted
		// (a disaster-recovery switchback): our WAL then went past its fork
		// point, and only pg_rewind lets us follow it (Patroni's
		// _handle_rewind_or_reinitialize against the remote member). With
		// restore_command alone there is no server to rewind from.
		return Decision{Action: ActionDemote, Demote: DemoteCluster, Stop: cluster.StopFast, Member: RemotePrimary,
			RewindRemote: o.canRewindRemote(), ArchiveShutdown: true,
			Message: "cannot be a real primary in standby cluster: demoting self to a standby leader", Reason: "demote_cluster"}
	}
	if d, ok := decideSwitchover(o); ok {
		// A switchover inside the standby cluster: nothing is writable, so no
		// WAL can be lost; stop and hand the key over at once (the candidate
		// takes it as the new standby leader).
		if d.Action == ActionDemote {
			d.Demote, d.Stop = DemoteImmediate, cluster.StopImmediate
			d.Message = "manual failover: demoting myself (the standby leader hands the key over)"
		}
		return d
	}
	if !o.followsRemote() {
		return Decision{Action: ActionFollow, Member: RemotePrimary, Reason: "standby_leader_follow",
			Message: fmt.Sprintf("promoted self to a standby leader because i had the session lock (following the remote primary %s)",
				o.Config.StandbyCluster.Addr())}
	}
	if !o.PG.Streaming && o.notStreamingLong() {
		why := fmt.Sprintf("not streaming from the remote primary %s (unreachable or refusing replication; retrying, restore_command %s)",
			o.Config.StandbyCluster.Addr(), restoreState(o.Config.StandbyCluster))
		d := lock(fmt.Sprintf("no action. I am (%s), the standby leader with the lock; %s", o.Name, why), "remote_not_streaming")
		d.UpstreamError = why
		return d
	}
	return lock(fmt.Sprintf("no action. I am (%s), the standby leader with the lock", o.Name), "standby_leader")
}

// UpstreamError is what the node publishes as its upstream error
// (/patroni's pgnoded_upstream_error) after decision d, prev being the one
// published so far: the decision's own reason while the standby leader does
// not stream; nothing once it streams, outside a standby cluster, or on a
// member following another member's key; otherwise (a long action, a pause,
// postgres restarting, a failed clone backing off) prev stands.
func UpstreamError(prev string, o Observation, d Decision) string {
	switch {
	case !o.StandbyCluster():
		return ""
	case d.UpstreamError != "":
		return d.UpstreamError
	case o.LeaderIsMe() && o.PGReady() && o.PG.InRecovery && o.PG.Streaming && o.followsRemote():
		return ""
	case o.View.Leader != nil && !o.LeaderIsMe():
		return ""
	}
	return prev
}

func restoreState(s *cluster.StandbyCluster) string {
	if s.RestoreCommand == "" {
		return "not set"
	}
	return "in use"
}

// adjustStandby rewrites the decisions of the normal rule book that differ in
// a standby cluster: bootstrap clones the remote primary, a won race makes a
// standby leader instead of a primary, the key holder (re)starts following the
// remote primary, and a replica without a leader streams from the remote site.
func adjustStandby(o Observation, d Decision) Decision {
	switch d.Action {
	case ActionBootstrap:
		d.Member = RemotePrimary
		d.Message = fmt.Sprintf("trying to bootstrap a new standby leader (clone from remote primary %s)", o.Config.StandbyCluster.Addr())
		d.Reason = "bootstrap_standby_leader"
	case ActionAcquire:
		if o.PGReady() && o.PG.InRecovery {
			d.Message = "promoted self to a standby leader by acquiring session lock"
		}
	case ActionRestartInPlace, ActionStartPrimary:
		if o.LeaderIsMe() {
			d = Decision{Action: ActionStartReplica, Member: RemotePrimary, Reason: "standby_leader_start",
				Message: "starting as a standby leader because i had the session lock"}
		}
	case ActionStartReplica:
		switch {
		case o.LeaderIsMe():
			d.Member, d.Reason = RemotePrimary, "standby_leader_start"
			d.Message = "starting as a standby leader because i had the session lock"
		case o.View.Leader == nil && d.Member == "" && !o.Tags.NoStream:
			d.Member = RemotePrimary
			d.Message = "trying to follow a remote member because standby cluster is unhealthy"
		}
	case ActionFatal:
		if d.Reason == "no_initialize_replica" {
			// A standby cluster's members all run in recovery: adopting their data is normal.
			d = Decision{Action: ActionClaimInitialize, Reason: "adopt_data_dir",
				Message: "adopting the existing data directory of a standby cluster"}
		}
	}
	if d.Action == ActionStartReplica && d.Member == RemotePrimary && o.shutDownAsPrimary() {
		d = resumeDemoteCluster(o, d)
	}
	return d
}

// shutDownAsPrimary reports that pg_control says a primary shut down cleanly
// ("shut down"): a replica's shutdown says "shut down in recovery", pg_rewind
// and a clone leave "in archive recovery" or "in production". In a standby
// cluster, where no member is ever a primary, that is a demote-cluster whose
// stop completed and whose start did not (pgnoded restarted in between), or a
// primary stopped while standby_cluster was added.
func (o Observation) shutDownAsPrimary() bool {
	c := o.Data.Control
	return c != nil && c.ClusterState == "shut down"
}

// canRewindRemote: pg_rewind is usable and there is a remote server to rewind
// from (a standby cluster fed by restore_command alone has none).
func (o Observation) canRewindRemote() bool {
	return o.canRewind() && o.Config.StandbyCluster.Host != ""
}

// resumeDemoteCluster completes what demote-cluster does after its stop when
// the data directory shows that it was not done (shutDownAsPrimary): a node
// about to follow the remote primary archives its shutdown checkpoint's
// segment and, when pg_rewind is usable, rewinds from the remote primary
// first. The intent is read from pg_control, not remembered, so it survives a
// pgnoded restart; once pg_rewind or a start in recovery has run, pg_control
// no longer says "shut down" and it is not repeated. pg_rewind itself finds
// whether our timeline forked from the remote's (Patroni's
// _check_timeline_and_lsn asks the same question before running it) and
// changes nothing when it did not.
func resumeDemoteCluster(o Observation, d Decision) Decision {
	d.ArchiveShutdown = true
	d.RewindRemote = o.canRewindRemote()
	d.Reason = "resume_demote_cluster"
	how := "archiving its shutdown checkpoint"
	if d.RewindRemote {
		how += " and running pg_rewind from the remote primary"
	}
	d.Message += fmt.Sprintf(" (the data directory was shut down as a primary: %s first)", how)
	return d
}
