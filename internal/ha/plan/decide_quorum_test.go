package plan

import (
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// TestDecideQuorumRace: pg1 (WAL 1000) races after the leader pg2 died with
// the sync key {pg2; voters pg1,pg3,pg4; quorum q}: it needs q+1 votes of
// pg2, pg1, pg3, pg4 — itself when listed and every listed peer at or below it.
func TestDecideQuorumRace(t *testing.T) {
	quorum := func(q int, voters ...string) fx {
		return func(o *Observation) {
			o.Config.SynchronousMode, o.Config.SynchronousQuorum = true, true
			k := QuorumKey("pg2", voters, q)
			o.View.Sync = &k
			o.View.Members["pg4"] = cluster.Member{Name: "pg4", Role: "replica", State: "running", APIURL: "http://pg4:8008/patroni"}
		}
	}
	gone := PeerStatus{Name: "pg4"} // unreachable
	runDecideCases(t, []decideCase{
		{"quorum 1: one listed peer behind is enough",
			newObs(noLeader, quorum(1, "pg1", "pg3", "pg4"), peers(peer("pg3", 900), gone)),
			want{action: ActionAcquire}},
		{"quorum 1: the listed peers are gone: no promotion",
			newObs(noLeader, quorum(1, "pg1", "pg3", "pg4"), peers(PeerStatus{Name: "pg3"}, gone)),
			want{action: ActionNone, reason: "quorum_votes"}},
		{"quorum 2: two listed peers needed",
			newObs(noLeader, quorum(2, "pg1", "pg3", "pg4"), peers(peer("pg3", 900), gone)),
			want{action: ActionNone, reason: "quorum_votes", msg: "2 of the 3 votes needed"}},
		{"quorum 2 reached",
			newObs(noLeader, quorum(2, "pg1", "pg3", "pg4"), peers(peer("pg3", 900), peer("pg4", 1000))),
			want{action: ActionAcquire}},
		{"a peer ahead still wins", newObs(noLeader, quorum(1, "pg1", "pg3", "pg4"), peers(peer("pg3", 1001), peer("pg4", 10))),
			want{action: ActionNone, reason: "peer_ahead"}},
		{"a voter whose postgres is down (position 0) gives no vote",
			newObs(noLeader, quorum(1, "pg1", "pg3", "pg4"), peers(peer("pg3", 0), gone)),
			want{action: ActionNone, reason: "quorum_votes"}},
		{"not a voter: may race, but needs quorum+1 votes of others",
			newObs(noLeader, quorum(1, "pg3", "pg4"), peers(peer("pg3", 900), gone)),
			want{action: ActionNone, reason: "quorum_votes", msg: "1 of the 2 votes needed"}},
		{"not a voter with quorum+1 votes of others",
			newObs(noLeader, quorum(1, "pg3", "pg4"), peers(peer("pg3", 900), peer("pg4", 900))),
			want{action: ActionAcquire}},
		{"no voters (quorum 0): only the former leader's vote counts",
			newObs(noLeader, quorum(0), peers(peer("pg3", 900), peer("pg4", 900))),
			want{action: ActionNone, reason: "quorum_votes"}},
		{"a nofailover voter gives no vote (the contract ignores its answer)",
			newObs(noLeader, quorum(1, "pg1", "pg3", "pg4"),
				peers(PeerStatus{Name: "pg3", Reachable: true, Role: "replica", WALPosition: 900, NoFailover: true}, gone)),
			want{action: ActionNone, reason: "quorum_votes"}},
		{"the mode switched back to on with a quorum key: votes still needed",
			newObs(noLeader, quorum(1, "pg1", "pg3", "pg4"), cfg(func(c *cluster.DynamicConfig) { c.SynchronousQuorum = false }),
				peers(PeerStatus{Name: "pg3"}, gone)),
			want{action: ActionNone, reason: "quorum_votes"}},
		{"synchronous_mode on (quorum 0) needs no votes",
			newObs(noLeader, quorum(0, "pg1"), cfg(func(c *cluster.DynamicConfig) { c.SynchronousQuorum = false }),
				peers(PeerStatus{Name: "pg3"}, gone)),
			want{action: ActionAcquire}},
		{"the former leader needs no votes when nobody is ahead",
			newObs(noLeader, quorum(2, "pg3", "pg4"), func(o *Observation) { o.View.Sync.Leader = "pg1" },
				peers(PeerStatus{Name: "pg3"}, gone)),
			want{action: ActionAcquire}},
	})
}
