package exporter

import (
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var haNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func fixedSnapshot() *cluster.Snapshot {
	return &cluster.Snapshot{
		Name:           "pg-test-1",
		Scope:          "pg-test",
		Role:           cluster.RolePrimary,
		LeaderUntil:    haNow.Add(27500 * time.Millisecond),
		View:           cluster.View{ReadAt: haNow.Add(-1500 * time.Millisecond)},
		VIPBound:       true,
		FailsafeActive: false,
		Counters: cluster.Counters{
			Failovers: 2, Switchovers: 3, Promotions: 5, Demotions: 4, LeaseRenewFails: 1, VIPFailures: 2,
			PeerErrors: map[string]uint64{"unauthorized": 7, "connect": 1},
			LastFailover: cluster.FailoverTiming{
				Detection: 12 * time.Second, Promotion: 1500 * time.Millisecond, VIPMove: 250 * time.Millisecond,
			},
			CallbackRuns: map[cluster.HookRun]uint64{
				{Callback: "on_role_change", Exit: "0"}: 2, {Callback: "on_start", Exit: "killed"}: 1,
				{Callback: "pre_promote", Exit: "1"}: 1,
			},
		},
	}
}

const haGolden = `
# HELP pgnoded_callback_runs_total Runs of postgresql.callbacks, pre_promote and before_stop by callback and exit (an exit status, killed or error).
# TYPE pgnoded_callback_runs_total counter
pgnoded_callback_runs_total{callback="on_role_change",exit="0"} 2
pgnoded_callback_runs_total{callback="on_start",exit="killed"} 1
pgnoded_callback_runs_total{callback="pre_promote",exit="1"} 1
# HELP pgnoded_dcs_last_seen_timestamp_seconds Unix time of the last successful read of the DCS; 0 if never.
# TYPE pgnoded_dcs_last_seen_timestamp_seconds gauge
pgnoded_dcs_last_seen_timestamp_seconds 1.7776367985e+09
# HELP pgnoded_demotions_total Demotions of the local postgres.
# TYPE pgnoded_demotions_total counter
pgnoded_demotions_total 4
# HELP pgnoded_failovers_total Failovers this node won (unplanned promotions after the leader key expired).
# TYPE pgnoded_failovers_total counter
pgnoded_failovers_total 2
# HELP pgnoded_failsafe_active Whether failsafe mode keeps this node primary without the DCS (1) or not (0).
# TYPE pgnoded_failsafe_active gauge
pgnoded_failsafe_active 0
# HELP pgnoded_last_failover_seconds Duration of the phases of the last failover this node won.
# TYPE pgnoded_last_failover_seconds gauge
pgnoded_last_failover_seconds{phase="detection"} 12
pgnoded_last_failover_seconds{phase="promotion"} 1.5
pgnoded_last_failover_seconds{phase="vip"} 0.25
# HELP pgnoded_leader Whether this node holds the leader key (1) or not (0).
# TYPE pgnoded_leader gauge
pgnoded_leader 1
# HELP pgnoded_lease_remaining_seconds Seconds until this node's hold on the leader key expires unless renewed; 0 when not the leader.
# TYPE pgnoded_lease_remaining_seconds gauge
pgnoded_lease_remaining_seconds 27.5
# HELP pgnoded_lease_renew_failures_total Failed renewals of the leader key.
# TYPE pgnoded_lease_renew_failures_total counter
pgnoded_lease_renew_failures_total 1
# HELP pgnoded_peer_errors_total Failed requests to other members' REST APIs (leader race, failsafe), by reason.
# TYPE pgnoded_peer_errors_total counter
pgnoded_peer_errors_total{reason="bad_response"} 0
pgnoded_peer_errors_total{reason="connect"} 1
pgnoded_peer_errors_total{reason="forbidden"} 0
pgnoded_peer_errors_total{reason="timeout"} 0
pgnoded_peer_errors_total{reason="tls"} 0
pgnoded_peer_errors_total{reason="unauthorized"} 7
# HELP pgnoded_promotions_total Promotions of the local postgres.
# TYPE pgnoded_promotions_total counter
pgnoded_promotions_total 5
# HELP pgnoded_role The node's HA role: 1 for the current role, 0 for the others.
# TYPE pgnoded_role gauge
pgnoded_role{role="demoted"} 0
pgnoded_role{role="primary"} 1
pgnoded_role{role="promoted"} 0
pgnoded_role{role="replica"} 0
pgnoded_role{role="standby_leader"} 0
pgnoded_role{role="uninitialized"} 0
# HELP pgnoded_switchovers_total Planned switchovers this node took part in.
# TYPE pgnoded_switchovers_total counter
pgnoded_switchovers_total 3
# HELP pgnoded_sync_standbys Standbys the sync key lists while this node leads in synchronous mode (quorum standbys under synchronous_mode: quorum); 0 on the other members.
# TYPE pgnoded_sync_standbys gauge
pgnoded_sync_standbys 0
# HELP pgnoded_vip_bound Whether the VIP is bound on this node (1) or not (0).
# TYPE pgnoded_vip_bound gauge
pgnoded_vip_bound 1
# HELP pgnoded_vip_failures_total Failed attempts to bind or release the VIP (missing capability, no interface).
# TYPE pgnoded_vip_failures_total counter
pgnoded_vip_failures_total 2
`

func TestHAMetricsGolden(t *testing.T) {
	snap := fixedSnapshot()
	c := &haCollector{snap: func() *cluster.Snapshot { return snap }, now: func() time.Time { return haNow }}
	if err := testutil.CollectAndCompare(c, strings.NewReader(haGolden)); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}

func TestHAMetricsReplicaAndExpiredLease(t *testing.T) {
	snap := fixedSnapshot()
	snap.Role = cluster.RoleReplica
	snap.LeaderUntil = haNow.Add(-time.Second) // lapsed: not the leader any more
	snap.View.ReadAt = time.Time{}
	snap.VIPBound = false
	snap.FailsafeActive = true
	c := &haCollector{snap: func() *cluster.Snapshot { return snap }, now: func() time.Time { return haNow }}
	want := `
# HELP pgnoded_leader Whether this node holds the leader key (1) or not (0).
# TYPE pgnoded_leader gauge
pgnoded_leader 0
# HELP pgnoded_lease_remaining_seconds Seconds until this node's hold on the leader key expires unless renewed; 0 when not the leader.
# TYPE pgnoded_lease_remaining_seconds gauge
pgnoded_lease_remaining_seconds 0
# HELP pgnoded_dcs_last_seen_timestamp_seconds Unix time of the last successful read of the DCS; 0 if never.
# TYPE pgnoded_dcs_last_seen_timestamp_seconds gauge
pgnoded_dcs_last_seen_timestamp_seconds 0
# HELP pgnoded_failsafe_active Whether failsafe mode keeps this node primary without the DCS (1) or not (0).
# TYPE pgnoded_failsafe_active gauge
pgnoded_failsafe_active 1
# HELP pgnoded_role The node's HA role: 1 for the current role, 0 for the others.
# TYPE pgnoded_role gauge
pgnoded_role{role="demoted"} 0
pgnoded_role{role="primary"} 0
pgnoded_role{role="promoted"} 0
pgnoded_role{role="replica"} 1
pgnoded_role{role="standby_leader"} 0
pgnoded_role{role="uninitialized"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"pgnoded_leader", "pgnoded_lease_remaining_seconds", "pgnoded_dcs_last_seen_timestamp_seconds",
		"pgnoded_failsafe_active", "pgnoded_role"); err != nil {
		t.Fatal(err)
	}
}

func TestHAMetricsWithoutSnapshot(t *testing.T) {
	for name, c := range map[string]*haCollector{
		"nil func":     {now: time.Now},
		"nil snapshot": {snap: func() *cluster.Snapshot { return nil }, now: time.Now},
	} {
		if n := testutil.CollectAndCount(c); n != 0 {
			t.Errorf("%s: %d metrics before the first snapshot", name, n)
		}
	}
}

func TestHAMetricsConfigRefused(t *testing.T) {
	snap := fixedSnapshot()
	snap.ConfigRefused = []cluster.KeyIssue{{Key: "standby_cluster", Msg: "pgnoded does not support standby clusters (remove it)"}}
	c := &haCollector{snap: func() *cluster.Snapshot { return snap }, now: func() time.Time { return haNow }}
	want := `
# HELP pgnoded_config_refused 1 for each setting of the config key pgnoded refuses (docs/config-keys.md); while any is 1 the node takes no leadership.
# TYPE pgnoded_config_refused gauge
pgnoded_config_refused{key="standby_cluster"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "pgnoded_config_refused"); err != nil {
		t.Fatal(err)
	}
	snap.ConfigRefused = nil
	if n := testutil.CollectAndCount(c, "pgnoded_config_refused"); n != 0 {
		t.Fatalf("%d series without refused settings", n)
	}
}
