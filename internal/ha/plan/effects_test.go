package plan

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Fixtures for the effect rules: pg1 leads a healthy cluster at Patroni's
// default timing (ttl 30, loop_wait 10, retry_timeout 10: FenceMargin 10s, so
// DemoteDeadline = hold - 10s and DemoteStart = hold - 15s); the lease was
// renewed at t0 and holds until t0+30s.

type sx func(*State)

func newState(mods ...sx) State {
	s := State{
		Now: t0, Config: cluster.DefaultDynamicConfig(), HoldsKey: true, HoldUntil: t0.Add(30 * time.Second),
		ViewLeaderIsMe: true,
		PG: cluster.PGObservation{State: cluster.StateRunning, Running: true, Ready: true, Timeline: 1,
			CurrentLSN: 1000},
		FenceConfigured: true, LastLoop: t0,
		Failsafe: FailsafeFacts{LeaseOverdueAt: LeaseOverdueAt(t0.Add(30*time.Second), cluster.DefaultDynamicConfig())},
	}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func notLeader(s *State) { s.HoldsKey, s.ViewLeaderIsMe = false, false }
func asReplica(s *State) { s.PG.InRecovery = true }
func pgStopped(s *State) { s.PG = cluster.PGObservation{State: cluster.StateStopped} }
func pgNotReady(s *State) {
	s.PG.Ready = false
}
func pausedState(s *State) { s.Config.Pause = true }
func noFence(s *State)     { s.FenceConfigured = false }
func vipBound(s *State)    { s.VIPBound = true }
func nowAt(d time.Duration) sx {
	return func(s *State) { s.Now = t0.Add(d) }
}
func lastLoopNow(s *State) { s.LastLoop = s.Now }
func longRunning(kind LongKind) sx {
	return func(s *State) { s.Long = &LongAction{Kind: kind, Since: t0} }
}

func TestFenceRule(t *testing.T) {
	dl := t0.Add(20 * time.Second) // DemoteDeadline of a hold until t0+30s
	cases := []struct {
		name     string
		s        State
		want     bool
		step     FenceStep
		deadline time.Time
	}{
		{"leader running as primary: armed to the hold's demote deadline", newState(), true, FenceArm, dl},
		{"a renewal extends the deadline", newState(func(s *State) { s.HoldUntil = t0.Add(40 * time.Second) }),
			true, FenceArm, t0.Add(30 * time.Second)},
		{"failsafe hold: the deadline follows the hold given", newState(func(s *State) { s.HoldUntil = t0.Add(35 * time.Second) }),
			true, FenceArm, t0.Add(25 * time.Second)},
		{"no hold known (the key's lease is gone): left as armed, never extended",
			newState(func(s *State) { s.HoldUntil = time.Time{} }), true, FenceLeave, time.Time{}},
		{"leader promoting: armed before postgres is writable", newState(asReplica, func(s *State) { s.Promoting = true }),
			true, FenceArm, dl},
		{"leader bootstrapping: armed", newState(pgStopped, longRunning(LongBootstrap)), true, FenceArm, dl},
		{"leader starting as primary: armed", newState(pgStopped, longRunning(LongStartPrimary)), true, FenceArm, dl},
		{"leader whose postgres is a replica: disarmed", newState(asReplica), false, FenceDisarm, time.Time{}},
		{"leader whose postgres is down: disarmed", newState(pgStopped), false, FenceDisarm, time.Time{}},
		{"leader running a clone: disarmed", newState(pgStopped, longRunning(LongClone)), false, FenceDisarm, time.Time{}},
		{"a writable primary without the key: left armed with its last deadline", newState(notLeader),
			false, FenceLeave, time.Time{}},
		{"a writable primary that is not ready is still writable: armed", newState(pgNotReady), true, FenceArm, dl},
		{"replica without the key: disarmed", newState(notLeader, asReplica), false, FenceDisarm, time.Time{}},
		{"paused leader: disarmed (nothing is stopped in maintenance mode)", newState(pausedState),
			false, FenceDisarm, time.Time{}},
		{"paused writable primary without the key: disarmed", newState(pausedState, notLeader),
			false, FenceDisarm, time.Time{}},
		{"no fence guard: nothing to do, but a primary leader still wants the deadline timers",
			newState(noFence), true, FenceLeave, time.Time{}},
		{"no fence guard, paused leader: still wants the timers (pause does not apply)",
			newState(noFence, pausedState), true, FenceLeave, time.Time{}},
		{"no fence guard, replica: nothing wanted", newState(noFence, asReplica), false, FenceLeave, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, step, deadline := Fence(tc.s)
			if want != tc.want || step != tc.step || !deadline.Equal(tc.deadline) {
				t.Fatalf("Fence = %v %s %v, want %v %s %v", want, step, deadline, tc.want, tc.step, tc.deadline)
			}
			if e := Settle(tc.s); e.FenceWant != want || e.Fence != step || !e.FenceDeadline.Equal(deadline) {
				t.Fatalf("Settle's fence = %+v, differs from Fence", e)
			}
		})
	}
}

func TestVIPRule(t *testing.T) {
	cases := []struct {
		name string
		s    State
		want VIPStep
	}{
		{"leader running as a ready primary: bound", newState(), VIPBind},
		{"bound already: bound again (idempotent)", newState(vipBound), VIPBind},
		{"just before DemoteStart: still bound", newState(nowAt(15*time.Second - time.Millisecond)), VIPBind},
		{"at DemoteStart: released (the hold is about to end)", newState(nowAt(15 * time.Second)), VIPUnbind},
		{"past the lease: released", newState(nowAt(31 * time.Second)), VIPUnbind},
		{"failsafe hold keeps it past the lease", newState(nowAt(31*time.Second),
			func(s *State) { s.HoldUntil = t0.Add(60 * time.Second) }), VIPBind},
		{"no hold known (the key's lease is gone): released", newState(func(s *State) { s.HoldUntil = time.Time{} }),
			VIPUnbind},
		{"not the leader: released", newState(notLeader), VIPUnbind},
		{"leader whose postgres is a replica (promotion pending): released", newState(asReplica), VIPUnbind},
		{"leader whose primary is not ready yet: released", newState(pgNotReady), VIPUnbind},
		{"leader whose postgres is down: released", newState(pgStopped), VIPUnbind},
		{"restart in place with the VIP bound: kept", newState(pgStopped, vipBound, longRunning(LongStartPrimary)),
			VIPLeave},
		{"restart in place without the VIP: not bound yet", newState(pgStopped, longRunning(LongStartPrimary)),
			VIPUnbind},
		{"restart in place past DemoteStart: released", newState(pgStopped, vipBound, longRunning(LongStartPrimary),
			nowAt(15*time.Second)), VIPUnbind},
		{"start as replica with the VIP bound: released", newState(pgStopped, vipBound, longRunning(LongStartReplica)),
			VIPUnbind},
		{"restart in place after losing the key: released", newState(pgStopped, vipBound, notLeader,
			longRunning(LongStartPrimary)), VIPUnbind},
		{"leader bootstrapping, postgres already a running primary: not bound before the bootstrap ends",
			newState(longRunning(LongBootstrap)), VIPUnbind},
		{"paused leader keeps serving: bound", newState(pausedState), VIPBind},
		{"standby leader (key held, in recovery): bound as vip-manager would", newState(asReplica,
			func(s *State) { s.Member.Role = cluster.RoleStandbyLeader }), VIPBind},
		{"standby leader whose postgres is down: released", newState(pgStopped,
			func(s *State) { s.Member.Role = cluster.RoleStandbyLeader }), VIPUnbind},
		{"standby leader past DemoteStart: released", newState(asReplica, nowAt(15*time.Second),
			func(s *State) { s.Member.Role = cluster.RoleStandbyLeader }), VIPUnbind},
		{"replica of a standby cluster (no key): released", newState(asReplica, notLeader,
			func(s *State) { s.Member.Role = cluster.RoleReplica }), VIPUnbind},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := VIP(tc.s); got != tc.want {
				t.Fatalf("VIP = %s, want %s", got, tc.want)
			}
			if got := Settle(tc.s).VIP; got != tc.want {
				t.Fatalf("Settle's VIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNextWakeRule(t *testing.T) {
	replica := func(s *State) { notLeader(s); asReplica(s) }
	cases := []struct {
		name      string
		s         State
		fenceWant bool
		want      time.Duration // after t0
	}{
		{"idle replica: loop_wait after the last cycle", newState(replica), false, 10 * time.Second},
		{"loop_wait is at least 100ms", newState(replica, func(s *State) { s.Config.LoopWait = 0 }), false,
			100 * time.Millisecond},
		{"short poll: awaiting WAL", newState(replica, func(s *State) { s.PollAfter = ShortPolls[ReasonAwaitingWAL] }),
			false, 100 * time.Millisecond},
		{"short poll: postgres not ready", newState(replica, func(s *State) { s.PollAfter = ShortPolls["pg_not_ready"] }),
			false, 250 * time.Millisecond},
		{"short poll: lagging", newState(replica, func(s *State) { s.PollAfter = ShortPolls["lagging"] }), false,
			time.Second},
		{"released 25s ago at ttl 30, no leader: the end of released_recently",
			newState(replica, func(s *State) { s.ReleasedAt = t0.Add(-25 * time.Second); s.LeaderAbsent = true }),
			false, 5 * time.Second},
		{"released recently but a leader exists: loop_wait",
			newState(replica, func(s *State) { s.ReleasedAt = t0.Add(-25 * time.Second) }), false, 10 * time.Second},
		{"fenced leader: loop_wait before DemoteStart", newState(), true, 10 * time.Second},
		{"fenced leader whose hold is short: DemoteStart", newState(func(s *State) { s.HoldUntil = t0.Add(20 * time.Second) }),
			true, 5 * time.Second},
		{"past DemoteStart: the demote deadline", newState(nowAt(16*time.Second), lastLoopNow), true, 20 * time.Second},
		{"past the deadline, still not demoted: retry in 250ms", newState(nowAt(21*time.Second), lastLoopNow), true,
			21*time.Second + 250*time.Millisecond},
		{"paused leader: no deadline timers", newState(pausedState, nowAt(16*time.Second), lastLoopNow), true,
			26 * time.Second},
		{"failsafe_mode on: the renewal's overdue time", newState(func(s *State) {
			s.Config.FailsafeMode = true
			s.Failsafe.LeaseOverdueAt = t0.Add(8 * time.Second)
		}), true, 8 * time.Second},
		{"failsafe engaged: the next round", newState(func(s *State) {
			s.Config.FailsafeMode = true
			s.Failsafe = FailsafeFacts{Engaged: true, LastRound: t0.Add(-5 * time.Second)}
		}), true, 5 * time.Second},
		{"a postponed action", newState(replica, func(s *State) { s.WakeAt = t0.Add(3 * time.Second) }), false,
			3 * time.Second},
		{"a scheduled restart", newState(replica, func(s *State) { s.RestartAt = t0.Add(4 * time.Second) }), false,
			4 * time.Second},
		{"a scheduled restart while paused: loop_wait",
			newState(replica, pausedState, func(s *State) { s.RestartAt = t0.Add(4 * time.Second) }), false, 10 * time.Second},
		{"a scheduled failover on the leader: loop_wait before it",
			newState(func(s *State) { s.FailoverAt = t0.Add(12 * time.Second) }), true, 2 * time.Second},
		{"a scheduled failover on a replica: loop_wait",
			newState(replica, func(s *State) { s.FailoverAt = t0.Add(12 * time.Second) }), false, 10 * time.Second},
		{"starting as primary: primary_start_timeout",
			newState(pgStopped, longRunning(LongStartPrimary), func(s *State) { s.Config.PrimaryStartTimeout = 5 }),
			false, 5 * time.Second},
		{"leader whose postgres is down: primary_start_timeout after it went down",
			newState(pgStopped, func(s *State) {
				s.Config.PrimaryStartTimeout = 7
				s.PGDownSince = t0
			}), false, 7 * time.Second},
		{"a replica whose postgres is down: loop_wait",
			newState(replica, pgStopped, func(s *State) {
				s.Config.PrimaryStartTimeout = 7
				s.PGDownSince = t0
			}), false, 10 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NextWake(tc.s, tc.fenceWant); !got.Equal(t0.Add(tc.want)) {
				t.Fatalf("NextWake = t0%+v, want t0%+v", got.Sub(t0), tc.want)
			}
		})
	}
}

func TestFailsafeRule(t *testing.T) {
	down := func(o *Observation) {
		o.Config.FailsafeMode = true
		o.Failsafe.DCSFailing = true
		o.Failsafe.LeaseOverdueAt = t0.Add(9 * time.Second)
	}
	engaged := func(last time.Duration) fx {
		return func(o *Observation) { o.Failsafe.Engaged, o.Failsafe.LastRound = true, t0.Add(last) }
	}
	cases := []struct {
		name string
		obs  Observation
		step FailsafeStep
		why  string
	}{
		{"healthy DCS: nothing", newObs(iLead, func(o *Observation) {
			o.Config.FailsafeMode = true
			o.Failsafe.LeaseOverdueAt = t0.Add(9 * time.Second)
		}), FailsafeStay, ""},
		{"a failed renewal on the primary: enter and ask", newObs(iLead, down), FailsafeRound, ""},
		{"a renewal overdue: enter and ask before any call fails", newObs(iLead, down, at(10*time.Second),
			func(o *Observation) { o.Failsafe.DCSFailing = false }), FailsafeRound, ""},
		{"the view stale: enter and ask", newObs(iLead, down, func(o *Observation) {
			o.Failsafe.DCSFailing = false
			o.DCSOK = false
		}), FailsafeRound, ""},
		{"engaged, the last round within the interval: nothing", newObs(iLead, down, engaged(-5*time.Second)),
			FailsafeStay, ""},
		{"engaged, the interval passed: ask again", newObs(iLead, down, engaged(-10*time.Second)), FailsafeRound, ""},
		{"engaged, the interval passed, but a round already ran this cycle (it timed out): decide now", newObs(iLead,
			down, engaged(-10*time.Second), func(o *Observation) { o.Failsafe.RoundThisCycle = true }), FailsafeStay, ""},
		{"a round ran this cycle and postgres is gone: exit still comes first", newObs(iLead, down, engaged(-10*time.Second),
			func(o *Observation) { o.Failsafe.RoundThisCycle, o.PG.Running = true, false }), FailsafeExit,
			"postgres is not a running primary"},
		{"engaged, DCS back: exit", newObs(iLead, engaged(-time.Second), func(o *Observation) {
			o.Config.FailsafeMode = true
			o.Failsafe.LeaseOverdueAt = t0.Add(9 * time.Second)
		}), FailsafeExit, "DCS is accessible again"},
		{"engaged, failsafe_mode turned off: exit", newObs(iLead, down, engaged(-time.Second),
			cfg(func(c *cluster.DynamicConfig) { c.FailsafeMode = false })), FailsafeExit, "failsafe_mode is off"},
		{"engaged, paused: exit", newObs(iLead, down, engaged(-time.Second), paused), FailsafeExit, "maintenance mode"},
		{"engaged, not the leader: exit", newObs(iLead, down, engaged(-time.Second), leader("pg2")), FailsafeExit,
			"not the leader"},
		{"engaged, postgres no longer a primary: exit", newObs(iLead, down, engaged(-time.Second),
			func(o *Observation) { o.PG.InRecovery = true }), FailsafeExit, "postgres is not a running primary"},
		{"a replica with the DCS down: nothing", newObs(down), FailsafeStay, ""},
		{"failsafe_mode off: nothing", newObs(iLead, down, cfg(func(c *cluster.DynamicConfig) { c.FailsafeMode = false })),
			FailsafeStay, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			step, why := NextFailsafe(tc.obs)
			if step != tc.step || why != tc.why {
				t.Fatalf("NextFailsafe = %d %q, want %d %q", step, why, tc.step, tc.why)
			}
			p := Make(tc.obs)
			if p.Failsafe != tc.step || (tc.step != FailsafeStay) != p.Replan {
				t.Fatalf("Make: failsafe %d replan %v, want %d", p.Failsafe, p.Replan, tc.step)
			}
		})
	}
}

func TestMakeCarriesTheWait(t *testing.T) {
	cases := []struct {
		name      string
		obs       Observation
		poll      time.Duration
		onRenewal bool
	}{
		{"a healthy replica waits for events", newObs(), 0, false},
		{"postgres not ready: short poll", newObs(func(o *Observation) { o.PG.Ready = false }), 250 * time.Millisecond, false},
		{"the leader down with too short a hold: the renewal ends the wait",
			newObs(iLead, pgDown("shut down"), func(o *Observation) { o.LeaseValidUntil = t0.Add(12 * time.Second) }),
			0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Make(tc.obs)
			if p.PollAfter != tc.poll || p.CycleOnRenewal != tc.onRenewal {
				t.Fatalf("Make(%s) = poll %v renewal %v, want %v %v", p.Reason, p.PollAfter, p.CycleOnRenewal,
					tc.poll, tc.onRenewal)
			}
			if d := Decide(tc.obs); d.Action != p.Action || d.Reason != p.Reason {
				t.Fatalf("Make's decision %s/%s differs from Decide's %s/%s", p.Action, p.Reason, d.Action, d.Reason)
			}
		})
	}
}

func TestMemberKeyRule(t *testing.T) {
	facts := func(s *State) {
		s.Member = MemberFacts{Write: true, Name: "pg1", ConnURL: "postgres://pg1", APIURL: "http://pg1:8008/patroni",
			Compat: cluster.Compat302, Role: cluster.RolePrimary, Tags: map[string]any{"nofailover": false, "dc": "a"}}
	}
	cases := []struct {
		name                     string
		s                        State
		written                  bool
		state, role, replication string
		xlog                     bool
	}{
		{"a primary: running, master, its WAL position", newState(facts), true, "running", "master", "", true},
		{"a streaming replica", newState(facts, asReplica, func(s *State) {
			s.Member.Role, s.PG.Streaming = cluster.RoleReplica, true
		}), true, "running", "replica", "streaming", true},
		{"a replica in archive recovery", newState(facts, asReplica, func(s *State) { s.Member.Role = cluster.RoleReplica }),
			true, "running", "replica", "in archive recovery", true},
		{"a clone in progress shows creating replica", newState(facts, pgStopped, longRunning(LongClone),
			func(s *State) { s.Member.Role = cluster.RoleUninitialized }), true, "creating replica", "uninitialized", "", false},
		{"a start in progress shows starting", newState(facts, pgStopped, longRunning(LongStartReplica)), true,
			"starting", "master", "", false},
		{"postgres stopped", newState(facts, pgStopped), true, "stopped", "master", "", false},
		{"the view unusable: nothing written", newState(facts, func(s *State) { s.Member.Write = false }), false,
			"", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := Settle(tc.s).Member
			if (m != nil) != tc.written {
				t.Fatalf("member written %v, want %v", m != nil, tc.written)
			}
			if m == nil {
				return
			}
			if m.State != tc.state || m.Role != tc.role || m.ReplicationState != tc.replication || (m.XLogLocation != nil) != tc.xlog {
				t.Fatalf("member %+v, want state %q role %q replication %q xlog %v", *m, tc.state, tc.role, tc.replication, tc.xlog)
			}
			if _, ok := m.Tags["nofailover"]; ok || m.Tags["dc"] != "a" {
				t.Errorf("tags %v: a false built-in tag is dropped, others kept", m.Tags)
			}
		})
	}
}
