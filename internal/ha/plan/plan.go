package plan

import (
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Plan is what one cycle does, made from one Observation: the failsafe step
// (asked first: its answer is a fact the decision needs), the decision with
// its callbacks, and how the cycle's wait ends. The loop applies it and, when
// Replan is set, observes the step's outcome and plans again; the effects that
// follow the state the action leaves (fence, VIP, member key, next wake) come
// from Settle once the action is applied.
type Plan struct {
	// Failsafe is the failsafe-mode step due now; when it is not FailsafeStay,
	// the plan holds nothing else (Replan is set).
	Failsafe    FailsafeStep
	FailsafeWhy string // why failsafe mode ends (FailsafeExit)

	Decision
	// Replan: apply this plan's step, then plan again from the new facts (a
	// failsafe step; asking the peers and a lost lock found while updating the
	// key bring new facts too, which apply reports).
	Replan bool
	// PollAfter re-runs the cycle this soon: a wait no event announces
	// (ShortPolls, docs/ha-waits.md); 0 waits for an event.
	PollAfter time.Duration
	// CycleOnRenewal: the next lease renewal ends this wait (a full cycle runs on it).
	CycleOnRenewal bool
}

// ShortPolls are the waits no event announces, by decision reason, and how
// soon the cycle runs again to look (docs/ha-waits.md): every other wait ends
// on an event (a key change, the lease, the postmaster, a long action, a timer).
var ShortPolls = map[string]time.Duration{
	ReasonAwaitingWAL: 100 * time.Millisecond, // the candidate waiting for the old leader's last WAL
	"pg_not_ready":    250 * time.Millisecond, // postgres running but not accepting connections yet
	"lagging":         time.Second,            // a replica replaying towards maximum_lag_on_failover
	ReasonSyncConfirm: 200 * time.Millisecond, // a new synchronous standby replaying up to the recorded flush position
}

// Make plans one step of the cycle from o: the failsafe step when one is due,
// else the decision (Decide) and how its wait ends.
func Make(o Observation) Plan {
	if step, why := NextFailsafe(o); step != FailsafeStay {
		return Plan{Failsafe: step, FailsafeWhy: why, Decision: Decision{Action: ActionNone}, Replan: true}
	}
	d := Decide(o)
	if d.Action == ActionUpdateLock && o.LeaderIsMe() && o.Long == nil && o.PGReady() && !o.PG.InRecovery {
		d.Sync = NextSync(o, o.Sync)
	}
	p := Plan{
		Decision:       d,
		PollAfter:      ShortPolls[d.Reason],
		CycleOnRenewal: d.Reason == "lease_deadline",
	}
	if d.Sync.Waiting && p.PollAfter == 0 {
		p.PollAfter = ShortPolls[ReasonSyncConfirm]
	}
	return p
}

// FailsafeFacts are the primary side of failsafe mode as the loop keeps it.
type FailsafeFacts struct {
	Engaged     bool      // DCS lost while primary with failsafe_mode on: rounds are running
	Confirmed   bool      // the last round was accepted by every member of the failsafe key
	ConfirmedAt time.Time // start of the last accepted round
	LastRound   time.Time // start of the last round
	// DCSFailing: a lease renewal, a read or a leader-key update failed since the last renewal.
	DCSFailing bool
	// LeaseOverdueAt is when the next lease renewal is overdue (zero: no lease).
	LeaseOverdueAt time.Time
	// RoundThisCycle: a round already ran in this cycle. The plan after it
	// must decide on its outcome, not ask again: a round that timed out takes
	// longer than the interval, and asking again would hold the decision (and
	// a demotion it calls for) for several rounds.
	RoundThisCycle bool
}

// FailsafeStep is what failsafe mode does next.
type FailsafeStep int

// Failsafe steps.
const (
	FailsafeStay  FailsafeStep = iota // nothing to do now
	FailsafeExit                      // leave failsafe mode (FailsafeWhy says why)
	FailsafeRound                     // (enter failsafe mode and) ask every member of the failsafe key now
)

// NextFailsafe is the failsafe rule: while this node is a writable primary
// holding the key, failsafe_mode is on and the DCS failed (a lease renewal, a
// read or a leader-key update failed, or a renewal is overdue), it asks every
// Member of the failsafe key every FailsafeInterval; otherwise an engaged
// failsafe mode ends.
func NextFailsafe(o Observation) (FailsafeStep, string) {
	fs := o.Failsafe
	why := ""
	switch {
	case !o.Config.FailsafeMode:
		why = "failsafe_mode is off"
	case o.Paused():
		why = "maintenance mode"
	case !o.LeaderIsMe():
		why = "not the leader"
	case !o.PGWritable():
		why = "postgres is not a running primary"
	case !fs.DCSFailing && o.DCSUsable() && !o.Now.After(fs.LeaseOverdueAt):
		why = "DCS is accessible again"
	}
	if why != "" {
		if fs.Engaged {
			return FailsafeExit, why
		}
		return FailsafeStay, ""
	}
	if fs.RoundThisCycle {
		return FailsafeStay, ""
	}
	if !fs.Engaged || fs.LastRound.IsZero() || !o.Now.Before(fs.LastRound.Add(FailsafeInterval(o.Config))) {
		return FailsafeRound, ""
	}
	return FailsafeStay, ""
}

// FailsafeInterval is how often a failsafe primary asks again: loop_wait, at most ttl/3.
func FailsafeInterval(cfg cluster.DynamicConfig) time.Duration {
	return max(min(cfg.LoopWaitDuration(), cfg.TTLDuration()/3), 200*time.Millisecond)
}

// LeaseOverdueAt is when the renewal after the one that made the lease valid
// until validUntil is overdue: the Store renews every ttl/4, so a renewal
// missing ttl/4 + min(1s, ttl/8) after the last one means the DCS is failing
// even before the hanging call times out. Zero for no lease.
func LeaseOverdueAt(validUntil time.Time, cfg cluster.DynamicConfig) time.Time {
	if validUntil.IsZero() {
		return time.Time{}
	}
	ttl := cfg.TTLDuration()
	return validUntil.Add(-ttl + ttl/4 + max(min(time.Second, ttl/8), 100*time.Millisecond))
}
