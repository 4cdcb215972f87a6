package plan

import (
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// State is what the loop holds once the cycle's action is applied: the facts
// the fence, the VIP, the member key and the next wake-up follow. The action
// may have changed them (a promotion, a release of the key, a long action
// started), so they are read after it, not from the cycle's Observation.
type State struct {
	Now    time.Time
	Config cluster.DynamicConfig

	// HoldsKey is the loop's belief that the leader key is ours.
	HoldsKey bool
	// HoldUntil is how long leadership is held: the lease, extended by a
	// fresh failsafe confirmation (zero once the key's lease is gone).
	HoldUntil time.Time
	// LeaderAbsent: the view has no leader key; ViewLeaderIsMe: the view's leader key names us.
	LeaderAbsent, ViewLeaderIsMe bool

	PG        cluster.PGObservation
	Long      *LongAction // the long action running, if any
	Promoting bool        // a promotion is under way in this cycle

	// FenceConfigured: a fence guard is wired (not disabled by config).
	FenceConfigured bool
	// VIPBound is whether the VIP is bound now (as last applied).
	VIPBound bool

	Failsafe FailsafeFacts
	// Member is what the member key says besides postgres' state.
	Member MemberFacts

	LastLoop    time.Time     // when the last cycle ended
	PollAfter   time.Duration // the last plan's PollAfter
	ReleasedAt  time.Time     // when this node last gave up the leader key voluntarily
	WakeAt      time.Time     // a postponed action's time (zero: none)
	RestartAt   time.Time     // a scheduled restart's time (zero: none)
	FailoverAt  time.Time     // the failover key's scheduled_at (zero: none or not parseable)
	PGDownSince time.Time     // first observation of postgres not running (zero while it runs)
}

// Effects are the steps that follow the state an action left: Settle computes
// them, the loop applies them in finishCycle. The next wake-up is NextWake of
// the same State, evaluated whenever the loop sets its timer (a renewal between
// cycles moves it).
type Effects struct {
	// FenceWant: we hold the key and postgres is (or is becoming) a writable primary.
	FenceWant bool
	Fence     FenceStep
	// FenceDeadline is the deadline to arm the guard with (FenceArm).
	FenceDeadline time.Time
	VIP           VIPStep
	// Member is the member key to write (the Store skips an unchanged value); nil: none.
	Member *cluster.Member
}

// MemberFacts are what the member key says about this node besides postgres.
type MemberFacts struct {
	Write                  bool // the view is usable: the member key is written
	Name, ConnURL, APIURL  string
	Compat                 cluster.Compat
	Role                   cluster.Role
	Tags                   map[string]any // the configured tags (EffectiveTags publishes them)
	ScheduledRestart       map[string]any // the scheduled_restart document, nil: none
	CheckpointAfterPromote bool           // the CHECKPOINT after a promotion is not done yet
}

// FenceStep is what to do with the fence guard.
type FenceStep int

// Fence steps.
const (
	FenceLeave  FenceStep = iota // keep it as it is (armed with its last deadline, never extended)
	FenceArm                     // arm (or extend) it to FenceDeadline
	FenceDisarm                  // we are not a primary: disarm it
)

var fenceNames = map[FenceStep]string{FenceLeave: "leave", FenceArm: "arm", FenceDisarm: "disarm"}

// String names the step for logs and tests.
func (s FenceStep) String() string { return fenceNames[s] }

// VIPStep is what to do with the VIP.
type VIPStep int

// VIP steps.
const (
	VIPLeave  VIPStep = iota // keep it as it is
	VIPBind                  // bind it (idempotent)
	VIPUnbind                // release it (idempotent)
)

var vipNames = map[VIPStep]string{VIPLeave: "leave", VIPBind: "bind", VIPUnbind: "unbind"}

// String names the step for logs and tests.
func (s VIPStep) String() string { return vipNames[s] }

// Settle plans the effects that follow s: the member key, the fence and the VIP.
func Settle(s State) Effects {
	e := Effects{VIP: VIP(s)}
	e.FenceWant, e.Fence, e.FenceDeadline = Fence(s)
	if s.Member.Write {
		m := MemberKey(s)
		e.Member = &m
	}
	return e
}

// MemberKey is members/<name> as this node publishes it (Patroni's field names).
func MemberKey(s State) cluster.Member {
	pg, f := s.PG, s.Member
	m := cluster.Member{
		Name: f.Name, ConnURL: f.ConnURL, APIURL: f.APIURL,
		State: string(PGState(pg, s.Long)), Role: f.Compat.RoleName(f.Role), Version: f.Compat.Version(),
		Timeline: pg.Timeline, Tags: EffectiveTags(f.Tags), Pause: s.Config.Pause,
		PendingRestart: pg.PendingRestart, PendingRestartReason: pg.PendingRestartWhy,
		ScheduledRestart: f.ScheduledRestart,
	}
	if pg.Running && pg.Ready {
		pos := int64(pg.WALPosition())
		m.XLogLocation = &pos
		if pg.InRecovery {
			m.ReplicationState = "in archive recovery"
			if pg.Streaming {
				m.ReplicationState = "streaming"
			}
		} else if f.CheckpointAfterPromote {
			no := false
			m.CheckpointAfterPromote = &no
		}
	}
	return m
}

// PGState is the state published for postgres, showing a long action.
func PGState(pg cluster.PGObservation, long *LongAction) cluster.PGState {
	if long != nil && !(pg.Running && pg.Ready) {
		switch long.Kind {
		case LongBootstrap:
			return cluster.StateInitializing
		case LongClone, LongReinitialize:
			return cluster.StateCreatingReplica
		case LongRewind:
			return cluster.StateRewinding
		default:
			return cluster.StateStarting
		}
	}
	if pg.State != "" {
		return pg.State
	}
	if pg.Running {
		return cluster.StateUnknown
	}
	return cluster.StateStopped
}

// BecomingPrimary: postgres is about to become a writable primary (a promotion
// under way, a bootstrap or a start as primary).
func (s State) BecomingPrimary() bool {
	l := s.Long
	return s.Promoting || l != nil && (l.Kind == LongBootstrap || l.Kind == LongStartPrimary)
}

// Fence is the fence rule: the guard follows reality.
//   - we hold the key and postgres is (or is about to become) a writable primary:
//     arm it with DemoteDeadline of the hold, re-armed on every renewal;
//   - postgres is not a primary, or the cluster is paused: disarm;
//   - a writable primary without the key (about to be demoted): leave it armed
//     with its last deadline, never extended.
//
// want is whether this node should be fenced (it also drives NextWake); without
// a fence guard it ignores pause, as the deadline timers still apply.
func Fence(s State) (want bool, step FenceStep, deadline time.Time) {
	writable := s.PG.Running && !s.PG.InRecovery
	becoming := s.BecomingPrimary()
	if !s.FenceConfigured {
		return s.HoldsKey && (writable || becoming), FenceLeave, time.Time{}
	}
	want = s.HoldsKey && !s.Config.Pause && (writable || becoming)
	switch {
	case want:
		dl := DemoteDeadline(s.HoldUntil, s.Config)
		if dl.IsZero() {
			return want, FenceLeave, time.Time{}
		}
		return want, FenceArm, dl
	case s.Config.Pause || !writable && !becoming:
		return want, FenceDisarm, time.Time{}
	}
	return want, FenceLeave, time.Time{}
}

// Leading reports whether clients may be sent to this node as the cluster's
// leader: it holds the key, postgres is a running, ready primary (or, in a
// standby cluster, the standby leader, in recovery), and no bootstrap is under
// way. pgnoded takes the key when a bootstrap starts (so that the fence covers
// postgres from its first start), but a custom bootstrap still restarts
// postgres after its recovery and the roles and post_bootstrap come after
// that; Patroni takes the key only then, so neither /primary nor the VIP
// (vip-manager follows the key) pointed there before. /primary (the loop's
// leaderUntil) and the VIP rule both read it.
func Leading(holdsKey bool, pg cluster.PGObservation, standbyLeader bool, long *LongAction) bool {
	if long != nil && long.Kind == LongBootstrap {
		return false
	}
	return holdsKey && pg.Running && pg.Ready && (!pg.InRecovery || standbyLeader)
}

// VIP is the VIP rule: bound only while we lead (Leading) and the hold is not
// about to end (DemoteStart): we hold the key, postgres is a running, ready
// primary and no bootstrap is under way — or, in a
// standby cluster, the standby leader: vip-manager binds the VIP wherever the
// leader key is, and a standby leader holds it (docs/standby-cluster.md); the
// address then serves reads of the standby cluster and stays in place when it
// is promoted. During a restart in place a bound VIP stays (no ARP churn for a
// postmaster that comes back in a second).
func VIP(s State) VIPStep {
	holdOK := s.Now.Before(DemoteStart(s.HoldUntil, s.Config))
	if holdOK && Leading(s.HoldsKey, s.PG, s.Member.Role == cluster.RoleStandbyLeader, s.Long) {
		return VIPBind
	}
	if s.VIPBound && s.HoldsKey && holdOK && s.Long != nil && s.Long.Kind == LongStartPrimary {
		return VIPLeave
	}
	return VIPUnbind
}

// NextWake is the latest time the next cycle must run: loop_wait after the
// last one, or earlier when a deadline, a timer or a short poll comes first
// (docs/ha-waits.md). fenceWant is Fence's want.
func NextWake(s State, fenceWant bool) time.Time {
	now, cfg := s.Now, s.Config
	next := s.LastLoop.Add(max(cfg.LoopWaitDuration(), 100*time.Millisecond))
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	if s.Failsafe.Engaged {
		earlier(s.Failsafe.LastRound.Add(FailsafeInterval(cfg)))
	} else if fenceWant && cfg.FailsafeMode && !cfg.Pause {
		earlier(s.Failsafe.LeaseOverdueAt) // a missed renewal starts failsafe rounds before the lease runs short
	}
	if fenceWant && !cfg.Pause {
		start, deadline := DemoteStart(s.HoldUntil, cfg), DemoteDeadline(s.HoldUntil, cfg)
		switch {
		case start.After(now):
			earlier(start)
		case deadline.After(now):
			earlier(deadline)
		default: // demotion due but not done yet: retry soon
			earlier(now.Add(250 * time.Millisecond))
		}
	}
	if s.PollAfter > 0 {
		earlier(now.Add(s.PollAfter))
	}
	if r := s.ReleasedAt; !r.IsZero() && s.LeaderAbsent {
		if at := r.Add(cfg.TTLDuration()); at.After(now) {
			earlier(at) // the end of released_recently: this node may race again
		}
	}
	earlier(s.WakeAt)
	if !cfg.Pause {
		earlier(s.RestartAt)
	}
	if s.HoldsKey && !s.FailoverAt.IsZero() {
		earlier(s.FailoverAt.Add(-cfg.LoopWaitDuration()))
	}
	pst := time.Duration(cfg.PrimaryStartTimeout) * time.Second
	if l := s.Long; l != nil && l.Kind == LongStartPrimary {
		earlier(l.Since.Add(pst))
	}
	if !s.PGDownSince.IsZero() && s.ViewLeaderIsMe {
		earlier(s.PGDownSince.Add(pst))
	}
	return next
}
