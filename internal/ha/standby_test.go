package ha

import (
	"context"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// Adding standby_cluster to a running cluster: refused with the reason under
// compat 3.0.2 (nothing written), accepted under 4.1.4 (the leader then
// demotes itself, plan.DemoteCluster); editing or removing an existing section
// is accepted under both.
func TestStandbyClusterConfigEdits(t *testing.T) {
	plain := `{"ttl":30}`
	standby := `{"ttl":30,"standby_cluster":{"host":"10.0.0.9","port":5432}}`
	cases := []struct {
		name   string
		compat cluster.Compat
		view   string
		patch  map[string]any
		kind   string
		writes int
		body   string
	}{
		{"3.0.2 refuses adding standby_cluster", cluster.Compat302, plain,
			map[string]any{"standby_cluster": map[string]any{"host": "10.0.0.9"}}, "bad request", 0,
			"standby_cluster: turning a running cluster into a standby cluster needs Patroni 4.1's demote-cluster"},
		{"3.0.2 refuses a section made active by restore_command", cluster.Compat302, plain,
			map[string]any{"standby_cluster": map[string]any{"restore_command": "cp /a/%f %p"}}, "bad request", 0, "compat 3.0.2"},
		{"3.0.2 accepts an inactive section", cluster.Compat302, plain,
			map[string]any{"standby_cluster": map[string]any{"primary_slot_name": "x"}}, "done", 1, `"primary_slot_name":"x"`},
		{"4.1.4 accepts adding standby_cluster", cluster.Compat4, plain,
			map[string]any{"standby_cluster": map[string]any{"host": "10.0.0.9"}}, "done", 1, `"host":"10.0.0.9"`},
		{"3.0.2 accepts changing the remote", cluster.Compat302, standby,
			map[string]any{"standby_cluster": map[string]any{"port": 5433}}, "done", 1, `"port":5433`},
		{"3.0.2 accepts removing standby_cluster (promotion)", cluster.Compat302, standby,
			map[string]any{"standby_cluster": nil}, "done", 1, `{"ttl":30}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &stubStore{view: configView(tc.view, 7), setOK: []bool{true}}
			n := New(Config{Name: "pg1", Scope: "s", Compat: tc.compat}, Deps{Store: st})
			kind, body := cfgOutcome(n.PatchConfig(context.Background(), tc.patch))
			if kind != tc.kind || !strings.Contains(string(body), tc.body) {
				t.Fatalf("code %s body %s, want %s %q", kind, body, tc.kind, tc.body)
			}
			if len(st.wrote) != tc.writes {
				t.Fatalf("%d writes, want %d", len(st.wrote), tc.writes)
			}
		})
	}
}

// The standby leader's recovery settings: the remote host list and port with
// the replication credentials, the configured slot (none without
// primary_slot_name), target_session_attrs for several hosts, and the archive
// settings; a cascading member gets the archive settings but not the delay.
func TestStandbyLeaderRecoveryOptions(t *testing.T) {
	l := newLoop(Config{Name: "pg1", Scope: "s", Credentials: Credentials{Replication: Credential{Username: "rep", Password: "pw"}}}, Deps{})
	cfg := cluster.DefaultDynamicConfig()
	cfg.StandbyCluster = &cluster.StandbyCluster{Host: "a,b", Port: 5433, PrimarySlotName: "dr-site",
		RestoreCommand: "cp /a/%f %p", ArchiveCleanupCommand: "clean %r", RecoveryMinApplyDelay: "1min"}
	opts, up, err := l.replicaOpts(cluster.View{}, cfg, plan.RemotePrimary)
	if err != nil {
		t.Fatal(err)
	}
	rc := opts.Recovery
	if rc.Upstream.Host != "a,b" || rc.Upstream.Port != 5433 || rc.Upstream.User != "rep" || rc.SlotName != "dr_site" ||
		!rc.ReadWriteOnly || rc.RestoreCommand != "cp /a/%f %p" || rc.ArchiveCleanupCommand != "clean %r" || rc.MinApplyDelay != "1min" {
		t.Errorf("recovery config %+v", rc)
	}
	if up != (plan.Upstream{Known: true, Name: plan.RemotePrimary, ConnURL: "a,b:5433"}) {
		t.Errorf("upstream %+v", up)
	}
	cfg.StandbyCluster.PrimarySlotName = ""
	if opts, _, _ := l.replicaOpts(cluster.View{}, cfg, plan.RemotePrimary); opts.Recovery.SlotName != "" {
		t.Errorf("slot %q without primary_slot_name", opts.Recovery.SlotName)
	}
	v := cluster.View{Leader: &cluster.LeaderKey{Name: "pg2"},
		Members: map[string]cluster.Member{"pg2": {ConnURL: "postgres://10.0.0.2:5432/postgres"}}}
	opts, _, err = l.replicaOpts(v, cfg, "pg2")
	if err != nil {
		t.Fatal(err)
	}
	if rc := opts.Recovery; rc.Upstream.Host != "10.0.0.2" || rc.RestoreCommand != "cp /a/%f %p" || rc.MinApplyDelay != "" || rc.ReadWriteOnly {
		t.Errorf("cascading member's recovery config %+v", rc)
	}
}
