package ctl

import (
	"bytes"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func render(t *testing.T, v cluster.View, opts listOpts) string {
	t.Helper()
	var b bytes.Buffer
	if err := renderMembers(&b, &v, "pg-test", opts); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestListGolden(t *testing.T) {
	v := fixtureView()
	golden(t, "list.txt", render(t, v, listOpts{}))
	golden(t, "list_extended.txt", render(t, v, listOpts{extended: true}))
	golden(t, "topology.txt", render(t, v, listOpts{topology: true}))
	golden(t, "list.tsv", render(t, v, listOpts{format: "tsv"}))
	golden(t, "list.json", render(t, v, listOpts{format: "json"}))
	golden(t, "list.yaml", render(t, v, listOpts{format: "yaml"}))
}

func TestListPausedAndScheduled(t *testing.T) {
	v := fixtureView()
	v.Config.Pause = true
	v.Failover = &cluster.Failover{Leader: "pg-test-1", Member: "pg-test-2", ScheduledAt: "2024-05-01T14:00:00+02:00"}
	m := v.Members["pg-test-3"]
	m.PendingRestart = true
	m.ScheduledRestart = map[string]any{"schedule": "2024-05-01T13:00:00+00:00", "postgres_version": "15.7"}
	v.Members["pg-test-3"] = m
	golden(t, "list_paused.txt", render(t, v, listOpts{}))
}

func TestListEdgeCases(t *testing.T) {
	t.Run("uninitialized, no leader, shared host", func(t *testing.T) {
		v := cluster.View{Members: map[string]cluster.Member{
			"a": {ConnURL: "postgres://127.0.0.1:5432/postgres", State: "stopped", Role: "replica"},
			"b": {ConnURL: "postgres://127.0.0.1:5433/postgres", State: "starting", Role: "replica", XLogLocation: i64(10)},
		}}
		golden(t, "list_noleader.txt", render(t, v, listOpts{}))
		golden(t, "topology_noleader.txt", render(t, v, listOpts{topology: true}))
	})
	t.Run("initializing, empty", func(t *testing.T) {
		v := cluster.View{Initialize: str(""), Members: map[string]cluster.Member{}}
		golden(t, "list_empty.txt", render(t, v, listOpts{}))
	})
	t.Run("standby cluster", func(t *testing.T) {
		v := fixtureView()
		v.Config.Raw = map[string]any{"standby_cluster": map[string]any{"host": "10.0.0.1"}}
		out := render(t, v, listOpts{})
		if !bytes.Contains([]byte(out), []byte("| Standby Leader |")) {
			t.Errorf("standby leader not shown:\n%s", out)
		}
	})
}

func TestHistoryGolden(t *testing.T) {
	v := fixtureView()
	v.History = append(v.History, cluster.HistoryEntry{Timeline: 2, LSN: 50331808, Reason: "no recovery target specified"})
	for _, f := range []struct{ format, file string }{{"pretty", "history.txt"}, {"json", "history.json"}, {"tsv", "history.tsv"}} {
		var b bytes.Buffer
		if err := historyTable(&v).render(&b, f.format); err != nil {
			t.Fatal(err)
		}
		golden(t, f.file, b.String())
	}
}

func TestClusterAsJSON(t *testing.T) {
	v := fixtureView()
	doc := clusterAsJSON(&v)
	roles := map[string]string{}
	lags := map[string]any{}
	for _, m := range doc.Members {
		roles[m.Name] = m.Role
		lags[m.Name] = m.Lag
	}
	want := map[string]string{"pg-test-1": "leader", "pg-test-2": "sync_standby", "pg-test-3": "replica"}
	for n, r := range want {
		if roles[n] != r {
			t.Errorf("%s role %q, want %q", n, roles[n], r)
		}
	}
	if lags["pg-test-1"] != nil || lags["pg-test-2"] != int64(0) || lags["pg-test-3"] != int64(3*mib+mib/2) {
		t.Errorf("lags %v", lags)
	}
}
