package plan

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// With Patroni's defaults (ttl 30, retry_timeout 10) and a lease valid until
// t0+30s: FenceMargin 10s, DemoteDeadline t0+20s, DemoteStart t0+15s.

func TestDecideFencing(t *testing.T) {
	runDecideCases(t, []decideCase{
		{"leader with a fresh lease keeps the lock", newObs(iLead),
			want{action: ActionUpdateLock, msg: "no action. I am (pg1), the leader with the lock"}},
		{"lease about to expire demotes with a fast stop before the deadline", newObs(iLead, at(15*time.Second)),
			want{action: ActionDemote, demote: DemoteOffline, stop: cluster.StopFast, reason: "lease_deadline"}},
		{"lease just before demote start is still fine", newObs(iLead, at(15*time.Second-time.Millisecond)),
			want{action: ActionUpdateLock}},
		{"lease past the demote deadline demotes with an immediate stop", newObs(iLead, at(20*time.Second)),
			want{action: ActionDemote, demote: DemoteOffline, stop: cluster.StopImmediate}},
		{"lease already expired demotes immediately", newObs(iLead, at(31*time.Second)),
			want{action: ActionDemote, demote: DemoteOffline, stop: cluster.StopImmediate}},
		{"no lease at all with a running primary demotes immediately",
			newObs(iLead, func(o *Observation) { o.LeaseValidUntil = time.Time{} }),
			want{action: ActionDemote, demote: DemoteOffline, stop: cluster.StopImmediate}},
		{"a primary that stopped answering is still fenced",
			newObs(iLead, at(16*time.Second), func(o *Observation) { o.PG.Ready = false }),
			want{action: ActionDemote, demote: DemoteOffline, stop: cluster.StopFast}},
		{"paused primary is never fenced by the loop", newObs(iLead, paused, at(16*time.Second)),
			want{action: ActionUpdateLock, msg: "PAUSE: no action"}},
		{"failsafe confirmation extends the hold", newObs(iLead, at(16*time.Second), func(o *Observation) {
			o.FailsafeConfirmed, o.FailsafeUntil = true, t0.Add(60*time.Second)
		}), want{action: ActionUpdateLock}},
		{"fencing cancels a long action running on a writable primary",
			newObs(iLead, at(16*time.Second), long(LongRewind, 0)),
			want{action: ActionDemote, demote: DemoteOffline, stop: cluster.StopFast, cancel: true}},
		{"fencing with DCS down says so", newObs(iLead, at(16*time.Second), func(o *Observation) { o.DCSOK = false }),
			want{action: ActionDemote, demote: DemoteOffline, msg: "DCS is not accessible"}},
	})
}

func TestDemoteDeadline(t *testing.T) {
	c := func(ttl, loop, retry int) cluster.DynamicConfig {
		d := cluster.DefaultDynamicConfig()
		d.TTL, d.LoopWait, d.RetryTimeout = ttl, loop, retry
		return d
	}
	cases := []struct {
		name   string
		cfg    cluster.DynamicConfig
		margin time.Duration
	}{
		{"patroni defaults 30/10/10: margin is retry_timeout", c(30, 10, 10), 10 * time.Second},
		{"10/2/4: margin is ttl/3", c(10, 2, 4), 10 * time.Second / 3},
		{"3/1/1: margin is one second", c(3, 1, 1), time.Second},
		{"1/1/1: margin never below 500ms", c(1, 1, 1), 500 * time.Millisecond},
		{"30/10/3: retry_timeout smaller than ttl/3", c(30, 10, 3), 3 * time.Second},
	}
	vu := t0.Add(time.Minute)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := FenceMargin(tc.cfg); got != tc.margin {
				t.Fatalf("FenceMargin = %v, want %v", got, tc.margin)
			}
			if got := DemoteDeadline(vu, tc.cfg); !got.Equal(vu.Add(-tc.margin)) {
				t.Fatalf("DemoteDeadline = %v, want %v", got, vu.Add(-tc.margin))
			}
			if got := DemoteStart(vu, tc.cfg); !got.Equal(vu.Add(-tc.margin - tc.margin/2)) {
				t.Fatalf("DemoteStart = %v, want %v", got, vu.Add(-tc.margin-tc.margin/2))
			}
		})
	}
	for _, k := range []struct {
		cfg  cluster.DynamicConfig
		want time.Duration
	}{{c(30, 10, 10), 5 * time.Second}, {c(3, 1, 1), 500 * time.Millisecond}, {c(1, 1, 1), 100 * time.Millisecond}} {
		if got := KeepAliveInterval(k.cfg); got != k.want {
			t.Errorf("KeepAliveInterval(ttl %d) = %v, want %v", k.cfg.TTL, got, k.want)
		}
	}
	t.Run("no lease gives the zero time (already passed)", func(t *testing.T) {
		if !DemoteDeadline(time.Time{}, c(30, 10, 10)).IsZero() || !DemoteStart(time.Time{}, c(30, 10, 10)).IsZero() {
			t.Fatal("want zero")
		}
	})
}

func TestDecideDCSError(t *testing.T) {
	down := func(o *Observation) { o.DCSOK = false }
	runDecideCases(t, []decideCase{
		{"primary demotes offline when DCS is not accessible", newObs(iLead, down),
			want{action: ActionDemote, demote: DemoteOffline, stop: cluster.StopFast,
				msg: "demoting self because DCS is not accessible and I was a leader"}},
		{"primary without the key demotes offline when DCS is not accessible", newObs(primary, down),
			want{action: ActionDemote, demote: DemoteOffline}},
		{"failsafe confirmed keeps the primary running without DCS",
			newObs(iLead, down, func(o *Observation) { o.FailsafeConfirmed = true }),
			want{action: ActionNone, reason: "failsafe"}},
		{"replica keeps replicating when DCS is not accessible", newObs(down, leader("")),
			want{action: ActionNone, msg: "DCS is not accessible"}},
		{"stopped node is not started while DCS is not accessible", newObs(down, pgDown("shut down in recovery")),
			want{action: ActionNone, msg: "DCS is not accessible"}},
		{"empty node does not bootstrap while DCS is not accessible",
			newObs(down, leader(""), func(o *Observation) { o.Data = DataDir{Empty: true}; o.PG = cluster.PGObservation{} }),
			want{action: ActionNone}},
		{"paused primary does nothing when DCS is not accessible", newObs(iLead, down, paused),
			want{action: ActionNone, msg: "PAUSE: DCS is not accessible"}},
		{"expired lease counts as a DCS failure: a replica never races",
			newObs(leader(""), func(o *Observation) { o.LeaseValidUntil = t0.Add(-time.Second) }),
			want{action: ActionNone, msg: "DCS is not accessible"}},
	})
}

func TestDecideBootstrapAndClone(t *testing.T) {
	empty := func(o *Observation) {
		o.Data = DataDir{Empty: true}
		o.PG = cluster.PGObservation{State: cluster.StateStopped}
		delete(o.View.Members, "pg1")
	}
	newCluster := func(o *Observation) {
		o.View = cluster.View{Members: map[string]cluster.Member{}, ReadAt: t0}
	}
	runDecideCases(t, []decideCase{
		{"empty cluster with a bootstrap section races for initialize", newObs(empty, newCluster),
			want{action: ActionBootstrap, msg: "trying to bootstrap a new cluster"}},
		{"nofailover node does not bootstrap", newObs(empty, newCluster, tags(map[string]any{"nofailover": true})),
			want{action: ActionWait, reason: "nofailover"}},
		{"node without a bootstrap section waits for a leader",
			newObs(empty, newCluster, func(o *Observation) { o.HasBootstrapConfig = false }),
			want{action: ActionWait, msg: "waiting for leader to bootstrap"}},
		{"initialize in flight and no leader: wait for the bootstrap",
			newObs(empty, newCluster, func(o *Observation) { o.View.Initialize = str("") }),
			want{action: ActionWait, msg: "waiting for leader to bootstrap"}},
		{"initialize in flight with the bootstrapping leader holding the key: wait",
			newObs(empty, func(o *Observation) { o.View.Initialize = str("") }),
			want{action: ActionWait, reason: "bootstrap_in_flight"}},
		{"paused: an empty data directory is not bootstrapped", newObs(empty, newCluster, paused),
			want{action: ActionNone, msg: "PAUSE"}},
		{"leader with an empty data directory releases the key", newObs(empty, leader("pg1")),
			want{action: ActionReleaseLock, reason: "empty_data_dir"}},
		{"empty data directory clones from the leader", newObs(empty),
			want{action: ActionClone, member: "pg2", msg: "trying to bootstrap from leader 'pg2'"}},
		{"a running clonefrom member is preferred over the leader",
			newObs(empty, memberTags("pg3", map[string]any{"clonefrom": true})),
			want{action: ActionClone, member: "pg3", msg: "from replica 'pg3'"}},
		{"clonefrom on the leader itself is not a replica source",
			newObs(empty, memberTags("pg2", map[string]any{"clonefrom": true})),
			want{action: ActionClone, member: "pg2", msg: "from leader"}},
		{"a clonefrom member that is not running is ignored",
			newObs(empty, memberTags("pg3", map[string]any{"clonefrom": "on"}),
				setMember("pg3", func(m *cluster.Member) { m.State = "stopped" })),
			want{action: ActionClone, member: "pg2"}},
		{"clonefrom members are chosen by name for a stable choice",
			newObs(empty, memberTags("pg3", map[string]any{"clonefrom": true}),
				setMember("pg0", func(m *cluster.Member) {
					*m = cluster.Member{ConnURL: "postgres://10.0.0.9:5432/postgres", State: "running",
						Tags: map[string]any{"clonefrom": true}}
				})),
			want{action: ActionClone, member: "pg0"}},
		{"no leader but an initialized cluster clones from a clonefrom member",
			newObs(empty, leader(""), memberTags("pg3", map[string]any{"clonefrom": true})),
			want{action: ActionClone, member: "pg3"}},
		{"no leader and no clonefrom member: wait", newObs(empty, leader("")),
			want{action: ActionWait, reason: "no_clone_source"}},
		{"leader not running yet: wait before cloning",
			newObs(empty, setMember("pg2", func(m *cluster.Member) { m.State = "starting" })),
			want{action: ActionWait, reason: "no_clone_source"}},
		{"unreadable data directory: wait",
			newObs(pgDown("shut down"), func(o *Observation) { o.Data.Err = "permission denied" }),
			want{action: ActionWait, reason: "data_dir_error"}},
	})
}

// TestDecideCloneWithoutLeader: a replica is built with no leader running only
// when some create_replica_methods entry has no_leader (Patroni's Ha.bootstrap).
func TestDecideCloneWithoutLeader(t *testing.T) {
	empty := func(o *Observation) {
		o.Data = DataDir{Empty: true}
		o.PG = cluster.PGObservation{State: cluster.StateStopped}
		delete(o.View.Members, "pg1")
	}
	noLeaderMethod := func(o *Observation) { o.CloneWithoutLeader = true }
	newCluster := func(o *Observation) { o.View = cluster.View{Members: map[string]cluster.Member{}, ReadAt: t0} }
	runDecideCases(t, []decideCase{
		{"no leader, initialized cluster, a no_leader method: clone without a source",
			newObs(empty, leader(""), noLeaderMethod),
			want{action: ActionClone, member: "", reason: "clone_without_leader", msg: "trying to bootstrap (without leader)"}},
		{"no leader, initialized cluster, no no_leader method: wait",
			newObs(empty, leader("")),
			want{action: ActionWait, reason: "no_clone_source"}},
		{"no leader: a running clonefrom member still wins over the backup",
			newObs(empty, leader(""), noLeaderMethod, memberTags("pg3", map[string]any{"clonefrom": true})),
			want{action: ActionClone, member: "pg3"}},
		{"initialize in flight: wait even with a no_leader method",
			newObs(empty, newCluster, noLeaderMethod, func(o *Observation) { o.View.Initialize = str("") }),
			want{action: ActionWait, reason: "bootstrap_in_flight"}},
		{"new cluster with a bootstrap section: bootstrap, not restore as a replica",
			newObs(empty, newCluster, noLeaderMethod),
			want{action: ActionBootstrap}},
		{"new cluster, no bootstrap section, a no_leader method: clone without a source",
			newObs(empty, newCluster, noLeaderMethod, func(o *Observation) { o.HasBootstrapConfig = false }),
			want{action: ActionClone, reason: "clone_without_leader"}},
		{"new cluster, nofailover, a no_leader method: clone without a source",
			newObs(empty, newCluster, noLeaderMethod, tags(map[string]any{"nofailover": true})),
			want{action: ActionClone, reason: "clone_without_leader"}},
		{"leader present but not running: wait for it, even with a no_leader method",
			newObs(empty, noLeaderMethod, setMember("pg2", func(m *cluster.Member) { m.State = "starting" })),
			want{action: ActionWait, reason: "no_clone_source"}},
		{"paused: nothing is cloned", newObs(empty, leader(""), noLeaderMethod, paused),
			want{action: ActionNone, msg: "PAUSE"}},
	})
}

func TestDecideSystemID(t *testing.T) {
	other := func(o *Observation) { o.View.Initialize = str("7399999999999999999") }
	runDecideCases(t, []decideCase{
		{"sysid mismatch is fatal", newObs(other),
			want{action: ActionFatal, reason: "sysid_mismatch", msg: "refusing to use or overwrite"}},
		{"sysid mismatch of stopped data is fatal", newObs(other, pgDown("shut down")),
			want{action: ActionFatal, reason: "sysid_mismatch"}},
		{"paused: sysid mismatch on the leader releases the key", newObs(other, iLead, paused),
			want{action: ActionReleaseLock, reason: "sysid_mismatch"}},
		{"paused: sysid mismatch on a replica only warns", newObs(other, paused),
			want{action: ActionNone, reason: "sysid_mismatch"}},
		{"no initialize key and no leader: adopt the data directory",
			newObs(leader(""), primary, func(o *Observation) { o.View.Initialize = nil }),
			want{action: ActionClaimInitialize, msg: testSysID}},
		{"no initialize key while running as a replica is fatal",
			newObs(leader(""), func(o *Observation) { o.View.Initialize = nil }),
			want{action: ActionFatal, reason: "no_initialize_replica"}},
		{"no initialize key but a leader: carry on following it",
			newObs(func(o *Observation) { o.View.Initialize = nil }),
			want{action: ActionNone, reason: "follower"}},
		{"unknown system identifier with postgres stopped: wait",
			newObs(pgDown("shut down"), func(o *Observation) { o.Data.Control = nil }),
			want{action: ActionWait, reason: "sysid_unknown"}},
		{"an invalid initialize value is not compared",
			newObs(func(o *Observation) { o.View.Initialize = str("garbage") }),
			want{action: ActionNone, reason: "follower"}},
	})
}

func TestDecidePostgresNotRunning(t *testing.T) {
	leaderDown := func(o *Observation) {
		iLead(o)
		pgDown("in production")(o)
	}
	lagging := func(o *Observation) { // pg2 far behind, pg3 gone: nobody can take over
		setMember("pg2", func(m *cluster.Member) { m.XLogLocation = i64(1) })(o)
		o.View.Status = &cluster.StatusKey{Optime: 5 << 20}
		dropMember("pg3")(o)
	}
	pst := func(s int) fx { return cfg(func(c *cluster.DynamicConfig) { c.PrimaryStartTimeout = s }) }
	runDecideCases(t, []decideCase{
		{"leader postmaster crash restarts in place", newObs(leaderDown),
			want{action: ActionRestartInPlace, msg: "starting primary after failure"}},
		{"primary_start_timeout 0 with a healthy replica fails over", newObs(leaderDown, pst(0)),
			want{action: ActionDemote, demote: DemoteImmediate, reason: "primary_start_timeout"}},
		{"primary_start_timeout 0 without a viable replica restarts in place", newObs(leaderDown, pst(0), lagging),
			want{action: ActionRestartInPlace}},
		{"down longer than primary_start_timeout with a viable replica hands over",
			newObs(leaderDown, pst(5), func(o *Observation) { o.PGDownSince = t0.Add(-6 * time.Second) }),
			want{action: ActionDemote, demote: DemoteImmediate, stop: cluster.StopImmediate}},
		{"down less than primary_start_timeout keeps restarting",
			newObs(leaderDown, pst(5), func(o *Observation) { o.PGDownSince = t0.Add(-4 * time.Second) }),
			want{action: ActionRestartInPlace}},
		{"down longer than primary_start_timeout but no viable replica keeps restarting",
			newObs(leaderDown, pst(5), lagging, func(o *Observation) { o.PGDownSince = t0.Add(-6 * time.Second) }),
			want{action: ActionRestartInPlace}},
		{"failed start as leader hands over when a replica can take over",
			newObs(leaderDown, func(o *Observation) { o.LastStartFailed = true }),
			want{action: ActionDemote, demote: DemoteImmediate, reason: "start_failed"}},
		{"a nofailover replica is not viable for a handover",
			newObs(leaderDown, pst(0), dropMember("pg3"), memberTags("pg2", map[string]any{"nofailover": true})),
			want{action: ActionRestartInPlace}},
		{"a stopped replica is not viable for a handover",
			newObs(leaderDown, pst(0), dropMember("pg3"), setMember("pg2", func(m *cluster.Member) { m.State = "stopped" })),
			want{action: ActionRestartInPlace}},
		{"a leader whose data is a replica's starts read-only first", newObs(leaderDown, pgDown("shut down in recovery")),
			want{action: ActionStartReplica, msg: "starting as readonly because i had the session lock"}},
		{"a leader whose lease is about to expire does not start a primary", newObs(leaderDown, at(16*time.Second)),
			want{action: ActionWait, reason: "lease_deadline"}},
		{"a replica starts following the leader", newObs(pgDown("shut down in recovery")),
			want{action: ActionStartReplica, member: "pg2", msg: "starting as a secondary"}},
		{"without a leader a node starts as a standalone secondary", newObs(leader(""), pgDown("shut down in recovery")),
			want{action: ActionStartReplica, msg: "starting as a secondary"}},
		{"replicatefrom member is followed when it runs",
			newObs(pgDown("shut down in recovery"), tags(map[string]any{"replicatefrom": "pg3"})),
			want{action: ActionStartReplica, member: "pg3"}},
		{"replicatefrom member that is down falls back to the leader",
			newObs(pgDown("shut down in recovery"), tags(map[string]any{"replicatefrom": "pg3"}),
				setMember("pg3", func(m *cluster.Member) { m.State = "stopped" })),
			want{action: ActionStartReplica, member: "pg2"}},
		{"nostream starts standalone", newObs(pgDown("shut down in recovery"), tags(map[string]any{"nostream": true})),
			want{action: ActionStartReplica}},
		{"paused: stopped postgres is not started", newObs(pgDown("shut down in recovery"), paused),
			want{action: ActionNone, msg: "PAUSE: postgres is not running"}},
		{"paused: a leader with stopped postgres keeps the key (resume restarts it in place)", newObs(leaderDown, paused),
			want{action: ActionUpdateLock, reason: "paused_pg_down", msg: "keeping the leader key"}},
		{"paused: a leader with stopped postgres releases the key when another member runs as primary",
			newObs(leaderDown, paused, setMember("pg3", func(m *cluster.Member) { m.Role = "master" })),
			want{action: ActionReleaseLock, reason: "paused_pg_down", msg: "pg3 runs as primary"}},
	})
}
