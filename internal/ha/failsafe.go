package ha

import (
	"context"
	"sort"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// FailsafeRequest is a POST /failsafe body received from a failsafe primary.
type FailsafeRequest struct {
	Name    string
	ConnURL string
	APIURL  string
	Slots   map[string]int64
}

// FailsafeAsker is an optional extension of Peers: it sends POST /failsafe
// with req to every target (name -> api_url) in parallel and reports, per
// name, whether the member accepted (200).
type FailsafeAsker interface {
	AskFailsafe(ctx context.Context, req FailsafeRequest, targets map[string]string, timeout time.Duration) map[string]bool
}

// failsafeState is the primary side of failsafe mode (loop-owned).
type failsafeState struct {
	engaged     bool      // DCS lost while primary with failsafe_mode on: rounds are running
	confirmed   bool      // the last round was accepted by every member of the failsafe key
	confirmedAt time.Time // start of the last accepted round
	lastRound   time.Time // start of the last round
	denied      bool      // a round lacked a confirmation (logged once)
}

// failsafeLeader is the replica side: the primary that last asked us (guarded by Node.fsMu).
type failsafeLeader struct {
	name  string
	until time.Time
	slots map[string]int64 // its permanent slots' positions, as sent
}

// failsafeTimeout bounds one POST /failsafe attempt: min(2s, retry_timeout/2).
func failsafeTimeout(cfg cluster.DynamicConfig) time.Duration {
	return max(min(PeerTimeout, cfg.RetryTimeoutDuration()/2), 100*time.Millisecond)
}

// failsafeFacts are the loop's failsafe state as the rules read it (plan.NextFailsafe).
func (n *Node) failsafeFacts() plan.FailsafeFacts {
	fs := n.st.fs
	return plan.FailsafeFacts{Engaged: fs.engaged, Confirmed: fs.confirmed, ConfirmedAt: fs.confirmedAt,
		LastRound: fs.lastRound, DCSFailing: n.st.dcsFailing, LeaseOverdueAt: n.leaseOverdueAt()}
}

// failsafeStep plans the failsafe step for o now (plan.NextFailsafe) and applies it.
func (n *Node) failsafeStep(ctx context.Context, o *plan.Observation) {
	o.Failsafe = n.failsafeFacts()
	step, why := plan.NextFailsafe(*o)
	n.applyFailsafe(ctx, step, why, o)
}

// applyFailsafe carries out a failsafe step: leave failsafe mode, or (enter it
// and) ask every member of the failsafe key; the state goes into o.
func (n *Node) applyFailsafe(ctx context.Context, step plan.FailsafeStep, why string, o *plan.Observation) {
	fs := &n.st.fs
	switch step {
	case plan.FailsafeExit:
		n.log.Info("failsafe mode exit", "reason", why, "was_confirmed", fs.confirmed)
		*fs = failsafeState{}
	case plan.FailsafeRound:
		if !fs.engaged {
			fs.engaged = true
			n.log.Warn("failsafe mode entry: DCS is not accessible (lease renewal failed or overdue), asking every member to confirm this primary",
				"members", len(o.View.Failsafe), "dcs_failed", n.st.dcsFailing, "lease_valid_until", o.LeaseValidUntil)
		}
		start := n.now()
		ok, missing := n.failsafeRound(ctx, o.View.Failsafe)
		fs.lastRound = start
		switch {
		case ok:
			if !fs.confirmed {
				n.log.Info("failsafe mode active: every member confirmed this primary")
			}
			fs.confirmed, fs.confirmedAt = true, start
			// Pat the fence now: the DCS calls of this cycle may block past the lease's deadline.
			n.reconcileFence()
		default:
			if fs.confirmed || !fs.denied {
				n.log.Warn("failsafe mode: not every member confirmed this primary; it may not stay primary without the DCS",
					"missing", missing)
			}
			fs.confirmed, fs.denied = false, true
		}
		o.Now = n.now()
	}
	o.Failsafe = n.failsafeFacts()
	o.FailsafeConfirmed, o.FailsafeUntil = fs.confirmed, time.Time{}
	if fs.confirmed {
		o.FailsafeUntil = fs.confirmedAt.Add(o.Config.TTLDuration())
	}
}

// failsafeRound asks every other member of the failsafe key; true when all accept.
// An absent key confirms nothing; a key naming only us confirms (single-node cluster).
func (n *Node) failsafeRound(ctx context.Context, key map[string]string) (bool, []string) {
	if len(key) == 0 {
		return false, []string{"(failsafe key unknown)"}
	}
	targets := make(map[string]string, len(key))
	for name, url := range key {
		if name != n.cfg.Name {
			targets[name] = url
		}
	}
	if len(targets) == 0 {
		return true, nil
	}
	asker, ok := n.deps.Peers.(FailsafeAsker)
	if !ok {
		return false, []string{"(peers cannot be asked)"}
	}
	rctx, cancel := shortCtx(ctx, 2*failsafeTimeout(n.st.dyn)+time.Second)
	defer cancel()
	qctx, qcancel := shortCtx(rctx, 500*time.Millisecond) // the round must not wait on postgres
	req := FailsafeRequest{Name: n.cfg.Name, ConnURL: n.cfg.ConnURL, APIURL: n.cfg.APIURL,
		Slots: n.permanentSlotPositions(qctx, n.st.dyn)}
	qcancel()
	got := asker.AskFailsafe(rctx, req, targets, failsafeTimeout(n.st.dyn))
	var missing []string
	for name := range targets {
		if !got[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	return len(missing) == 0, missing
}

// leaseOverdueAt is when the next lease renewal is overdue (plan.LeaseOverdueAt).
func (n *Node) leaseOverdueAt() time.Time {
	return plan.LeaseOverdueAt(n.deps.Store.LeaseValidUntil(), n.st.dyn)
}

// holdUntil is the loop's hold on leadership: the lease, extended by a fresh
// failsafe confirmation (confirmed_at + ttl) while the DCS is lost.
func (n *Node) holdUntil() time.Time {
	h := n.deps.Store.LeaseValidUntil()
	if n.keyLeaseGone() {
		h = time.Time{} // whatever lease the Store holds now, the key went with the old one
	}
	if fs := n.st.fs; fs.engaged && fs.confirmed {
		if u := fs.confirmedAt.Add(n.st.dyn.TTLDuration()); u.After(h) {
			h = u
		}
	}
	return h
}

// keyLeaseGone reports that the leader key the loop believes ours was on a
// lease etcd has since reported expired: a pgnoded waking from a freeze may
// hold a fresh lease and a cycle-old view, and must not bind the VIP or pat
// the fence on them.
func (n *Node) keyLeaseGone() bool {
	l := n.st.view.Leader
	if l == nil || l.Name != n.cfg.Name || l.LeaseID == 0 {
		return false
	}
	g, ok := n.deps.Store.(interface{ LeaseGone(int64) bool })
	return ok && g.LeaseGone(l.LeaseID)
}

// Failsafe answers a failsafe primary's POST /failsafe (the REST layer has
// checked failsafe_mode and the body): OpConflict "Running as a leader" when
// this node runs as a primary, else "Accepted" and the sender counts as the
// live leader for ttl (no leader race).
func (n *Node) Failsafe(_ context.Context, req FailsafeRequest) (cluster.OpResult, error) {
	s := n.Snapshot()
	if s.PG.Running && !s.PG.InRecovery && s.Role == cluster.RolePrimary {
		return cluster.OpResult{}, cluster.Refuse(cluster.OpConflict, "Running as a leader")
	}
	n.fsMu.Lock()
	n.fsLeader = failsafeLeader{name: req.Name, until: n.now().Add(s.TTL), slots: req.Slots}
	n.fsMu.Unlock()
	return cluster.Done("Accepted"), nil
}

// failsafeLeaderNow is the member that asked us with POST /failsafe less than ttl ago, or "".
func (n *Node) failsafeLeaderNow(now time.Time) string {
	n.fsMu.Lock()
	defer n.fsMu.Unlock()
	if n.fsLeader.name != "" && now.Before(n.fsLeader.until) {
		return n.fsLeader.name
	}
	return ""
}

// failsafeActive is Snapshot.FailsafeActive: a primary kept by failsafe, or a
// replica that a failsafe primary asked less than ttl ago.
func (n *Node) failsafeActive() bool {
	if fs := n.st.fs; fs.engaged && fs.confirmed {
		return true
	}
	return n.failsafeLeaderNow(n.now()) != ""
}
