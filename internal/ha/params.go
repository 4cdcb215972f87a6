package ha

import (
	"context"
	"encoding/json"
	"github.com/pgnoded/pgnoded/internal/ha/plan"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Dynamic postgres parameters (Patroni's postgresql/config.py reload_config):
// a change of postgresql.parameters in the config key (or in the config file,
// after a reload) rewrites postgres' configuration and reloads it on every node.
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
func (l *loop) noteParams(opts cluster.StartOptions) {
	l.st.conf.paramsKey = paramsKey(opts.Params)
}

// reconcileParams reloads a running postgres whose effective parameters
// changed since it was started or last reloaded, or on an explicit reload.
// A stopped postgres gets the new values when it starts.
func (l *loop) reconcileParams(ctx context.Context) {
	want := paramsKey(l.params(l.st.conf.dyn))
	if l.st.conf.paramsKey == "" {
		l.st.conf.paramsKey = want // adopted a running postgres: assume it runs with the current values
	}
	if want == l.st.conf.paramsKey && !l.st.conf.reloadPG {
		return
	}
	pg := l.st.pg.obs
	if !pg.Running || !pg.Ready || l.st.long.run != nil || l.st.pg.stopping {
		return
	}
	var opts cluster.StartOptions
	if pg.InRecovery {
		if !l.st.pg.upstream.Known {
			return // the follow decision rewrites the configuration with the new values
		}
		var err error
		if opts, _, err = l.replicaOpts(l.st.lease.view, l.st.conf.dyn, l.st.pg.upstream.Name); err != nil {
			l.log.Warn("cannot reload postgres with the new parameters", "err", err)
			return
		}
	} else {
		opts = l.primaryOpts(l.st.conf.dyn)
	}
	octx, cancel := l.opCtx(ctx)
	err := l.deps.Postgres.Reload(octx, opts)
	cancel()
	if err != nil {
		l.log.Warn("reloading postgres failed", "err", err)
		return
	}
	l.log.Info("postgres configuration reloaded", "parameters_changed", want != l.st.conf.paramsKey, "requested", l.st.conf.reloadPG)
	role := cluster.RolePrimary
	if pg.InRecovery {
		role = cluster.RoleReplica
		if l.st.role == cluster.RoleStandbyLeader {
			role = cluster.RoleStandbyLeader
		}
	}
	l.fire([]plan.PlannedCallback{{Callback: cluster.OnReload, Role: role, After: plan.AfterReload}}, plan.AfterReload)
	l.st.conf.paramsKey, l.st.conf.reloadPG = want, false
}
