package exporter

import (
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSyncStandbysGauge(t *testing.T) {
	sb := func(v string) *string { return &v }
	cases := []struct {
		name   string
		mutate func(s *cluster.Snapshot)
		want   string
	}{
		{"primary, two standbys", func(s *cluster.Snapshot) {}, "2"},
		{"quorum mode counts the voters", func(s *cluster.Snapshot) { s.Config.SynchronousQuorum = true }, "2"},
		{"mode off", func(s *cluster.Snapshot) { s.Config.SynchronousMode = false }, "0"},
		{"key of another leader", func(s *cluster.Snapshot) { s.View.Sync.Leader = "pg-test-2" }, "0"},
		{"no standby yet", func(s *cluster.Snapshot) { s.View.Sync.SyncStandby = nil }, "0"},
		{"no sync key", func(s *cluster.Snapshot) { s.View.Sync = nil }, "0"},
		{"lease lapsed", func(s *cluster.Snapshot) { s.LeaderUntil = haNow.Add(-time.Second) }, "0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := fixedSnapshot()
			snap.Config.SynchronousMode = true
			snap.View.Sync = &cluster.SyncState{Leader: "pg-test-1", SyncStandby: sb("pg-test-2, pg-test-3")}
			tc.mutate(snap)
			c := &haCollector{snap: func() *cluster.Snapshot { return snap }, now: func() time.Time { return haNow }}
			want := "# HELP pgnoded_sync_standbys " + descHelp(t) + "\n# TYPE pgnoded_sync_standbys gauge\npgnoded_sync_standbys " + tc.want + "\n"
			if err := testutil.CollectAndCompare(c, strings.NewReader(want), "pgnoded_sync_standbys"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// descHelp is the help text of pgnoded_sync_standbys as the collector describes it.
func descHelp(t *testing.T) string {
	t.Helper()
	s := descSyncStandbys.String()
	const marker = `help: "`
	i := strings.Index(s, marker)
	j := strings.Index(s[i+len(marker):], `"`)
	if i < 0 || j < 0 {
		t.Fatalf("cannot read the help of %s", s)
	}
	return s[i+len(marker) : i+len(marker)+j]
}
