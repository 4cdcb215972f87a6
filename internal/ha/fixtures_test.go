package ha

import (
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Fixtures for the tests of the loop that need an Observation: a copy of the
// Decide table tests' fixtures (internal/ha/plan/decide_fixtures_test.go). The default observation is a healthy
// 3-node cluster seen from pg1, a streaming replica of the leader pg2 (pg3 is
// another replica); every case changes only what its rule is about.

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testSysID = "7301234567890123456"

func i64(v int64) *int64   { return &v }
func str(s string) *string { return &s }

func defaultMembers() map[string]cluster.Member {
	return map[string]cluster.Member{
		"pg1": {ConnURL: "postgres://10.0.0.1:5432/postgres", APIURL: "http://10.0.0.1:8008/patroni",
			State: "running", Role: "replica", XLogLocation: i64(1000), Timeline: 1},
		"pg2": {ConnURL: "postgres://10.0.0.2:5432/postgres", APIURL: "http://10.0.0.2:8008/patroni",
			State: "running", Role: "master", XLogLocation: i64(1000), Timeline: 1},
		"pg3": {ConnURL: "postgres://10.0.0.3:5432/postgres", APIURL: "http://10.0.0.3:8008/patroni",
			State: "running", Role: "replica", XLogLocation: i64(1000), Timeline: 1},
	}
}

type fx func(*plan.Observation)

func newObs(mods ...fx) plan.Observation {
	cfg := cluster.DefaultDynamicConfig()
	o := plan.Observation{
		Now: t0, Name: "pg1", Tags: plan.ParseTags(nil), Config: cfg, HasBootstrapConfig: true,
		View: cluster.View{
			Leader: &cluster.LeaderKey{Name: "pg2"}, Members: defaultMembers(), Initialize: str(testSysID),
			Status: &cluster.StatusKey{Optime: 1000}, ReadAt: t0,
		},
		DCSOK: true, LeaseValidUntil: t0.Add(30 * time.Second),
		PG: cluster.PGObservation{State: cluster.StateRunning, Running: true, Ready: true, InRecovery: true,
			Timeline: 1, ReceivedLSN: 1000, ReplayedLSN: 1000, Streaming: true, SystemID: testSysID},
		Data: plan.DataDir{Control: &cluster.ControlData{SystemID: testSysID, ClusterState: "in archive recovery",
			TimelineID: 1, CheckpointLSN: 900, WALLogHints: true}},
		Upstream: plan.Upstream{Known: true, Name: "pg2", ConnURL: "postgres://10.0.0.2:5432/postgres"},
	}
	for _, m := range mods {
		m(&o)
	}
	return o
}

func leader(name string) fx {
	return func(o *plan.Observation) {
		if name == "" {
			o.View.Leader = nil
			return
		}
		o.View.Leader = &cluster.LeaderKey{Name: name}
	}
}

// iLead makes pg1 the leader running as a primary, pg2 and pg3 replicas streaming from it.
func iLead(o *plan.Observation) {
	o.View.Leader = &cluster.LeaderKey{Name: "pg1"}
	primary(o)
	o.PG.Replication = []cluster.ReplicationRow{
		{ApplicationName: "pg2", State: "streaming", FlushLSN: 1000},
		{ApplicationName: "pg3", State: "streaming", FlushLSN: 1000},
	}
	setMember("pg1", func(m *cluster.Member) { m.Role = "master" })(o)
	setMember("pg2", func(m *cluster.Member) { m.Role = "replica" })(o)
}

func primary(o *plan.Observation) {
	o.PG.InRecovery, o.PG.Streaming = false, false
	o.PG.CurrentLSN, o.PG.ReceivedLSN, o.PG.ReplayedLSN = 1000, 0, 0
	o.Data.Control.ClusterState = "in production"
}

func pgDown(state string) fx {
	return func(o *plan.Observation) {
		o.PG = cluster.PGObservation{State: cluster.StateStopped}
		o.Data.Control.ClusterState = state
		o.PGDownSince = o.Now
	}
}

func setMember(name string, mods ...func(*cluster.Member)) fx {
	return func(o *plan.Observation) {
		m := o.View.Members[name]
		for _, f := range mods {
			f(&m)
		}
		o.View.Members[name] = m
	}
}

func memberTags(name string, t map[string]any) fx {
	return setMember(name, func(m *cluster.Member) { m.Tags = t })
}

func cfg(f func(*cluster.DynamicConfig)) fx { return func(o *plan.Observation) { f(&o.Config) } }
func peer(name string, wal cluster.LSN) PeerStatus {
	return PeerStatus{Name: name, Reachable: true, Role: "replica", WALPosition: wal, Timeline: 1, FailoverPriority: 1}
}
