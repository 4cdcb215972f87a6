package plan

import (
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// While the config key holds a setting pgnoded refuses (standby_cluster,
// synchronous_mode, ...), no decision takes leadership or promotes; a running
// primary keeps running and everything else is decided as usual.
func TestDecideRefusedConfig(t *testing.T) {
	refused := func(o *Observation) {
		o.RefusedConfig = []cluster.KeyIssue{{Key: "standby_cluster", Msg: "pgnoded does not support standby clusters (remove it)"}}
	}
	behind := peers(peer("pg3", 900))
	leaderReplica := func(o *Observation) {
		iLead(o)
		o.PG.InRecovery = true
	}
	leaderDown := func(o *Observation) {
		iLead(o)
		pgDown("in production")(o)
	}
	empty := func(o *Observation) {
		o.Data = DataDir{Empty: true}
		o.PG = cluster.PGObservation{State: cluster.StateStopped}
		o.View = cluster.View{Members: map[string]cluster.Member{}, ReadAt: t0}
	}
	held := want{action: ActionWait, reason: "config_refused", msg: "settings pgnoded refuses (standby_cluster)"}
	runDecideCases(t, []decideCase{
		// Without the refusal these would take leadership ...
		{"baseline: the healthiest replica acquires", newObs(noLeader, behind), want{action: ActionAcquire}},
		{"baseline: a replica asks peers before racing", newObs(noLeader), want{action: ActionAskPeers, ask: []string{"pg3"}}},
		{"baseline: a leader replica promotes", newObs(leaderReplica), want{action: ActionPromote}},
		{"baseline: an empty cluster bootstraps", newObs(empty), want{action: ActionBootstrap}},
		// ... with it they hold still.
		{"no race for the leader key", newObs(noLeader, behind, refused), held},
		{"no asking peers for a race it will not run", newObs(noLeader, refused), held},
		{"alone: still no acquire", newObs(noLeader, dropMember("pg3"), refused), held},
		{"a leader key holder in recovery does not promote", newObs(leaderReplica, refused), held},
		{"no bootstrap of a new cluster", newObs(empty, refused), held},
		{"a manual failover candidate does not take the key",
			newObs(noLeader, behind, failover("", "pg1", ""), refused), held},
		// Everything that takes no leadership is unchanged.
		{"a running primary keeps its key", newObs(iLead, refused), want{action: ActionUpdateLock}},
		{"a leader's crashed postmaster restarts in place", newObs(leaderDown, refused), want{action: ActionRestartInPlace}},
		{"a replica keeps following the leader", newObs(refused), want{action: ActionNone}},
		{"a stopped replica starts following", newObs(pgDown("shut down in recovery"), refused),
			want{action: ActionStartReplica, member: "pg2"}},
		{"fencing still demotes a primary whose lease runs out", newObs(iLead, at(29e9), refused),
			want{action: ActionDemote, demote: DemoteOffline}},
	})
}
