package plan

import (
	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Phase is the step of an action after which a planned callback fires.
type Phase int

// Phases.
const (
	AfterNow     Phase = iota + 1 // at once, before the action
	AfterStop                     // postgres was stopped by the action
	AfterStart                    // postgres was started by the action (its long action ended well)
	AfterPromote                  // postgres was promoted
	AfterReload                   // postgres reloaded its configuration
	AfterAcquire                  // the leader key was taken (a standby leader, not promoted)
)

var phaseNames = map[Phase]string{AfterNow: "now", AfterStop: "after-stop", AfterStart: "after-start",
	AfterPromote: "after-promote", AfterReload: "after-reload", AfterAcquire: "after-acquire"}

// String names the phase for logs.
func (p Phase) String() string { return phaseNames[p] }

// PlannedCallback is one postgresql.callbacks run a decision plans: Callback
// with Role as its role argument, fired after the step After succeeded.
type PlannedCallback struct {
	Callback cluster.Callback
	Role     cluster.Role
	After    Phase
}

// PlanCallbacks decides which postgresql.callbacks a decision fires, the way
// Patroni's Postgresql methods fire them (postgresql/__init__.py in Patroni):
//
//   - start fires on_start with the role postgres starts in; during a
//     bootstrap nothing fires until the new primary runs (one on_start);
//   - a start as replica after this node was a primary (demoted) fires only
//     on_role_change (Patroni's follow with change_role);
//   - every stop of a running postgres fires on_stop, a promotion fires
//     on_role_change with the primary role, a reload fires on_reload (or
//     on_role_change when a demoted node re-points its recovery);
//   - postgres found running when no start/stop/role callback fired yet since
//     pgnoded started (an adopted postmaster) fires on_start with its role.
//
// In a standby cluster the key holder's role is standby_leader, as Patroni
// passes it (ha.py _get_node_to_follow, Postgresql.follow): its starts, stops
// and reloads name that role, and a change between replica and standby_leader
// fires on_role_change (standbyRole).
//
// A restart on request fires on_restart only (restartNow); a parameter change
// or POST /reload fires on_reload (reconcileParams).
func PlanCallbacks(o Observation, d Decision) []PlannedCallback {
	var out []PlannedCallback
	add := func(cb cluster.Callback, role cluster.Role, after Phase) {
		out = append(out, PlannedCallback{Callback: cb, Role: role, After: after})
	}
	running := o.PG.Running
	current := o.Callbacks.Role
	if o.PGReady() {
		current = cluster.RolePrimary
		if o.PG.InRecovery {
			current = cluster.RoleReplica
			if o.StandbyCluster() && o.LeaderIsMe() {
				current = cluster.RoleStandbyLeader
			}
		}
	}
	follower := standbyRole(o, d) // the role a start or re-point as a replica runs in
	switch d.Action {
	case ActionBootstrap, ActionStartPrimary, ActionRestartInPlace:
		if follower == cluster.RoleStandbyLeader {
			add(cluster.OnStart, cluster.RoleStandbyLeader, AfterStart) // bootstrap_standby_leader
			break
		}
		add(cluster.OnStart, cluster.RolePrimary, AfterStart)
	case ActionClone:
		add(cluster.OnStart, cluster.RoleReplica, AfterStart)
	case ActionStartReplica:
		add(startCallback(o.Callbacks, follower), follower, AfterStart)
	case ActionRewind:
		if running {
			add(cluster.OnStop, current, AfterStop)
		}
		add(startCallback(o.Callbacks, cluster.RoleReplica), cluster.RoleReplica, AfterStart)
	case ActionReinitialize:
		// Patroni's remove_data_directory sets the role to uninitialized: the clone's start is on_start.
		if running {
			add(cluster.OnStop, current, AfterStop)
		}
		add(cluster.OnStart, cluster.RoleReplica, AfterStart)
	case ActionAcquire:
		switch {
		case o.PGReady() && o.PG.InRecovery && o.StandbyCluster():
			// Not promoted. Already following the remote primary, the role
			// changes now; else the re-point of the next cycle fires it (ActionFollow).
			if o.followsRemote() {
				add(cluster.OnRoleChange, cluster.RoleStandbyLeader, AfterAcquire)
			}
		case o.PGReady() && o.PG.InRecovery:
			add(cluster.OnRoleChange, cluster.RolePrimary, AfterPromote)
		}
	case ActionPromote:
		add(cluster.OnRoleChange, cluster.RolePrimary, AfterPromote)
	case ActionDemote:
		if running && d.Demote == DemoteGraceful {
			// A switchover stops postgres once a replica has its shutdown checkpoint:
			// Patroni's on_shutdown has then set the role to demoted.
			add(cluster.OnStop, cluster.RoleDemoted, AfterStop)
		} else if running {
			add(cluster.OnStop, current, AfterStop)
		}
		if d.Demote == DemoteOffline {
			// Patroni's demote('offline') follows no one right away: on_role_change.
			add(cluster.OnRoleChange, cluster.RoleReplica, AfterStart)
		}
		if d.Demote == DemoteCluster {
			// The primary starts again in recovery as the standby leader.
			add(cluster.OnRoleChange, cluster.RoleStandbyLeader, AfterStart)
		}
	case ActionStop:
		if running {
			add(cluster.OnStop, current, AfterStop)
		}
	case ActionFollow:
		switch {
		case startCallback(o.Callbacks, follower) == cluster.OnRoleChange:
			add(cluster.OnRoleChange, follower, AfterReload)
		case follower == cluster.RoleStandbyLeader && o.Callbacks.Called && o.Upstream.Name != RemotePrimary:
			// The new key holder leaves the member it followed for the remote primary.
			add(cluster.OnRoleChange, follower, AfterReload)
		default:
			add(cluster.OnReload, follower, AfterReload)
		}
	}
	if len(out) == 0 && !o.Callbacks.Called && o.Long == nil && o.PGReady() && d.Action != ActionFatal {
		out = append(out, PlannedCallback{Callback: cluster.OnStart, Role: current, After: AfterNow})
	}
	return out
}

// startCallback is the callback of a start in recovery as role (replica or
// standby_leader): on_role_change when the node ran as a primary before, or
// as the other of replica and standby_leader (and a callback fired since
// pgnoded started: Patroni's change_role in Postgresql.follow), else on_start.
func startCallback(s CallbackState, role cluster.Role) cluster.Callback {
	if s.Called && (wasPrimary(s.Role) || s.Role == cluster.RoleReplica && role == cluster.RoleStandbyLeader ||
		s.Role == cluster.RoleStandbyLeader && role == cluster.RoleReplica) {
		return cluster.OnRoleChange
	}
	return cluster.OnStart
}

// standbyRole is the role d's start or re-point in recovery runs in:
// standby_leader for the standby cluster's key holder following the remote
// primary (and its bootstrap, and a primary demoted into it), else replica.
func standbyRole(o Observation, d Decision) cluster.Role {
	if o.StandbyCluster() && d.Member == RemotePrimary &&
		(o.LeaderIsMe() || d.Action == ActionBootstrap || d.Action == ActionDemote) {
		return cluster.RoleStandbyLeader
	}
	return cluster.RoleReplica
}

func wasPrimary(r cluster.Role) bool {
	return r == cluster.RolePrimary || r == cluster.RolePromoted || r == cluster.RoleDemoted
}

// needsPrePromote: pre_promote is set and has not passed for this hold of the key.
func (o Observation) needsPrePromote() bool {
	return o.HasPrePromote && o.PrePromote != PrePromotePassed
}

// prePromoteBackoff: pre_promote failed and the key was given up less than ttl ago.
func (o Observation) prePromoteBackoff() bool {
	return !o.PrePromoteFailedAt.IsZero() && o.Now.Sub(o.PrePromoteFailedAt) < o.Config.TTLDuration()
}
