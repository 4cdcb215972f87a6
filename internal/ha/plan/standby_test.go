package plan

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// standby makes the config a standby cluster following 10.9.0.1:5432.
func standby(o *Observation) {
	o.Config.StandbyCluster = &cluster.StandbyCluster{Host: "10.9.0.1", Port: 5432, RestoreCommand: "cp /a/%f %p"}
}

// iStandbyLead makes pg1 the key holder running in recovery, streaming from the remote primary.
func iStandbyLead(o *Observation) {
	standby(o)
	o.View.Leader = &cluster.LeaderKey{Name: "pg1"}
	o.Upstream = Upstream{Known: true, Name: RemotePrimary, ConnURL: "10.9.0.1:5432"}
	setMember("pg1", func(m *cluster.Member) { m.Role = "standby_leader" })(o)
	setMember("pg2", func(m *cluster.Member) { m.Role = "replica" })(o)
}

func TestStandbyClusterActive(t *testing.T) {
	for _, c := range []struct {
		sc   *cluster.StandbyCluster
		want bool
	}{
		{nil, false}, {&cluster.StandbyCluster{}, false}, {&cluster.StandbyCluster{PrimarySlotName: "x"}, false},
		{&cluster.StandbyCluster{Host: "h"}, true}, {&cluster.StandbyCluster{Port: 5432}, true},
		{&cluster.StandbyCluster{RestoreCommand: "cp"}, true},
	} {
		if got := c.sc.Active(); got != c.want {
			t.Errorf("%+v: Active = %v, want %v", c.sc, got, c.want)
		}
	}
	c, err := cluster.FromMap(map[string]any{"standby_cluster": map[string]any{"host": "a,b", "port": "5433",
		"primary_slot_name": "dr", "recovery_min_apply_delay": 300000.0, "create_replica_methods": []any{"basebackup"}}})
	if err != nil || !c.StandbyCluster.Active() || c.StandbyCluster.Port != 5433 || !c.StandbyCluster.MultiHost() ||
		c.StandbyCluster.RecoveryMinApplyDelay != "300000" || c.StandbyCluster.Addr() != "a,b:5433" {
		t.Fatalf("parsed %+v, %v", c.StandbyCluster, err)
	}
	if _, err := cluster.FromMap(map[string]any{"standby_cluster": map[string]any{"port": "x"}}); err == nil {
		t.Fatal("a bad port parses")
	}
}

func TestDecideStandbyCluster(t *testing.T) {
	runDecideCases(t, []decideCase{
		// The standby leader.
		{"standby leader streaming from the remote primary keeps the lock", newObs(iStandbyLead),
			want{action: ActionUpdateLock, msg: "no action. I am (pg1), the standby leader with the lock", reason: "standby_leader"}},
		{"a key holder in recovery is pointed at the remote primary, never promoted",
			newObs(iStandbyLead, func(o *Observation) { o.Upstream = Upstream{Known: true, Name: "pg2"} }),
			want{action: ActionFollow, member: RemotePrimary, msg: "promoted self to a standby leader because i had the session lock"}},
		{"a changed remote address is followed again",
			newObs(iStandbyLead, func(o *Observation) { o.Config.StandbyCluster.Host = "10.9.0.2" }),
			want{action: ActionFollow, member: RemotePrimary, msg: "10.9.0.2:5432"}},
		{"an unreachable remote primary is reported and the lock kept",
			newObs(iStandbyLead, at(time.Second), func(o *Observation) { o.PG.Streaming, o.NotStreamingSince = false, t0.Add(-time.Minute) }),
			want{action: ActionUpdateLock, reason: "remote_not_streaming", msg: "not streaming from the remote primary 10.9.0.1:5432"}},
		{"a primary holding the key in a standby cluster is demoted into the standby leader",
			newObs(iLead, standby),
			want{action: ActionDemote, demote: DemoteCluster, stop: cluster.StopFast, member: RemotePrimary, reason: "demote_cluster"}},
		{"removing standby_cluster promotes the standby leader",
			newObs(iStandbyLead, func(o *Observation) { o.Config.StandbyCluster = nil }),
			want{action: ActionPromote, reason: "have_lock"}},
		{"an inactive section (no host, port or restore_command) promotes too",
			newObs(iStandbyLead, func(o *Observation) { o.Config.StandbyCluster = &cluster.StandbyCluster{PrimarySlotName: "x"} }),
			want{action: ActionPromote}},
		{"a switchover to a cascading replica hands the key over",
			newObs(iStandbyLead, failover("pg1", "pg2", ""), func(o *Observation) {
				o.PG.Replication = []cluster.ReplicationRow{{ApplicationName: "pg2", State: "streaming", ReplayLSN: 1000}}
			}),
			want{action: ActionDemote, demote: DemoteImmediate, stop: cluster.StopImmediate, member: "pg2", reason: "switchover"}},
		{"an impossible switchover is cleared by the standby leader", newObs(iStandbyLead, failover("pg1", "pg9", "")),
			want{action: ActionUpdateLock, clear: true, reason: "failover_impossible"}},
		{"paused standby leader keeps the lock", newObs(iStandbyLead, paused),
			want{action: ActionUpdateLock, reason: "paused", msg: "PAUSE: no action. I am (pg1), the standby leader"}},

		// Failover inside the standby cluster.
		{"the healthiest replica takes the key as a standby leader",
			newObs(standby, leader(""), peers(peer("pg2", 900), peer("pg3", 900))),
			want{action: ActionAcquire, reason: "healthiest", msg: "promoted self to a standby leader by acquiring session lock"}},
		{"a replica behind a peer does not race", newObs(standby, leader(""), peers(peer("pg2", 2000))),
			want{action: ActionNone, reason: "peer_ahead"}},

		// Postgres down.
		{"the key holder whose postgres died restarts following the remote primary",
			newObs(iStandbyLead, pgDown("stopped")),
			want{action: ActionStartReplica, member: RemotePrimary, msg: "starting as a standby leader because i had the session lock"}},
		{"a key holder whose data was a primary restarts as the standby leader too",
			newObs(iStandbyLead, pgDown("stopped"), func(o *Observation) { o.Data.Control.ClusterState = "shut down" }),
			want{action: ActionStartReplica, member: RemotePrimary, reason: "resume_demote_cluster"}},
		{"without a leader a stopped replica follows the remote primary",
			newObs(standby, leader(""), pgDown("stopped")),
			want{action: ActionStartReplica, member: RemotePrimary, msg: "standby cluster is unhealthy"}},
		{"a replica of the standby leader starts following it",
			newObs(standby, pgDown("stopped"), setMember("pg2", func(m *cluster.Member) { m.Role = "standby_leader" })),
			want{action: ActionStartReplica, member: "pg2"}},

		// Bootstrap and adoption.
		{"the first node of a standby cluster clones the remote primary",
			newObs(standby, leader(""), func(o *Observation) {
				o.View.Initialize, o.View.Members = nil, nil
				o.PG = cluster.PGObservation{}
				o.Data = DataDir{Empty: true}
			}),
			want{action: ActionBootstrap, member: RemotePrimary, reason: "bootstrap_standby_leader", msg: "10.9.0.1:5432"}},
		{"a running standby without initialize key adopts its data in a standby cluster",
			newObs(standby, leader(""), func(o *Observation) { o.View.Initialize = nil }),
			want{action: ActionClaimInitialize, reason: "adopt_data_dir"}},
		{"the same replica outside a standby cluster is refused",
			newObs(leader(""), func(o *Observation) { o.View.Initialize = nil }),
			want{action: ActionFatal, reason: "no_initialize_replica"}},

		// A refused standby_cluster section is not acted on.
		{"a primary holds still while its standby_cluster section is refused",
			newObs(iLead, standby, func(o *Observation) {
				o.RefusedConfig = []cluster.KeyIssue{{Key: "standby_cluster.create_replica_methods", Msg: "pgnoded does not support …"}}
			}),
			want{action: ActionUpdateLock, reason: "leader"}},

		// Followers are unchanged.
		{"a replica follows the standby leader like any leader",
			newObs(standby, setMember("pg2", func(m *cluster.Member) { m.Role = "standby_leader" })),
			want{action: ActionNone, reason: "follower"}},
	})
}

func TestStandbyClusterNoPrePromoteNoSync(t *testing.T) {
	o := newObs(standby, leader(""), peers(peer("pg2", 900), peer("pg3", 900)), func(o *Observation) {
		o.HasPrePromote = true
		o.Config.SynchronousMode = true
		o.View.Sync = &cluster.SyncState{Leader: "pg2", SyncStandby: str("pg3")}
	})
	if o.SyncActive() {
		t.Fatal("synchronous mode is active in a standby cluster")
	}
	d := Decide(o)
	if d.Action != ActionAcquire || d.PrePromote {
		t.Fatalf("decision %v pre_promote %v, want acquire without pre_promote", d.Action, d.PrePromote)
	}
}

// TestUpstreamError follows what /patroni's pgnoded_upstream_error shows
// through a standby leader losing the remote primary and getting it back.
func TestUpstreamError(t *testing.T) {
	broken := func(o *Observation) { o.PG.Streaming, o.NotStreamingSince = false, t0.Add(-time.Minute) }
	const why = "not streaming from the remote primary 10.9.0.1:5432 (unreachable or refusing replication; retrying, restore_command in use)"
	steps := []struct {
		name string
		o    Observation
		want string
	}{
		{"streaming: nothing to report", newObs(iStandbyLead), ""},
		{"not streaming for a moment: not yet", newObs(iStandbyLead, func(o *Observation) { o.PG.Streaming, o.NotStreamingSince = false, t0 }), ""},
		{"not streaming past the grace: the reason with host:port", newObs(iStandbyLead, at(time.Second), broken), why},
		{"paused: the reason stands", newObs(iStandbyLead, at(time.Second), broken, paused), why},
		{"postgres restarting: the reason stands", newObs(iStandbyLead, func(o *Observation) { o.PG.Running = false }), why},
		{"streaming again: cleared", newObs(iStandbyLead), ""},
		{"broken again", newObs(iStandbyLead, at(time.Second), broken), why},
		{"another member took the key: cleared", newObs(iStandbyLead, func(o *Observation) {
			o.View.Leader = &cluster.LeaderKey{Name: "pg2"}
		}), ""},
		{"broken again", newObs(iStandbyLead, at(time.Second), broken), why},
		{"standby_cluster removed: cleared", newObs(iStandbyLead, func(o *Observation) { o.Config.StandbyCluster = nil }), ""},
	}
	prev := ""
	for _, s := range steps {
		d := Decide(s.o)
		got := UpstreamError(prev, s.o, d)
		if got != s.want {
			t.Fatalf("%s: got %q, want %q (decision %s %q)", s.name, got, s.want, d.Action, d.Message)
		}
		prev = got
	}
	// A failed clone's error (set by the loop) stands while the bootstrap retries without a key.
	cloneErr := "standby leader bootstrap from the remote primary 10.9.0.1:5432: create replica: connection refused"
	o := newObs(standby, func(o *Observation) { o.View.Leader = nil })
	if got := UpstreamError(cloneErr, o, Decide(o)); got != cloneErr {
		t.Errorf("a failed clone's error was dropped while retrying: %q", got)
	}
}

// A primary demoted into the standby leader rewinds from the remote primary
// first when pg_rewind is usable (the remote may be our promoted former
// standby cluster), and follows it without when it is not.
func TestDecideDemoteClusterRewindsFromRemote(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Observation)
		want bool
	}{
		{"use_pg_rewind on", func(o *Observation) { o.UsePgRewind = true }, true},
		{"use_pg_rewind off", func(o *Observation) { o.UsePgRewind = false }, false},
		{"no wal_log_hints nor checksums", func(o *Observation) {
			o.UsePgRewind = true
			o.Data.Control = &cluster.ControlData{ClusterState: "in production"}
		}, false},
		{"a failed rewind", func(o *Observation) { o.UsePgRewind, o.RewindFailed = true, true }, false},
		{"restore_command only: no server to rewind from", func(o *Observation) {
			o.UsePgRewind = true
			o.Config.StandbyCluster = &cluster.StandbyCluster{RestoreCommand: "cp /a/%f %p"}
		}, false},
	} {
		d := Decide(newObs(iLead, standby, c.mod))
		if d.Action != ActionDemote || d.Demote != DemoteCluster || d.RewindRemote != c.want {
			t.Errorf("%s: %s %s RewindRemote=%v, want demote-cluster with RewindRemote=%v", c.name, d.Action, d.Demote, d.RewindRemote, c.want)
		}
	}
}

// demote-cluster's archive and pg_rewind are read from pg_control, not
// remembered: a node about to follow the remote primary on a data directory
// a primary shut down cleanly (pgnoded restarted between demote-cluster's stop
// and its start) still archives its shutdown checkpoint and rewinds; any other
// data directory does neither (resumeDemoteCluster).
func TestDecideStandbyResumesDemoteCluster(t *testing.T) {
	shutDown := func(state string) fx {
		return func(o *Observation) { pgDown(state)(o); o.UsePgRewind = true }
	}
	for _, c := range []struct {
		name            string
		obs             Observation
		member          string
		archive, rewind bool
	}{
		{"the key holder on a primary's clean shutdown archives and rewinds",
			newObs(iStandbyLead, shutDown("shut down")), RemotePrimary, true, true},
		{"without use_pg_rewind it archives only",
			newObs(iStandbyLead, shutDown("shut down"), func(o *Observation) { o.UsePgRewind = false }), RemotePrimary, true, false},
		{"without wal_log_hints nor checksums it archives only",
			newObs(iStandbyLead, shutDown("shut down"), func(o *Observation) { o.Data.Control.WALLogHints = false }),
			RemotePrimary, true, false},
		{"after a failed pg_rewind it archives only",
			newObs(iStandbyLead, shutDown("shut down"), func(o *Observation) { o.RewindFailed = true }), RemotePrimary, true, false},
		{"restore_command only: no server to rewind from",
			newObs(iStandbyLead, shutDown("shut down"), func(o *Observation) {
				o.Config.StandbyCluster = &cluster.StandbyCluster{RestoreCommand: "cp /a/%f %p"}
			}), RemotePrimary, true, false},
		{"no leader: a member following the remote primary does the same",
			newObs(standby, leader(""), shutDown("shut down")), RemotePrimary, true, true},
		{"a replica's shutdown: nothing to resume",
			newObs(iStandbyLead, shutDown("shut down in recovery")), RemotePrimary, false, false},
		{"after pg_rewind (in archive recovery): not repeated",
			newObs(iStandbyLead, shutDown("in archive recovery")), RemotePrimary, false, false},
		{"a crashed primary (in production): not judged from pg_control",
			newObs(iStandbyLead, shutDown("in production")), RemotePrimary, false, false},
		{"a member following the standby leader: not the remote's divergence",
			newObs(standby, shutDown("shut down"), setMember("pg2", func(m *cluster.Member) { m.Role = "standby_leader" })),
			"pg2", false, false},
	} {
		d := Decide(c.obs)
		if d.Action != ActionStartReplica || d.Member != c.member || d.ArchiveShutdown != c.archive || d.RewindRemote != c.rewind {
			t.Errorf("%s: %s member %q ArchiveShutdown=%v RewindRemote=%v (%s), want start following %q with %v/%v",
				c.name, d.Action, d.Member, d.ArchiveShutdown, d.RewindRemote, d.Message, c.member, c.archive, c.rewind)
		}
	}
	// demote-cluster itself always asks for the archive (the node archives only when archive_command is set).
	if d := Decide(newObs(iLead, standby)); d.Demote != DemoteCluster || !d.ArchiveShutdown {
		t.Errorf("demote-cluster: %s %s ArchiveShutdown=%v, want demote-cluster archiving", d.Action, d.Demote, d.ArchiveShutdown)
	}
}
