package cluster

import (
	"encoding/json"
	"strings"
	"testing"
)

func docView() *View {
	lsn := func(n int64) *int64 { return &n }
	return &View{
		Leader: &LeaderKey{Name: "pg1"},
		Members: map[string]Member{
			"pg3": {ConnURL: "postgres://10.0.0.3/postgres", State: "streaming", Timeline: 2, XLogLocation: lsn(900),
				ReplicationState: "in archive recovery", Tags: map[string]any{"nofailover": true}},
			"pg1": {ConnURL: "postgres://PG1.example:5433/postgres", APIURL: "http://10.0.0.1:8008/patroni",
				State: "running", Timeline: 2, XLogLocation: lsn(1000),
				PendingRestart: true, PendingRestartReason: map[string]PendingChange{"max_connections": {OldValue: "100", NewValue: "200"}}},
			"pg2": {ConnURL: "postgres://10.0.0.2:5432/postgres", State: "streaming", Timeline: 2, XLogLocation: lsn(1200), Tags: map[string]any{}},
			"pg4": {State: "starting"},
		},
		Status:   &StatusKey{Optime: 1000},
		Config:   &DynamicConfig{Pause: true},
		Failover: &Failover{Leader: "pg1", Member: "pg2", ScheduledAt: "2024-08-28T20:00:00+00:00"},
	}
}

func TestBuildDocRolesLagAndOrder(t *testing.T) {
	doc := BuildDoc(docView(), DocOptions{IsSync: func(n string) bool { return n == "pg2" }})
	var names, roles []string
	for _, m := range doc.Members {
		names = append(names, m.Name)
		roles = append(roles, m.Role)
	}
	if got := strings.Join(names, ","); got != "pg1,pg2,pg3,pg4" {
		t.Errorf("order %s", got)
	}
	if got := strings.Join(roles, ","); got != "leader,sync_standby,replica,replica" {
		t.Errorf("roles %s", got)
	}
	lags := []any{doc.Members[0].Lag, doc.Members[1].Lag, doc.Members[2].Lag, doc.Members[3].Lag}
	if lags[0] != nil || lags[1] != int64(0) || lags[2] != int64(100) || lags[3] != "unknown" {
		t.Errorf("lags %v (leader none, ahead 0, behind bytes, no xlog unknown)", lags)
	}
	pg1 := doc.Members[0]
	if pg1.Host != "pg1.example" || pg1.Port != 5433 || pg1.APIURL == nil || *pg1.APIURL != "http://10.0.0.1:8008/patroni" {
		t.Errorf("pg1 host %q port %d api %v", pg1.Host, pg1.Port, pg1.APIURL)
	}
	if doc.Members[2].Port != 5432 || doc.Members[3].Host != "" || doc.Members[3].APIURL != nil {
		t.Errorf("default port / missing conn_url: %+v %+v", doc.Members[2], doc.Members[3])
	}
	if doc.Members[1].Tags != nil {
		t.Errorf("empty tags must be omitted")
	}
	if pg1.PendingRestartReason != nil || doc.Members[2].State != "streaming" || doc.Scope != "" {
		t.Errorf("4.x fields without Compat4: %+v %+v scope %q", pg1, doc.Members[2], doc.Scope)
	}
	if !doc.Pause || doc.ScheduledSwitchover == nil || *doc.ScheduledSwitchover != (DocSwitchover{At: "2024-08-28T20:00:00+00:00", From: "pg1", To: "pg2"}) {
		t.Errorf("pause %v switchover %+v", doc.Pause, doc.ScheduledSwitchover)
	}
}

func TestBuildDocOptions(t *testing.T) {
	v := docView()
	v.Config.Raw = map[string]any{"standby_cluster": map[string]any{"host": "10.1.0.1"}}
	doc := BuildDoc(v, DocOptions{Compat4: true, Scope: "pg-test", ScheduledAt: func(at string) string { return "at " + at }})
	if doc.Members[0].Role != "standby_leader" || doc.Members[1].Role != "replica" {
		t.Errorf("roles %s %s (standby cluster leader, nil IsSync)", doc.Members[0].Role, doc.Members[1].Role)
	}
	if doc.Scope != "pg-test" || doc.Members[0].PendingRestartReason == nil || doc.Members[2].State != "in archive recovery" {
		t.Errorf("4.x fields: scope %q %+v %+v", doc.Scope, doc.Members[0], doc.Members[2])
	}
	if doc.ScheduledSwitchover.At != "at 2024-08-28T20:00:00+00:00" {
		t.Errorf("scheduled at %q", doc.ScheduledSwitchover.At)
	}
	out, err := json.Marshal(BuildDoc(&View{}, DocOptions{}))
	if err != nil || string(out) != `{"members":[]}` {
		t.Errorf("empty view: %s %v", out, err)
	}
}

func TestIsStandbyCluster(t *testing.T) {
	for _, tc := range []struct {
		sc   any
		want bool
	}{
		{nil, false},
		{map[string]any{}, false},
		{map[string]any{"host": ""}, false},
		{map[string]any{"port": float64(0)}, false},
		{map[string]any{"port": json.Number("0")}, false},
		{map[string]any{"port": float64(5432)}, true},
		{map[string]any{"restore_command": "cp x y"}, true},
		{map[string]any{"primary_slot_name": "s"}, false},
	} {
		c := &DynamicConfig{Raw: map[string]any{"standby_cluster": tc.sc}}
		if got := IsStandbyCluster(c); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.sc, got, tc.want)
		}
	}
	if IsStandbyCluster(nil) {
		t.Errorf("no config key is not a standby cluster")
	}
}
