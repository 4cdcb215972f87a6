package ha

import (
	"context"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"log/slog"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// fire runs the planned callbacks of phase (a nil Hooks runs nothing) and
// notes that a start/stop/role callback was fired (Patroni's cb_called).
func (l *loop) fire(cbs []plan.PlannedCallback, phase plan.Phase) {
	for _, c := range cbs {
		if c.After != phase {
			continue
		}
		if c.Callback != cluster.OnReload {
			l.st.cbCalled = true
		}
		l.log.Debug("callback", "callback", string(c.Callback), "role", string(c.Role), "after", phase.String())
		if l.deps.Hooks != nil {
			l.deps.Hooks.Callback(c.Callback, c.Role)
		}
	}
}

// fireFrom runs callbacks from a long action's worker (the loop notes cb_called when it ends).
func fireFrom(h Hooks, cbs []plan.PlannedCallback) {
	if h == nil {
		return
	}
	for _, c := range cbs {
		h.Callback(c.Callback, c.Role)
	}
}

// hooksFor returns the planned callbacks of phase (for a long action to fire when it ends).
func hooksFor(cbs []plan.PlannedCallback, phase plan.Phase) []plan.PlannedCallback {
	var out []plan.PlannedCallback
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
func (l *loop) runBeforeStop(ctx context.Context, mode cluster.StopMode, deadline time.Time) {
	limit := beforeStopLimit
	switch {
	case !deadline.IsZero():
		limit = max(deadline.Sub(l.now())/2, 0)
	case mode == cluster.StopImmediate:
		limit = l.st.conf.dyn.RetryTimeoutDuration()
	}
	runBeforeStop(ctx, l.deps.Hooks, limit, l.log)
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
