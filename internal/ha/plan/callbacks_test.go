package plan

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// called is the state after a callback already fired, with the role the node ran as.
func called(role cluster.Role) fx {
	return func(o *Observation) { o.Callbacks = CallbackState{Called: true, Role: role} }
}

func fmtPlan(cbs []PlannedCallback) string {
	var s []string
	for _, c := range cbs {
		s = append(s, fmt.Sprintf("%s %s %s", c.Callback, c.Role, c.After))
	}
	return strings.Join(s, "; ")
}

// callbackCase is one transition: the observation, the action Decide takes
// and the callbacks it plans (fmtPlan).
type callbackCase struct {
	name   string
	obs    Observation
	action Action
	plan   string
}

func runCallbackCases(t *testing.T, cases []callbackCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.obs)
			if d.Action != tc.action {
				t.Fatalf("action %v, want %v (%s, %s)", d.Action, tc.action, d.Reason, d.Message)
			}
			if got := fmtPlan(d.Callbacks); got != tc.plan {
				t.Errorf("callbacks %q, want %q", got, tc.plan)
			}
		})
	}
}

// Which postgresql.callbacks each transition fires, as Patroni's Postgresql
// methods fire them (start/stop/promote/follow/reload), planned by Decide.
func TestDecidePlansCallbacks(t *testing.T) {
	emptyData := func(o *Observation) {
		o.PG = cluster.PGObservation{State: cluster.StateStopped}
		o.Data = DataDir{Empty: true}
	}
	bootstrap := func(o *Observation) { emptyData(o); o.View.Leader, o.View.Initialize = nil, nil; o.View.Members = nil }
	replicaDown := pgDown("shut down in recovery")
	leaderDown := func(o *Observation) {
		iLead(o)
		pgDown("in production")(o)
	}
	runCallbackCases(t, []callbackCase{
		{"bootstrap: nothing until the new primary runs, then one on_start",
			newObs(bootstrap), ActionBootstrap, "on_start primary after-start"},
		{"a clone fires on_start as replica once it runs",
			newObs(emptyData), ActionClone, "on_start replica after-start"},
		{"a stopped replica started by a new pgnoded: on_start",
			newObs(replicaDown), ActionStartReplica, "on_start replica after-start"},
		{"a replica that crashed and is started again: on_start",
			newObs(replicaDown, called(cluster.RoleReplica)), ActionStartReplica, "on_start replica after-start"},
		{"a demoted primary started as replica: on_role_change only",
			newObs(replicaDown, called(cluster.RoleDemoted)), ActionStartReplica, "on_role_change replica after-start"},
		{"the leader's crashed primary restarted in place: on_start",
			newObs(leaderDown, called(cluster.RolePrimary)), ActionRestartInPlace, "on_start primary after-start"},
		{"the race winner promotes: on_role_change primary",
			newObs(noLeader, peers(peer("pg3", 900)), called(cluster.RoleReplica)), ActionAcquire,
			"on_role_change primary after-promote"},
		{"the key holder still in recovery promotes: on_role_change primary",
			newObs(leader("pg1"), called(cluster.RoleReplica)), ActionPromote, "on_role_change primary after-promote"},
		{"a running primary that takes the free key fires nothing",
			newObs(noLeader, primary, called(cluster.RolePrimary)), ActionAcquire, ""},
		{"switchover: the old primary fires on_stop when stopped",
			newObs(iLead, failover("pg1", "pg2", ""), called(cluster.RolePrimary)), ActionDemote, "on_stop demoted after-stop"},
		{"a primary without the key stops: on_stop",
			newObs(primary, called(cluster.RolePrimary)), ActionDemote, "on_stop primary after-stop"},
		{"DCS lost: offline demote fires on_stop then on_role_change once read-only",
			newObs(iLead, called(cluster.RolePrimary), func(o *Observation) { o.DCSOK = false; o.View.ReadAt = t0.Add(-time.Minute) }),
			ActionDemote, "on_stop primary after-stop; on_role_change replica after-start"},
		{"a replica re-pointed at a new leader reloads: on_reload",
			newObs(called(cluster.RoleReplica), func(o *Observation) { o.Upstream.Name = "pg3" }), ActionFollow,
			"on_reload replica after-reload"},
		{"a replica found running when pgnoded starts: on_start at once",
			newObs(), ActionNone, "on_start replica now"},
		{"a primary found running when pgnoded starts: on_start at once",
			newObs(iLead), ActionUpdateLock, "on_start primary now"},
		{"nothing more once a callback fired",
			newObs(called(cluster.RoleReplica)), ActionNone, ""},
		{"nothing while a long action runs",
			newObs(long(LongStartReplica, 0), func(o *Observation) { o.PG.Ready = false }), ActionWait, ""},
	})
}

// pre_promote runs (as a long action) before every promotion; a failure gives
// the key up and keeps the node out of the race for ttl, even as the named
// candidate, as Patroni's is_healthiest_node does.
func TestDecidePrePromote(t *testing.T) {
	hasPP := func(o *Observation) { o.HasPrePromote = true }
	iHold := leader("pg1")
	outcome := func(r PrePromoteResult) fx { return func(o *Observation) { o.PrePromote = r } }
	failedAgo := func(d time.Duration) fx { return func(o *Observation) { o.PrePromoteFailedAt = t0.Add(-d) } }
	behind := peers(peer("pg3", 900))
	for _, tc := range []struct {
		name       string
		obs        Observation
		action     Action
		reason     string
		prePromote bool
		cancel     bool
	}{
		{"race winner with pre_promote: take the key, run it before promoting",
			newObs(noLeader, behind, hasPP), ActionAcquire, "healthiest", true, false},
		{"race winner without pre_promote promotes at once",
			newObs(noLeader, behind), ActionAcquire, "healthiest", false, false},
		{"key held, still a replica, pre_promote not run yet",
			newObs(iHold, hasPP), ActionPromote, "have_lock", true, false},
		{"key held, pre_promote passed: promote",
			newObs(iHold, hasPP, outcome(PrePromotePassed)), ActionPromote, "have_lock", false, false},
		{"key held, pre_promote failed: give the key up",
			newObs(iHold, hasPP, outcome(PrePromoteFailed), called(cluster.RoleReplica)), ActionReleaseLock, "pre_promote_failed", false, false},
		{"while pre_promote runs the key is kept",
			newObs(iHold, hasPP, long(LongPrePromote, 0)), ActionUpdateLock, "long_action", false, false},
		{"key lost while pre_promote runs: cancel it",
			newObs(hasPP, long(LongPrePromote, 0)), ActionWait, "lock_lost", false, true},
		{"after a failure the node stays out of the race for ttl",
			newObs(noLeader, behind, hasPP, failedAgo(5*time.Second)), ActionNone, "pre_promote_backoff", false, false},
		{"even as the named switchover candidate",
			newObs(noLeader, behind, hasPP, failedAgo(5*time.Second), failover("pg2", "pg1", "")), ActionNone,
			"pre_promote_backoff", false, false},
		{"past ttl it races again",
			newObs(noLeader, behind, hasPP, failedAgo(31*time.Second)), ActionAcquire, "healthiest", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.obs)
			if d.Action != tc.action || d.Reason != tc.reason {
				t.Fatalf("action %v (%s), want %v (%s): %s", d.Action, d.Reason, tc.action, tc.reason, d.Message)
			}
			if d.PrePromote != tc.prePromote {
				t.Errorf("PrePromote %v, want %v", d.PrePromote, tc.prePromote)
			}
			if d.CancelLong != tc.cancel {
				t.Errorf("CancelLong %v, want %v", d.CancelLong, tc.cancel)
			}
			if tc.action == ActionReleaseLock && len(d.Callbacks) != 0 {
				t.Errorf("a cancelled promotion fires no callback, got %s", fmtPlan(d.Callbacks))
			}
		})
	}
}

// Actions whose decisions need diverged timelines or a vanished data directory, planned directly.
func TestPlanCallbacksStopAndStartActions(t *testing.T) {
	stopped := pgDown("shut down")
	for _, tc := range []struct {
		name string
		obs  Observation
		d    Decision
		plan string
	}{
		{"rewind of a running replica: on_stop, then on_start",
			newObs(called(cluster.RoleReplica)), Decision{Action: ActionRewind}, "on_stop replica after-stop; on_start replica after-start"},
		{"rewind of a demoted primary: on_role_change once it runs",
			newObs(stopped, called(cluster.RoleDemoted)), Decision{Action: ActionRewind}, "on_role_change replica after-start"},
		{"reinitialize: on_stop, then on_start (the data is new)",
			newObs(called(cluster.RoleReplica)), Decision{Action: ActionReinitialize}, "on_stop replica after-stop; on_start replica after-start"},
		{"reinitialize of a stopped demoted node: on_start",
			newObs(stopped, called(cluster.RoleDemoted)), Decision{Action: ActionReinitialize}, "on_start replica after-start"},
		{"data directory vanished under a running primary: on_stop",
			newObs(primary, called(cluster.RolePrimary)), Decision{Action: ActionStop}, "on_stop primary after-stop"},
		{"a demote of a postgres already stopped fires no on_stop",
			newObs(stopped, called(cluster.RolePrimary)), Decision{Action: ActionDemote, Demote: DemoteImmediateNoLock}, ""},
		{"a fatal decision fires nothing",
			newObs(), Decision{Action: ActionFatal}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmtPlan(PlanCallbacks(tc.obs, tc.d)); got != tc.plan {
				t.Errorf("callbacks %q, want %q", got, tc.plan)
			}
		})
	}
}

// In a standby cluster the key holder's callbacks name the role
// standby_leader, as Patroni's do (ha.py _get_node_to_follow, Postgresql.follow).
func TestDecidePlansStandbyCallbacks(t *testing.T) {
	bootstrap := func(o *Observation) {
		o.PG = cluster.PGObservation{State: cluster.StateStopped}
		o.Data = DataDir{Empty: true}
		o.View.Leader, o.View.Initialize, o.View.Members = nil, nil, nil
	}
	followsRemote := func(o *Observation) {
		o.Upstream = Upstream{Known: true, Name: RemotePrimary, ConnURL: "10.9.0.1:5432"}
	}
	streamingTo := func(name string) fx {
		return func(o *Observation) {
			o.PG.Replication = []cluster.ReplicationRow{{ApplicationName: name, State: "streaming", ReplayLSN: 1000}}
		}
	}
	runCallbackCases(t, []callbackCase{
		{"a standby leader found running when pgnoded starts: on_start standby_leader",
			newObs(iStandbyLead), ActionUpdateLock, "on_start standby_leader now"},
		{"nothing more once a callback fired",
			newObs(iStandbyLead, called(cluster.RoleStandbyLeader)), ActionUpdateLock, ""},
		{"the standby leader's bootstrap: on_start standby_leader once it runs",
			newObs(bootstrap, standby), ActionBootstrap, "on_start standby_leader after-start"},
		{"the standby leader's crashed postgres started again: on_start standby_leader",
			newObs(iStandbyLead, pgDown("shut down in recovery"), called(cluster.RoleStandbyLeader)), ActionStartReplica,
			"on_start standby_leader after-start"},
		{"a stopped replica holding the key starts as the standby leader: on_role_change",
			newObs(iStandbyLead, pgDown("shut down in recovery"), called(cluster.RoleReplica)), ActionStartReplica,
			"on_role_change standby_leader after-start"},
		{"the new key holder leaves the member it followed for the remote primary: on_role_change",
			newObs(iStandbyLead, called(cluster.RoleStandbyLeader), func(o *Observation) { o.Upstream = Upstream{Known: true, Name: "pg2"} }),
			ActionFollow, "on_role_change standby_leader after-reload"},
		{"a changed remote address is a reload: on_reload standby_leader",
			newObs(iStandbyLead, called(cluster.RoleStandbyLeader), func(o *Observation) { o.Config.StandbyCluster.Host = "10.9.0.2" }),
			ActionFollow, "on_reload standby_leader after-reload"},
		{"the race winner already following the remote primary: on_role_change once the key is taken",
			newObs(noLeader, standby, followsRemote, peers(peer("pg3", 900)), called(cluster.RoleReplica)), ActionAcquire,
			"on_role_change standby_leader after-acquire"},
		{"the race winner following a member: nothing until the re-point",
			newObs(noLeader, standby, peers(peer("pg3", 900)), called(cluster.RoleReplica)), ActionAcquire, ""},
		{"a primary in a standby cluster is demoted into the standby leader",
			newObs(iLead, standby, called(cluster.RolePrimary)), ActionDemote,
			"on_stop primary after-stop; on_role_change standby_leader after-start"},
		{"a switchover stops the standby leader: on_stop standby_leader",
			newObs(iStandbyLead, failover("pg1", "pg2", ""), streamingTo("pg2"), called(cluster.RoleStandbyLeader)), ActionDemote,
			"on_stop standby_leader after-stop"},
		{"the former standby leader starts following the new one: on_role_change replica",
			newObs(standby, pgDown("shut down in recovery"), called(cluster.RoleStandbyLeader)), ActionStartReplica,
			"on_role_change replica after-start"},
		{"a member re-pointed at a new standby leader: on_reload replica",
			newObs(standby, called(cluster.RoleReplica), func(o *Observation) { o.Upstream.Name = "pg3" }), ActionFollow,
			"on_reload replica after-reload"},
		{"removing standby_cluster promotes: on_role_change primary",
			newObs(iStandbyLead, called(cluster.RoleStandbyLeader), func(o *Observation) { o.Config.StandbyCluster = nil }),
			ActionPromote, "on_role_change primary after-promote"},
	})
}
