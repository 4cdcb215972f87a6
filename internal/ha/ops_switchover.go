package ha

import (
	"context"
	"fmt"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// switchoverPoll is how often an immediate switchover looks at the cached view
// for its outcome (Patroni: every second; the cache costs nothing to read).
const switchoverPoll = 20 * time.Millisecond

// Switchover schedules or performs a switchover (Patroni's api.py
// do_POST_failover: is_failover_possible, the failover key, then
// poll_failover_result): OpInfeasible when it is not feasible, OpStoreFailed when the
// failover key cannot be written, Scheduled when scheduled, else the outcome
// seen within 2×max(10, loop_wait) s.
func (n *Node) Switchover(ctx context.Context, req SwitchoverRequest) (cluster.OpResult, error) {
	return n.manualFailover(ctx, req, "switchover")
}

// Failover is Switchover for POST /failover (a candidate is required; the leader may be gone).
func (n *Node) Failover(ctx context.Context, req SwitchoverRequest) (cluster.OpResult, error) {
	return n.manualFailover(ctx, req, "failover")
}

func (n *Node) manualFailover(ctx context.Context, req SwitchoverRequest, action string) (cluster.OpResult, error) {
	view := n.deps.Store.View()
	cfg := n.Snapshot().Config
	if refused := n.Snapshot().ConfigRefused; len(refused) > 0 {
		// No node would take the key: the leader would step down for nothing.
		why := action + " is not possible: the config key has settings pgnoded refuses: " + refused[0].String()
		n.log.Info(action+" refused", "reason", why)
		return cluster.OpResult{}, cluster.Refuse(cluster.OpInfeasible, why)
	}
	if req.ScheduledAt.IsZero() {
		if why := n.failoverPossible(ctx, view, cfg, req, action); why != "" {
			n.log.Info(action+" refused", "leader", req.Leader, "candidate", req.Candidate, "reason", why)
			return cluster.OpResult{}, cluster.Refuse(cluster.OpInfeasible, why)
		}
	}
	f := cluster.Failover{Leader: req.Leader, Member: req.Candidate}
	if !req.ScheduledAt.IsZero() {
		f.ScheduledAt = pyfmt.Isoformat(req.ScheduledAt, 'T')
	}
	wctx, cancel := context.WithTimeout(ctx, max(cfg.RetryTimeoutDuration(), time.Second))
	ok, err := n.deps.Store.SetFailover(wctx, f, 0)
	cancel()
	if err != nil || !ok {
		n.log.Warn("cannot write the failover key", "err", err)
		if n.cfg.Compat == cluster.Compat4 {
			return cluster.OpResult{}, cluster.Refuse(cluster.OpStoreFailed, "failed to write failover key into DCS")
		}
		return cluster.OpResult{}, cluster.Refuse(cluster.OpStoreFailed, "failed to write "+action+" key into DCS")
	}
	n.log.Info(action+" requested", "leader", f.Leader, "candidate", f.Member, "scheduled_at", f.ScheduledAt)
	n.Wake() // our own writes do not wake our loop through the watch
	if f.ScheduledAt != "" {
		return cluster.Scheduled(title(action) + " scheduled"), nil
	}
	from := req.Leader
	if from == "" && view.Leader != nil {
		from = view.Leader.Name
	}
	return n.awaitFailover(ctx, cfg, action, from, req.Candidate)
}

// failoverPossible is Patroni's is_failover_possible: "" when a candidate
// exists whose /patroni shows no failover limitation, else the 412 text.
func (n *Node) failoverPossible(ctx context.Context, v cluster.View, cfg cluster.DynamicConfig, req SwitchoverRequest, action string) string {
	if req.Leader != "" && (v.Leader == nil || v.Leader.Name != req.Leader) {
		return "leader name does not match"
	}
	// Quorum mode names no sync standby a switchover must go to: the
	// candidate's votes decide (Patroni's is_failover_possible).
	sync := cfg.SynchronousMode && !(cfg.SynchronousQuorum && n.cfg.Compat == cluster.Compat4)
	inSync := func(name string) bool { return (plan.Observation{View: v}).InSyncStandby(name) }
	var members []cluster.Member
	switch {
	case req.Candidate != "":
		if action == "switchover" && sync && !inSync(req.Candidate) {
			return "candidate name does not match with sync_standby"
		}
		m, ok := v.Members[req.Candidate]
		if !ok {
			return "candidate does not exists"
		}
		m.Name = req.Candidate
		members = append(members, m)
	case sync:
		for name, m := range v.Members {
			if inSync(name) {
				m.Name = name
				members = append(members, m)
			}
		}
		if len(members) == 0 {
			return action + " is not possible: can not find sync_standby"
		}
	default:
		for name, m := range v.Members {
			if v.Leader == nil || name != v.Leader.Name && m.APIURL != "" {
				m.Name = name
				members = append(members, m)
			}
		}
		if len(members) == 0 {
			return action + " is not possible: cluster does not have members except leader"
		}
	}
	pctx, cancel := context.WithTimeout(ctx, PeerTimeout+time.Second)
	defer cancel()
	for _, st := range n.deps.Peers.Status(pctx, members) {
		if st.Reachable && !st.NoFailover && !st.WatchdogFailed {
			return ""
		}
	}
	return action + " is not possible: no good candidates have been found"
}

// awaitFailover watches the cached view until the leader changes away from
// `from` (Done), the failover key is cleared without a change (OpFailed), or
// 2×max(10, loop_wait) seconds pass (OpUnavailable: status unknown).
func (n *Node) awaitFailover(ctx context.Context, cfg cluster.DynamicConfig, action, from, candidate string) (cluster.OpResult, error) {
	deadline := time.NewTimer(2 * max(10*time.Second, cfg.LoopWaitDuration()))
	defer deadline.Stop()
	tick := time.NewTicker(switchoverPoll)
	defer tick.Stop()
	past := strings.TrimSuffix(action, "over") // switch / fail
	for {
		v := n.deps.Store.View()
		if v.Leader != nil && v.Leader.Name != from {
			if candidate == "" || candidate == v.Leader.Name {
				return cluster.Done(fmt.Sprintf("Successfully %sed over to %q", past, v.Leader.Name)), nil
			}
			return cluster.Done(fmt.Sprintf("%sed over to %q instead of %q", title(past), v.Leader.Name, candidate)), nil
		}
		if v.Failover.Empty() {
			return cluster.OpResult{}, cluster.Refuse(cluster.OpFailed, title(action)+" failed")
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return cluster.OpResult{}, cluster.Refuse(cluster.OpUnavailable, title(action)+" status unknown")
		case <-ctx.Done():
			return cluster.OpResult{}, cluster.Refuse(cluster.OpUnavailable, title(action)+" status unknown")
		}
	}
}

// DeleteSwitchover clears a scheduled switchover with a compare-and-swap
// (OpNotFound when none is scheduled, OpConflict when the write loses).
func (n *Node) DeleteSwitchover(ctx context.Context) (cluster.OpResult, error) {
	f := n.deps.Store.View().Failover
	if f == nil || f.ScheduledAt == "" {
		return cluster.OpResult{}, cluster.Refuse(cluster.OpNotFound, "no switchover is scheduled")
	}
	wctx, cancel := context.WithTimeout(ctx, max(n.Snapshot().RetryTimeout, time.Second))
	defer cancel()
	ok, err := n.deps.Store.SetFailover(wctx, cluster.Failover{}, f.ModRevision)
	if err != nil || !ok {
		return cluster.OpResult{}, cluster.Refuse(cluster.OpConflict, "Conflict")
	}
	n.Wake()
	return cluster.Done("scheduled switchover deleted"), nil
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
