package ctl

import (
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// roleCells are the Role column of the pretty table, by member.
func roleCells(t *testing.T, out string) map[string]string {
	t.Helper()
	roles := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			continue
		}
		name := strings.TrimSpace(cells[1])
		if strings.HasPrefix(name, "pg-test-") {
			roles[name] = strings.TrimSpace(cells[3])
		}
	}
	return roles
}

func TestListSyncRoles(t *testing.T) {
	cases := []struct {
		name     string
		mode     any // synchronous_mode in the config key; nil: absent
		standbys *string
		pg2, pg3 string
	}{
		{"sync on, one standby", true, str("pg-test-2"), "Sync Standby", "Replica"},
		{"sync on, two standbys", true, str("pg-test-3,pg-test-2"), "Sync Standby", "Sync Standby"},
		// patronictl 3.0.2 shows whatever the sync key lists, even with the mode off.
		{"mode off, key left", nil, str("pg-test-2"), "Sync Standby", "Replica"},
		{"3.0.2 compares names exactly", true, str("PG-TEST-2"), "Replica", "Replica"},
		{"no standby in the key", true, nil, "Replica", "Replica"},
		{"quorum", "quorum", str("pg-test-2,pg-test-3"), "Quorum Standby", "Quorum Standby"},
		{"quorum ignores case", "quorum", str("PG-TEST-3"), "Replica", "Quorum Standby"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := fixtureView()
			raw := map[string]any{}
			if tc.mode != nil {
				raw["synchronous_mode"] = tc.mode
			}
			c, err := cluster.FromMap(raw)
			if err != nil {
				t.Fatal(err)
			}
			v.Config = &c
			v.Sync = &cluster.SyncState{Leader: "pg-test-1", SyncStandby: tc.standbys}
			roles := roleCells(t, render(t, v, listOpts{}))
			want := map[string]string{"pg-test-1": "Leader", "pg-test-2": tc.pg2, "pg-test-3": tc.pg3}
			for name, r := range want {
				if roles[name] != r {
					t.Errorf("%s: role %q, want %q (table roles %v)", name, roles[name], r, roles)
				}
			}
		})
	}
}
