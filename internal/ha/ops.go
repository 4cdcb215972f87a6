package ha

import (
	"context"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// Operator requests (Patroni's api.py do_POST_restart, do_DELETE_restart,
// do_POST_reinitialize, do_POST_reload). The REST API calls the exported
// methods of Node from its own goroutines. Requests that touch postgres
// (restart, reinitialize) are handed to the HA loop, which alone owns postgres
// and answers them (loop.handleOp); those that only write the DCS (switchover,
// config) run in the caller's goroutine against the Store and wake the loop
// (docs/architecture.md, "Goroutines and who owns what"). Every method returns a cluster.OpResult
// or a *cluster.OpError carrying Patroni's reply text; the REST API maps them
// to HTTP statuses.

// SwitchoverRequest is a validated POST /switchover or /failover body.
type SwitchoverRequest struct {
	Leader      string    // current leader named by the caller ("" only for a failover)
	Candidate   string    // "" means any healthy member
	ScheduledAt time.Time // zero: now
}

// RestartRequest is a validated POST /restart body.
type RestartRequest struct {
	Schedule        time.Time     // zero: now
	Role            string        // "", master, primary, standby_leader or replica: restart only in that role
	PostgresVersion string        // "" or X.Y / X.Y.Z: restart only when the running version is lower
	Timeout         time.Duration // 0: primary_start_timeout
	RestartPending  bool          // restart only when postgres flags a pending restart
}

// ReinitializeRequest is a POST /reinitialize body.
type ReinitializeRequest struct {
	Force      bool // cancel a running long action first
	FromLeader bool // clone from the leader even when a clonefrom member exists
}

type opKind int

const (
	opRestart opKind = iota + 1
	opDeleteRestart
	opReinitialize
)

// opRequest is a request handed to the loop; it answers on reply (capacity 1).
type opRequest struct {
	kind    opKind
	restart RestartRequest
	reinit  ReinitializeRequest
	reply   chan opReply
}

type opReply struct {
	res cluster.OpResult
	err error
}

func replyTo(ch chan opReply, res cluster.OpResult, err error) {
	if ch == nil {
		return
	}
	select {
	case ch <- opReply{res: res, err: err}:
	default: // already answered
	}
}

// submit hands req to the loop and waits for its answer. A restart waits at
// most wait (when > 0) for postgres to come back: then "postgres is still starting".
func (n *Node) submit(ctx context.Context, req *opRequest, wait time.Duration) (cluster.OpResult, error) {
	req.reply = make(chan opReply, 1)
	n.sending()
	select {
	case n.opCh <- req:
	case <-n.runDone:
		n.unsent()
		return cluster.OpResult{}, errShuttingDown
	case <-ctx.Done():
		n.unsent()
		return cluster.OpResult{}, cluster.Refuse(cluster.OpUnavailable, "the HA loop did not take the request: "+ctx.Err().Error())
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case r := <-req.reply:
		return r.res, r.err
	case <-timeout:
		return cluster.OpResult{}, cluster.Refuse(cluster.OpUnavailable, "postgres is still starting")
	case <-n.runDone:
		return cluster.OpResult{}, errShuttingDown
	case <-ctx.Done():
		return cluster.OpResult{}, cluster.Refuse(cluster.OpUnavailable, "restart status unknown: "+ctx.Err().Error())
	}
}

// errShuttingDown answers a request the loop will never take.
var errShuttingDown = cluster.Refuse(cluster.OpShuttingDown, "pgnoded is shutting down")

// Restart restarts postgres now ("restarted successfully" / OpFailed,
// OpUnavailable) or schedules the restart ("Restart scheduled" / OpConflict
// when one is already scheduled).
func (n *Node) Restart(ctx context.Context, req RestartRequest) (cluster.OpResult, error) {
	wait := req.Timeout
	if s := n.Snapshot(); wait > 0 && s != nil && s.SyncStandby {
		wait += 2 * s.LoopWait // the timeout is the start's: a sync standby first waits for its release (syncrelease.go)
	}
	return n.submit(ctx, &opRequest{kind: opRestart, restart: req}, wait)
}

// DeleteRestart cancels a scheduled restart (OpNotFound when none is).
func (n *Node) DeleteRestart(ctx context.Context) (cluster.OpResult, error) {
	return n.submit(ctx, &opRequest{kind: opDeleteRestart}, 0)
}

// Reinitialize wipes this replica's data directory and clones it again
// ("reinitialize started" / OpUnavailable or OpFailed with the reason).
func (n *Node) Reinitialize(ctx context.Context, req ReinitializeRequest) (cluster.OpResult, error) {
	return n.submit(ctx, &opRequest{kind: opReinitialize, reinit: req}, 0)
}

// Reload takes the config file's postgresql.parameters (nil: keep the current
// ones), then rewrites postgres' configuration and reloads it (SIGHUP, POST /reload).
// It never blocks: the loop applies it in its next cycle, which it starts at once.
func (n *Node) Reload(params map[string]any) {
	n.reloadMu.Lock()
	n.reloadReq = &reloadRequest{params: params}
	n.reloadMu.Unlock()
	n.Wake()
}

type reloadRequest struct{ params map[string]any }

// takeReload returns the pending reload request, if any (loop side).
func (l *loop) takeReload() *reloadRequest {
	l.reloadMu.Lock()
	defer l.reloadMu.Unlock()
	r := l.reloadReq
	l.reloadReq = nil
	return r
}

// handleOp runs an operator request in the loop.
func (l *loop) handleOp(ctx context.Context, req *opRequest) {
	switch req.kind {
	case opRestart:
		if !req.restart.Schedule.IsZero() {
			l.scheduleRestart(req)
			return
		}
		if err := l.restartNow(ctx, req.restart, req.reply); err != nil {
			replyTo(req.reply, cluster.OpResult{}, err)
		}
	case opDeleteRestart:
		if l.st.sched.restart == nil {
			replyTo(req.reply, cluster.OpResult{}, cluster.Refuse(cluster.OpNotFound, "no restarts are scheduled"))
			return
		}
		l.st.sched.restart = nil
		l.log.Info("scheduled restart deleted")
		replyTo(req.reply, cluster.Done("scheduled restart deleted"), nil)
	case opReinitialize:
		res, err := l.reinitialize(ctx, req.reinit)
		replyTo(req.reply, res, err)
	default:
		replyTo(req.reply, cluster.OpResult{}, cluster.Refusef(cluster.OpInternal, "unknown request %d", req.kind))
	}
}

// opObservation is the loop's current picture for acting on a request between cycles.
func (l *loop) opObservation() plan.Observation {
	return l.observation(l.now(), l.deps.Store.View(), l.deps.Store.LeaseValidUntil())
}

// reinitialize is Patroni's ha.reinitialize: replicas only, while a leader exists.
// It is the one path that removes a data directory on request.
func (l *loop) reinitialize(ctx context.Context, req ReinitializeRequest) (cluster.OpResult, error) {
	o := l.opObservation()
	switch {
	case o.View.Leader == nil:
		return cluster.OpResult{}, cluster.Refuse(cluster.OpUnavailable, "Cluster has no leader, can not reinitialize")
	case o.View.Leader.Name == l.cfg.Name:
		return cluster.OpResult{}, cluster.Refuse(cluster.OpUnavailable, "I am the leader, can not reinitialize")
	}
	if run := l.st.long.run; run != nil {
		if !req.Force {
			return cluster.OpResult{}, cluster.Refusef(cluster.OpUnavailable, "%s already in progress", run.kind)
		}
		l.cancelLong()
		if run := l.st.long.run; run != nil {
			return cluster.OpResult{}, cluster.Refusef(cluster.OpUnavailable, "%s already in progress", run.kind)
		}
		o = l.opObservation()
	}
	src := o.LeaderName()
	if !req.FromLeader {
		if s := plan.CloneSource(o, true); s != "" {
			src = s
		}
	}
	if m, ok := o.Member(src); !ok || m.ConnURL == "" {
		return cluster.OpResult{}, cluster.Refusef(cluster.OpUnavailable,
			"reinitialize is not possible: %s has no member key with a conn_url", src)
	}
	delete(l.st.long.failedAt, plan.LongReinitialize)
	l.st.pg.rewindFailed = false
	l.log.Info("reinitialize requested", "source", src, "force", req.Force)
	// The callbacks of a reinitialize Decide would plan (planCallbacks): on_stop, then the start's.
	d := plan.Decision{Action: plan.ActionReinitialize, Member: src}
	d.Callbacks = plan.PlanCallbacks(o, d)
	l.st.deciding = &d
	l.launchReinit(ctx, o, src, cluster.CloneOptions{BasebackupOnly: req.FromLeader})
	l.st.deciding = nil
	run := l.st.long.run
	if run == nil || run.kind != plan.LongReinitialize {
		return cluster.OpResult{}, cluster.Refuse(cluster.OpFailed, "reinitialize failed to start (see the pgnoded log)")
	}
	run.callbacks = hooksFor(d.Callbacks, plan.AfterStart)
	l.st.sched.recycle = true
	return cluster.Done("reinitialize started"), nil
}
