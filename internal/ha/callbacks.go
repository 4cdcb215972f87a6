package ha

import (
	"context"
	"log/slog"
	"time"

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
)

var phaseNames = map[Phase]string{AfterNow: "now", AfterStop: "after-stop", AfterStart: "after-start",
	AfterPromote: "after-promote", AfterReload: "after-reload"}

// String names the phase for logs.
func (p Phase) String() string { return phaseNames[p] }

// PlannedCallback is one postgresql.callbacks run a decision plans: Callback
// with Role as its role argument, fired after the step After succeeded.
type PlannedCallback struct {
	Callback cluster.Callback
	Role     cluster.Role
	After    Phase
}

// planCallbacks decides which postgresql.callbacks a decision fires, the way
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
// A restart on request fires on_restart only (restartNow); a parameter change
// or POST /reload fires on_reload (reconcileParams).
func planCallbacks(o Observation, d Decision) []PlannedCallback {
	var out []PlannedCallback
	add := func(cb cluster.Callback, role cluster.Role, after Phase) {
		out = append(out, PlannedCallback{Callback: cb, Role: role, After: after})
	}
	running := o.PG.Running
	current := o.Callbacks.Role
	if o.pgReady() {
		current = cluster.RolePrimary
		if o.PG.InRecovery {
			current = cluster.RoleReplica
		}
	}
	switch d.Action {
	case ActionBootstrap, ActionStartPrimary, ActionRestartInPlace:
		add(cluster.OnStart, cluster.RolePrimary, AfterStart)
	case ActionClone:
		add(cluster.OnStart, cluster.RoleReplica, AfterStart)
	case ActionStartReplica:
		add(replicaStartCallback(o.Callbacks), cluster.RoleReplica, AfterStart)
	case ActionRewind:
		if running {
			add(cluster.OnStop, current, AfterStop)
		}
		add(replicaStartCallback(o.Callbacks), cluster.RoleReplica, AfterStart)
	case ActionReinitialize:
		// Patroni's remove_data_directory sets the role to uninitialized: the clone's start is on_start.
		if running {
			add(cluster.OnStop, current, AfterStop)
		}
		add(cluster.OnStart, cluster.RoleReplica, AfterStart)
	case ActionAcquire:
		if o.pgReady() && o.PG.InRecovery {
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
	case ActionStop:
		if running {
			add(cluster.OnStop, current, AfterStop)
		}
	case ActionFollow:
		if o.Callbacks.Called && wasPrimary(o.Callbacks.Role) {
			add(cluster.OnRoleChange, cluster.RoleReplica, AfterReload)
		} else {
			add(cluster.OnReload, cluster.RoleReplica, AfterReload)
		}
	}
	if len(out) == 0 && !o.Callbacks.Called && o.Long == nil && o.pgReady() && d.Action != ActionFatal {
		out = append(out, PlannedCallback{Callback: cluster.OnStart, Role: current, After: AfterNow})
	}
	return out
}

// replicaStartCallback is on_role_change when the node ran as a primary before
// (and a callback fired since pgnoded started), else on_start.
func replicaStartCallback(s CallbackState) cluster.Callback {
	if s.Called && wasPrimary(s.Role) {
		return cluster.OnRoleChange
	}
	return cluster.OnStart
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

// fire runs the planned callbacks of phase (a nil Hooks runs nothing) and
// notes that a start/stop/role callback was fired (Patroni's cb_called).
func (n *Node) fire(cbs []PlannedCallback, phase Phase) {
	for _, c := range cbs {
		if c.After != phase {
			continue
		}
		if c.Callback != cluster.OnReload {
			n.st.cbCalled = true
		}
		n.log.Debug("callback", "callback", string(c.Callback), "role", string(c.Role), "after", phase.String())
		if n.deps.Hooks != nil {
			n.deps.Hooks.Callback(c.Callback, c.Role)
		}
	}
}

// fireFrom runs callbacks from a long action's worker (the loop notes cb_called when it ends).
func fireFrom(h Hooks, cbs []PlannedCallback) {
	if h == nil {
		return
	}
	for _, c := range cbs {
		h.Callback(c.Callback, c.Role)
	}
}

// hooksFor returns the planned callbacks of phase (for a long action to fire when it ends).
func hooksFor(cbs []PlannedCallback, phase Phase) []PlannedCallback {
	var out []PlannedCallback
	for _, c := range cbs {
		if c.After == phase {
			out = append(out, c)
		}
	}
	return out
}

// runBeforeStop runs postgresql.before_stop (when set) before a running postgres
// is stopped in mode; its exit status is logged and otherwise ignored. It is
// bounded (Patroni waits without a bound): by half the time left before a
// stop's deadline (the stop needs the rest); by retry_timeout before an
// immediate stop (a primary that must stop now: another node holds the key,
// or it is unfit); else by beforeStopLimit.
func (n *Node) runBeforeStop(ctx context.Context, mode cluster.StopMode, deadline time.Time) {
	limit := beforeStopLimit
	switch {
	case !deadline.IsZero():
		limit = max(deadline.Sub(n.now())/2, 0)
	case mode == cluster.StopImmediate:
		limit = n.st.dyn.RetryTimeoutDuration()
	}
	runBeforeStop(ctx, n.deps.Hooks, limit, n.log)
}

// beforeStopLimit bounds before_stop when the stop has no deadline of its own
// (Patroni waits without a bound; a hung script must not hold the loop forever).
const beforeStopLimit = 60 * time.Second

// runBeforeStop runs before_stop with h for at most limit.
func runBeforeStop(ctx context.Context, h Hooks, limit time.Duration, log *slog.Logger) {
	if h == nil || !h.Configured(cluster.BeforeStop) {
		return
	}
	bctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if _, exit, err := h.Run(bctx, cluster.BeforeStop); err != nil || exit != 0 {
		log.Info("before_stop did not succeed; stopping postgres anyway", "exit", exit, "err", err)
	}
}
