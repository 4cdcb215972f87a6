package ha

import (
	"context"
	"encoding/json"
	"github.com/pgnoded/pgnoded/internal/ha/plan"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Dynamic postgres parameters (patroni-contract.md §5.4): a change of
// postgresql.parameters in the config key (or in the config file, after a
// reload) rewrites postgres' configuration and reloads it on every node.
// Parameters postgres cannot change without a restart show up as
// pending_restart in the next observation (pg_settings), as in Patroni.

// paramsKey is a canonical form of a parameter set (JSON with sorted keys).
func paramsKey(p map[string]any) string {
	b, err := json.Marshal(p)
	if err != nil {
		return "unencodable"
	}
	return string(b)
}

// noteParams records the parameters postgres is being started with.
func (n *Node) noteParams(opts cluster.StartOptions) {
	n.st.paramsKey = paramsKey(opts.Params)
}

// reconcileParams reloads a running postgres whose effective parameters
// changed since it was started or last reloaded, or on an explicit reload.
// A stopped postgres gets the new values when it starts.
func (n *Node) reconcileParams(ctx context.Context) {
	want := paramsKey(n.params(n.st.dyn))
	if n.st.paramsKey == "" {
		n.st.paramsKey = want // adopted a running postgres: assume it runs with the current values
	}
	if want == n.st.paramsKey && !n.st.reloadPG {
		return
	}
	pg := n.st.pg
	if !pg.Running || !pg.Ready || n.st.long != nil || n.st.stopping {
		return
	}
	var opts cluster.StartOptions
	if pg.InRecovery {
		if !n.st.upstream.Known {
			return // the follow decision rewrites the configuration with the new values
		}
		var err error
		if opts, _, err = n.replicaOpts(n.st.view, n.st.dyn, n.st.upstream.Name); err != nil {
			n.log.Warn("cannot reload postgres with the new parameters", "err", err)
			return
		}
	} else {
		opts = n.primaryOpts(n.st.dyn)
	}
	octx, cancel := n.opCtx(ctx)
	err := n.deps.Postgres.Reload(octx, opts)
	cancel()
	if err != nil {
		n.log.Warn("reloading postgres failed", "err", err)
		return
	}
	n.log.Info("postgres configuration reloaded", "parameters_changed", want != n.st.paramsKey, "requested", n.st.reloadPG)
	role := cluster.RolePrimary
	if pg.InRecovery {
		role = cluster.RoleReplica
	}
	n.fire([]plan.PlannedCallback{{Callback: cluster.OnReload, Role: role, After: plan.AfterReload}}, plan.AfterReload)
	n.st.paramsKey, n.st.reloadPG = want, false
}
