package ha

import (
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func TestRestartMatches(t *testing.T) {
	primary := restartFacts{role: cluster.RolePrimary, serverVersion: 150008}
	replica := restartFacts{role: cluster.RoleReplica, serverVersion: 150008, pendingRestart: true}
	cases := []struct {
		name  string
		facts restartFacts
		req   RestartRequest
		want  string
	}{
		{"no filters", primary, RestartRequest{}, ""},
		{"role master matches a primary", primary, RestartRequest{Role: "master"}, ""},
		{"role primary matches a primary", primary, RestartRequest{Role: "primary"}, ""},
		{"role replica does not match a primary", primary, RestartRequest{Role: "replica"}, "host role mismatch"},
		{"role replica matches a replica", replica, RestartRequest{Role: "replica"}, ""},
		{"newer version requested: restart", primary, RestartRequest{PostgresVersion: "15.9"}, ""},
		{"same version: no restart", primary, RestartRequest{PostgresVersion: "15.8"}, "postgres version mismatch"},
		{"older version: no restart", primary, RestartRequest{PostgresVersion: "9.6.3"}, "postgres version mismatch"},
		{"pending restart required but not flagged", primary, RestartRequest{RestartPending: true}, "pending restart flag is not set"},
		{"pending restart required and flagged", replica, RestartRequest{RestartPending: true}, ""},
		{"all filters must hold", replica, RestartRequest{RestartPending: true, Role: "primary"}, "host role mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := restartMatches(tc.facts, tc.req); got != tc.want {
				t.Fatalf("restartMatches = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPostgresVersionToInt(t *testing.T) {
	for in, want := range map[string]int{"15.8": 150008, "10.1": 100001, "9.6.3": 90603, "9.3.13": 90313, "16.0": 160000} {
		if got, err := postgresVersionToInt(in); err != nil || got != want {
			t.Errorf("postgresVersionToInt(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"10", "9.6", "a.b.c", "1.2.3.4", ""} {
		if _, err := postgresVersionToInt(bad); err == nil {
			t.Errorf("postgresVersionToInt(%q) accepted", bad)
		}
	}
}

func TestStreamingCandidates(t *testing.T) {
	rows := func(o *plan.Observation) {
		o.PG.Replication = []cluster.ReplicationRow{
			{ApplicationName: "pg2", State: "streaming", FlushLSN: 900},
			{ApplicationName: "pg3", State: "streaming", FlushLSN: 1000},
			{ApplicationName: "pg4", State: "streaming", FlushLSN: 2000}, // no member key
		}
	}
	cases := []struct {
		name      string
		obs       plan.Observation
		candidate string
		want      []string
	}{
		{"best flushed first", newObs(iLead, rows), "", []string{"pg3", "pg2"}},
		{"only the named candidate", newObs(iLead, rows), "pg2", []string{"pg2"}},
		{"a catching-up standby is not a streaming candidate",
			newObs(iLead, rows, func(o *plan.Observation) { o.PG.Replication[1].State = "catchup" }), "", []string{"pg2"}},
		{"a nofailover member is skipped",
			newObs(iLead, rows, memberTags("pg3", map[string]any{"nofailover": true})), "", []string{"pg2"}},
		{"equal positions: higher failover_priority first",
			newObs(iLead, rows, func(o *plan.Observation) { o.PG.Replication[0].FlushLSN = 1000 },
				memberTags("pg2", map[string]any{"failover_priority": 5})), "", []string{"pg2", "pg3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := streamingCandidates(tc.obs, tc.candidate)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}
