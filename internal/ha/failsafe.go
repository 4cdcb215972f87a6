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

// failsafeLeader is the replica side: the primary that last asked us (guarded by shared.fsMu).
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
func (l *loop) failsafeFacts() plan.FailsafeFacts {
	fs := l.st.lease.fs
	return plan.FailsafeFacts{Engaged: fs.engaged, Confirmed: fs.confirmed, ConfirmedAt: fs.confirmedAt,
		LastRound: fs.lastRound, DCSFailing: l.st.lease.dcsFailing, LeaseOverdueAt: l.leaseOverdueAt()}
}

// failsafeStep plans the failsafe step for o now (plan.NextFailsafe) and applies it.
func (l *loop) failsafeStep(ctx context.Context, o *plan.Observation) {
	o.Failsafe = l.failsafeFacts()
	step, why := plan.NextFailsafe(*o)
	l.applyFailsafe(ctx, step, why, o)
}

// applyFailsafe carries out a failsafe step: leave failsafe mode, or (enter it
// and) ask every member of the failsafe key; the state goes into o.
func (l *loop) applyFailsafe(ctx context.Context, step plan.FailsafeStep, why string, o *plan.Observation) {
	fs := &l.st.lease.fs
	switch step {
	case plan.FailsafeExit:
		l.log.Info("failsafe mode exit", "reason", why, "was_confirmed", fs.confirmed)
		*fs = failsafeState{}
	case plan.FailsafeRound:
		if !fs.engaged {
			fs.engaged = true
			l.log.Warn("failsafe mode entry: DCS is not accessible (lease renewal failed or overdue), asking every member to confirm this primary",
				"members", len(o.View.Failsafe), "dcs_failed", l.st.lease.dcsFailing, "lease_valid_until", o.LeaseValidUntil)
		}
		start := l.now()
		ok, missing := l.failsafeRound(ctx, o.View.Failsafe)
		fs.lastRound = start
		switch {
		case ok:
			if !fs.confirmed {
				l.log.Info("failsafe mode active: every member confirmed this primary")
			}
			fs.confirmed, fs.confirmedAt = true, start
			// Pat the fence now: the DCS calls of this cycle may block past the lease's deadline.
			l.reconcileFence()
		default:
			if fs.confirmed || !fs.denied {
				l.log.Warn("failsafe mode: not every member confirmed this primary; it may not stay primary without the DCS",
					"missing", missing)
			}
			fs.confirmed, fs.denied = false, true
		}
		o.Now = l.now()
	}
	o.Failsafe = l.failsafeFacts()
	o.FailsafeConfirmed, o.FailsafeUntil = fs.confirmed, time.Time{}
	if fs.confirmed {
		o.FailsafeUntil = fs.confirmedAt.Add(o.Config.TTLDuration())
	}
}

// failsafeRound asks every other member of the failsafe key; true when all accept.
// An absent key confirms nothing; a key naming only us confirms (single-node cluster).
func (l *loop) failsafeRound(ctx context.Context, key map[string]string) (bool, []string) {
	if len(key) == 0 {
		return false, []string{"(failsafe key unknown)"}
	}
	targets := make(map[string]string, len(key))
	for name, url := range key {
		if name != l.cfg.Name {
			targets[name] = url
		}
	}
	if len(targets) == 0 {
		return true, nil
	}
	asker, ok := l.deps.Peers.(FailsafeAsker)
	if !ok {
		return false, []string{"(peers cannot be asked)"}
	}
	rctx, cancel := shortCtx(ctx, 2*failsafeTimeout(l.st.conf.dyn)+time.Second)
	defer cancel()
	qctx, qcancel := shortCtx(rctx, 500*time.Millisecond) // the round must not wait on postgres
	req := FailsafeRequest{Name: l.cfg.Name, ConnURL: l.cfg.ConnURL, APIURL: l.cfg.APIURL,
		Slots: l.permanentSlotPositions(qctx, l.st.conf.dyn)}
	qcancel()
	got := asker.AskFailsafe(rctx, req, targets, failsafeTimeout(l.st.conf.dyn))
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
func (l *loop) leaseOverdueAt() time.Time {
	return plan.LeaseOverdueAt(l.deps.Store.LeaseValidUntil(), l.st.conf.dyn)
}

// holdUntil is the loop's hold on leadership: the lease, extended by a fresh
// failsafe confirmation (confirmed_at + ttl) while the DCS is lost.
func (l *loop) holdUntil() time.Time {
	h := l.deps.Store.LeaseValidUntil()
	if l.keyLeaseGone() {
		h = time.Time{} // whatever lease the Store holds now, the key went with the old one
	}
	if fs := l.st.lease.fs; fs.engaged && fs.confirmed {
		if u := fs.confirmedAt.Add(l.st.conf.dyn.TTLDuration()); u.After(h) {
			h = u
		}
	}
	return h
}

// keyLeaseGone reports that the leader key the loop believes ours was on a
// lease etcd has since reported expired: a pgnoded waking from a freeze may
// hold a fresh lease and a cycle-old view, and must not bind the VIP or pat
// the fence on them.
func (l *loop) keyLeaseGone() bool {
	key := l.st.lease.view.Leader
	if key == nil || key.Name != l.cfg.Name || key.LeaseID == 0 {
		return false
	}
	g, ok := l.deps.Store.(interface{ LeaseGone(int64) bool })
	return ok && g.LeaseGone(key.LeaseID)
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
func (sh *shared) failsafeLeaderNow(now time.Time) string {
	sh.fsMu.Lock()
	defer sh.fsMu.Unlock()
	if sh.fsLeader.name != "" && now.Before(sh.fsLeader.until) {
		return sh.fsLeader.name
	}
	return ""
}

// failsafeActive is Snapshot.FailsafeActive: a primary kept by failsafe, or a
// replica that a failsafe primary asked less than ttl ago.
func (l *loop) failsafeActive() bool {
	if fs := l.st.lease.fs; fs.engaged && fs.confirmed {
		return true
	}
	return l.failsafeLeaderNow(l.now()) != ""
}
