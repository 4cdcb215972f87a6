package plan

import (
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// noLeader is the leader race from pg1's point of view: the leader key and the
// old leader's member key (same lease) are gone; pg3 is the other replica.
func noLeader(o *Observation) {
	o.View.Leader = nil
	delete(o.View.Members, "pg2")
}

func TestDecideLeaderRace(t *testing.T) {
	behind := peers(peer("pg3", 900))
	syncOn := func(o *Observation) {
		o.Config.SynchronousMode = true
		o.View.Sync = &cluster.SyncState{Leader: "pg2", SyncStandby: str("pg3")}
	}
	runDecideCases(t, []decideCase{
		{"healthy replica asks the peers before racing", newObs(noLeader),
			want{action: ActionAskPeers, ask: []string{"pg3"}}},
		{"healthiest replica acquires the lock", newObs(noLeader, behind),
			want{action: ActionAcquire, msg: "promoted self to leader by acquiring session lock"}},
		{"alone in the cluster: acquire without asking anyone", newObs(noLeader, dropMember("pg3")),
			want{action: ActionAcquire}},
		{"replica lagging more than maximum_lag_on_failover does not race",
			newObs(noLeader, behind, func(o *Observation) { o.View.Status.Optime = 1000 + 2<<20 }),
			want{action: ActionNone, reason: "lagging"}},
		{"replica lagging less than maximum_lag_on_failover races",
			newObs(noLeader, behind, func(o *Observation) { o.View.Status.Optime = 1000 + 1<<20 }),
			want{action: ActionAcquire}},
		{"maximum_lag_on_failover compares max(received, replayed)",
			newObs(noLeader, behind, func(o *Observation) {
				o.View.Status.Optime = 5 << 20
				o.PG.ReceivedLSN = 5 << 20
			}), want{action: ActionAcquire}},
		{"nofailover replica does not race", newObs(noLeader, behind, tags(map[string]any{"nofailover": true})),
			want{action: ActionNone, reason: "nofailover"}},
		{"failover_priority 0 excludes from the race", newObs(noLeader, behind, tags(map[string]any{"failover_priority": 0})),
			want{action: ActionNone, reason: "nofailover"}},
		{"failover_priority 0 with nofailover explicitly false still races",
			newObs(noLeader, behind, tags(map[string]any{"failover_priority": "0", "nofailover": false})),
			want{action: ActionAcquire}},
		{"a peer that is still primary blocks the race",
			newObs(noLeader, peers(PeerStatus{Name: "pg3", Reachable: true, Role: "master", WALPosition: 10})),
			want{action: ActionNone, reason: "primary_alive", msg: "Primary (pg3) is still alive"}},
		{"a nofailover peer that is still primary blocks the race too",
			newObs(noLeader, peers(PeerStatus{Name: "pg3", Reachable: true, Role: "primary", NoFailover: true})),
			want{action: ActionNone, reason: "primary_alive"}},
		{"a peer ahead wins", newObs(noLeader, peers(peer("pg3", 1001))),
			want{action: ActionNone, reason: "peer_ahead"}},
		{"peer with equal WAL and higher failover_priority wins",
			newObs(noLeader, peers(PeerStatus{Name: "pg3", Reachable: true, Role: "replica", WALPosition: 1000, FailoverPriority: 2})),
			want{action: ActionNone, reason: "peer_priority"}},
		{"peer with equal WAL and lower failover_priority loses",
			newObs(noLeader, tags(map[string]any{"failover_priority": 3}),
				peers(PeerStatus{Name: "pg3", Reachable: true, Role: "replica", WALPosition: 1000, FailoverPriority: 2})),
			want{action: ActionAcquire}},
		{"peer with equal WAL and equal priority: both race and etcd decides", newObs(noLeader, peers(peer("pg3", 1000))),
			want{action: ActionAcquire}},
		{"an unreachable peer is ignored", newObs(noLeader, peers(PeerStatus{Name: "pg3", WALPosition: 5000})),
			want{action: ActionAcquire}},
		{"a nofailover peer ahead is ignored",
			newObs(noLeader, peers(PeerStatus{Name: "pg3", Reachable: true, Role: "replica", WALPosition: 5000, NoFailover: true})),
			want{action: ActionAcquire}},
		{"a peer whose watchdog failed is ignored",
			newObs(noLeader, peers(PeerStatus{Name: "pg3", Reachable: true, Role: "replica", WALPosition: 5000, WatchdogFailed: true})),
			want{action: ActionAcquire}},
		{"check_timeline: a replica on an older timeline does not race",
			newObs(noLeader, behind, cfg(func(c *cluster.DynamicConfig) { c.CheckTimeline = true }),
				history(cluster.HistoryEntry{Timeline: 1, LSN: 500})),
			want{action: ActionNone, reason: "timeline"}},
		{"check_timeline off: an older timeline does not stop the race",
			newObs(noLeader, behind, history(cluster.HistoryEntry{Timeline: 1, LSN: 500})),
			want{action: ActionAcquire}},
		{"absent from a non-empty failsafe key: no race",
			newObs(noLeader, behind, cfg(func(c *cluster.DynamicConfig) { c.FailsafeMode = true }),
				func(o *Observation) { o.View.Failsafe = map[string]string{"pg2": "u2", "pg3": "u3"} }),
			want{action: ActionNone, reason: "failsafe_absent"}},
		{"listed in the failsafe key: the failsafe-only member is asked too",
			newObs(noLeader, cfg(func(c *cluster.DynamicConfig) { c.FailsafeMode = true }),
				func(o *Observation) {
					o.View.Failsafe = map[string]string{"pg1": "u1", "pg3": "u3", "pg4": "http://pg4/patroni"}
				}),
			want{action: ActionAskPeers, ask: []string{"pg3", "pg4"}}},
		{"failsafe key is ignored when failsafe_mode is off",
			newObs(noLeader, behind, func(o *Observation) { o.View.Failsafe = map[string]string{"pg2": "u2"} }),
			want{action: ActionAcquire}},
		{"released the key less than ttl ago: no race",
			newObs(noLeader, behind, func(o *Observation) { o.ReleasedLockAt = t0.Add(-5e9) }),
			want{action: ActionNone, reason: "released_recently"}},
		{"released the key more than ttl ago: race",
			newObs(noLeader, behind, func(o *Observation) { o.ReleasedLockAt = t0.Add(-31e9) }),
			want{action: ActionAcquire}},
		{"fence guard unavailable: no race", newObs(noLeader, behind, func(o *Observation) { o.FenceFailed = true }),
			want{action: ActionNone, reason: "fence_failed"}},
		{"postgres not ready: no race", newObs(noLeader, behind, func(o *Observation) { o.PG.Ready = false }),
			want{action: ActionWait, reason: "pg_not_ready"}},
		{"a running primary without a leader takes the lock without asking", newObs(noLeader, primary),
			want{action: ActionAcquire, msg: "acquired session lock as a leader"}},
		{"a stale primary on an older timeline demotes instead of racing",
			newObs(noLeader, primary, history(cluster.HistoryEntry{Timeline: 1, LSN: 500})),
			want{action: ActionDemote, demote: DemoteImmediateNoLock, reason: "stale_primary"}},
		{"sync mode: a non-sync standby does not race", newObs(noLeader, behind, syncOn),
			want{action: ActionNone, reason: "not_sync"}},
		{"sync mode: the sync standby ignores non-sync peers ahead",
			newObs(noLeader, syncOn, func(o *Observation) { o.View.Sync.SyncStandby = str("pg1") },
				peers(peer("pg3", 5000))),
			want{action: ActionAcquire}},
		{"paused: a replica does not race", newObs(noLeader, behind, paused),
			want{action: ActionNone, reason: "paused"}},
		{"paused: a running primary takes the free key", newObs(noLeader, primary, paused),
			want{action: ActionAcquire, msg: "PAUSE: acquired session lock"}},
	})
}

func TestDecideManualFailoverWithoutLeader(t *testing.T) {
	runDecideCases(t, []decideCase{
		{"failover candidate is me: acquire without asking", newObs(noLeader, failover("pg2", "pg1", "")),
			want{action: ActionAcquire, msg: "manual failover"}},
		{"candidate set: ask peers about it first", newObs(noLeader, failover("pg2", "pg3", "")),
			want{action: ActionAskPeers, ask: []string{"pg3"}}},
		{"candidate set and healthy: others wait for it", newObs(noLeader, failover("pg2", "pg3", ""), peers(peer("pg3", 10))),
			want{action: ActionNone, reason: "failover_candidate"}},
		{"candidate unreachable: race without the lag check",
			newObs(noLeader, failover("pg2", "pg3", ""), peers(PeerStatus{Name: "pg3"}),
				func(o *Observation) { o.View.Status.Optime = 50 << 20 }),
			want{action: ActionAcquire}},
		{"former leader asked to be replaced: wait while another healthy candidate exists",
			newObs(noLeader, failover("pg1", "", ""), peers(peer("pg3", 10))),
			want{action: ActionNone, reason: "failover_from_me"}},
		{"former leader alone: takes the key back",
			newObs(noLeader, failover("pg1", "", ""), peers(PeerStatus{Name: "pg3"})),
			want{action: ActionAcquire, reason: "failover_no_candidate"}},
		{"the former leader's answer is ignored in a manual race",
			newObs(noLeader, failover("pg3", "", ""), func(o *Observation) {
				o.View.Members["pg4"] = cluster.Member{APIURL: "http://pg4/patroni", State: "running", Role: "replica"}
			}, peers(PeerStatus{Name: "pg3", Reachable: true, Role: "master", WALPosition: 9999}, peer("pg4", 10))),
			want{action: ActionAcquire}},
		{"a manual race does not ask the former leader", newObs(noLeader, failover("pg3", "", "")),
			want{action: ActionAcquire}},
		{"nofailover node ignores the failover key",
			newObs(noLeader, failover("pg2", "", ""), tags(map[string]any{"nofailover": true})),
			want{action: ActionNone, reason: "nofailover"}},
	})
}
