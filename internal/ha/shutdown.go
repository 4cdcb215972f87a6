package ha

import (
	"context"
	"errors"
	"fmt"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Shutdown stops the loop (Run returns nil) and then applies the clean-stop
// order. Call it once, after or instead of cancelling Run's context.
//
// stopPostgres=true (SIGTERM: pgnoded and postgres stop):
//  1. stop postgres fast. The shutdown checkpoint is streamed to connected
//     replicas before the postmaster exits, so nothing acknowledged is lost.
//     If postgres will not stop, nothing below happens: we keep the key and
//     the lease, and the fence stops postgres before the lease can end.
//  2. drop the VIP.
//  3. as leader: write status optime = the shutdown checkpoint, then release
//     the leader key, so a replica takes over now instead of after ttl.
//  4. disarm the fence (postgres is down).
//  5. revoke the lease: our member key disappears at once.
//
// stopPostgres=false (pgnoded alone restarts, e.g. systemd RestartKillSignal),
// and also a paused cluster whatever stopPostgres says (maintenance mode leaves
// postgres alone): postgres keeps running, the VIP stays, the lease is NOT
// revoked so a pgnoded started within ttl re-attaches the leader key to its new
// lease (Store.UpdateLeader), and the fence stays armed: if nobody pats it
// before the deadline, it stops postgres before the lease can expire.
func (n *Node) Shutdown(ctx context.Context, stopPostgres bool) error {
	n.quitOnce.Do(func() { close(n.quit) })
	if !n.started.CompareAndSwap(false, true) { // Run is (or was) running: wait for it
		select {
		case <-n.runDone:
		case <-ctx.Done():
			return fmt.Errorf("ha shutdown: waiting for the loop: %w", ctx.Err())
		}
	}
	select { // Run has handed the loop back (or never ran)
	case l := <-n.idle:
		return l.shutdown(ctx, stopPostgres)
	default:
		return errors.New("ha shutdown: called twice")
	}
}

// shutdown is Shutdown's clean-stop order, run with the loop's state after Run returned.
func (l *loop) shutdown(ctx context.Context, stopPostgres bool) error {
	if l.deps.Store == nil || l.deps.Postgres == nil {
		return nil
	}
	view := l.deps.Store.View()
	leader := view.Leader != nil && view.Leader.Name == l.cfg.Name
	paused := l.st.conf.dyn.Pause
	if view.Config != nil {
		paused = view.Config.Pause
	}
	if !stopPostgres || paused {
		l.log.Info("shutting down; postgres keeps running and the lease is kept", "leader", leader, "paused", paused)
		return l.deps.Store.Close(ctx, false)
	}
	l.log.Info("shutting down; stopping postgres", "leader", leader)
	l.st.pg.stopping = true
	if leader && l.deps.Fence != nil && !l.cfg.NoFence {
		// The loop no longer pats the guard: give the shutdown checkpoint the whole current lease.
		if dl := plan.DemoteDeadline(l.deps.Store.LeaseValidUntil(), l.st.conf.dyn); !dl.IsZero() {
			_ = l.deps.Fence.Arm(dl)
		}
	}
	running := l.st.pg.obs.Running
	if running && !leader {
		l.releaseSyncForStop(ctx)
	}
	if running {
		runBeforeStop(ctx, l.deps.Hooks, beforeStopLimit, l.log)
	}
	if err := l.deps.Postgres.Stop(ctx, cluster.StopFast); err != nil {
		l.log.Error("postgres did not stop fast; stopping immediately", "err", err)
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = l.deps.Postgres.Stop(ictx, cluster.StopImmediate)
		cancel()
		if err != nil {
			err = fmt.Errorf("ha shutdown: postgres would not stop; keeping the leader key and the fence: %w", err)
			return errors.Join(err, l.deps.Store.Close(ctx, false))
		}
	}
	l.publishStopped()
	if running && l.deps.Hooks != nil {
		l.deps.Hooks.Callback(cluster.OnStop, l.st.role)
	}
	var errs []error
	if l.deps.VIP != nil {
		if err := l.deps.VIP.Ensure(ctx, false); err != nil {
			errs = append(errs, fmt.Errorf("drop VIP: %w", err))
		}
	}
	if leader {
		if cd, err := l.deps.Postgres.ControlData(ctx); err == nil && cd.CheckpointLSN > 0 {
			if err := l.deps.Store.SetStatus(ctx, cluster.StatusKey{Optime: int64(cd.CheckpointLSN)}); err != nil {
				errs = append(errs, fmt.Errorf("write status: %w", err))
			}
		}
		if err := l.deps.Store.ReleaseLeader(ctx); err != nil {
			errs = append(errs, fmt.Errorf("release leader key: %w", err))
		}
	}
	if l.deps.Fence != nil && !l.cfg.NoFence {
		if err := l.deps.Fence.Disarm(); err != nil {
			errs = append(errs, fmt.Errorf("disarm fence: %w", err))
		}
	}
	if err := l.deps.Store.Close(ctx, true); err != nil {
		errs = append(errs, fmt.Errorf("revoke lease: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ha shutdown: %w", err)
	}
	return nil
}

// publishStopped tells the REST API (and so the peers racing for the key we
// are about to release) that postgres is down and we no longer lead.
func (l *loop) publishStopped() {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	s := *l.snap.Load()
	s.PG.Running, s.PG.Ready, s.PG.State = false, false, cluster.StateStopped
	s.Role, s.LeaderUntil, s.VIPBound = cluster.RoleDemoted, time.Time{}, false
	s.Action = "pgnoded is shutting down; postgres stopped"
	l.snap.Store(&s)
}
