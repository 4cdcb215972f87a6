package ha

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

func TestConnInfo(t *testing.T) {
	cred := Credential{Username: "replicator", Password: "p"}
	ci, err := connInfo("postgres://10.0.0.2:5433/app", cred)
	if err != nil {
		t.Fatal(err)
	}
	want := cluster.ConnInfo{Host: "10.0.0.2", Port: 5433, User: "replicator", Password: "p", DBName: "app"}
	if ci != want {
		t.Errorf("got %+v, want %+v", ci, want)
	}
	ci, err = connInfo("postgres://[::1]/postgres", cred)
	if err != nil || ci.Host != "::1" || ci.Port != 5432 {
		t.Errorf("IPv6 without port: %+v %v", ci, err)
	}
	for _, bad := range []string{"http://x/patroni", "postgres://:5432/x", "postgres://h:port/x", "::"} {
		if _, err := connInfo(bad, cred); err == nil {
			t.Errorf("connInfo(%q) accepted", bad)
		}
	}
}

func TestQuoting(t *testing.T) {
	if got := quoteIdent(`we"ird`); got != `"we""ird"` {
		t.Errorf("quoteIdent = %s", got)
	}
	if got := quoteLiteral(`it's`); got != `'it''s'` {
		t.Errorf("quoteLiteral = %s", got)
	}
	if got := quoteLiteral(`a\b'`); got != `E'a\\b'''` {
		t.Errorf("quoteLiteral with backslash = %s", got)
	}
}

func TestParseTimelineHistory(t *testing.T) {
	got := parseTimelineHistory("1\t0/3000148\tno recovery target specified\n\n2\t1/A0\tbefore 2026-03-01\n# comment\nbad line\n")
	want := []cluster.HistoryEntry{
		{Timeline: 1, LSN: 0x3000148, Reason: "no recovery target specified"},
		{Timeline: 2, LSN: 1<<32 | 0xA0, Reason: "before 2026-03-01"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestTags(t *testing.T) {
	tg := ParseTags(map[string]any{"nofailover": "off", "failover_priority": "2", "clonefrom": "yes", "replicatefrom": "pg2"})
	if tg.NoFailover || !tg.NoFailoverSet || tg.FailoverPriority != 2 || !tg.CloneFrom || tg.ReplicateFrom != "pg2" {
		t.Errorf("parsed %+v", tg)
	}
	eff := EffectiveTags(map[string]any{"nofailover": false, "clonefrom": true, "noloadbalance": "off", "dc": "a"})
	if !reflect.DeepEqual(eff, map[string]any{"clonefrom": true, "dc": "a"}) {
		t.Errorf("effective tags %v", eff)
	}
	if EffectiveTags(map[string]any{"nosync": false}) != nil {
		t.Error("all-falsy tags should publish nothing")
	}
}

func TestViewDigestIgnoresTheLeadersOwnStatus(t *testing.T) {
	v := cluster.View{Leader: &cluster.LeaderKey{Name: "pg1"}, Status: &cluster.StatusKey{Optime: 1}, ReadAt: t0}
	a := plan.ViewDigest(v, "pg1", t0, 30e9)
	v.Status = &cluster.StatusKey{Optime: 2}
	if plan.ViewDigest(v, "pg1", t0, 30e9) != a {
		t.Error("the leader's digest changed with status")
	}
	if plan.ViewDigest(v, "pg2", t0, 30e9) == plan.ViewDigest(cluster.View{Leader: v.Leader, Status: &cluster.StatusKey{Optime: 1}, ReadAt: t0}, "pg2", t0, 30e9) {
		t.Error("a replica's digest must change with status")
	}
	v.Leader = &cluster.LeaderKey{Name: "pg2"}
	if plan.ViewDigest(v, "pg1", t0, 30e9) == a {
		t.Error("the digest must change with the leader")
	}
}

func TestNewAndRunValidation(t *testing.T) {
	n := New(Config{Name: "pg1", Scope: "s"}, Deps{})
	if s := n.Snapshot(); s == nil || s.Name != "pg1" || s.Compat != cluster.Compat302 || s.TTL != 30e9 {
		t.Fatalf("initial snapshot %+v", s)
	}
	n.Wake()
	n.Wake() // never blocks
	if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Postgres and Store are required") {
		t.Fatalf("Run without deps: %v", err)
	}
	w := newWorld(t, "pg1")
	sn := w.nodes["pg1"]
	sn.store = newFakeStore(w, "pg1")
	n = New(Config{Name: "pg1", Scope: "s"}, Deps{Postgres: sn.pg, Store: sn.store})
	if err := n.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Fence is required") {
		t.Fatalf("Run without a fence: %v", err)
	}
	if err := n.Shutdown(context.Background(), false); err != nil {
		t.Fatalf("Shutdown before Run: %v", err)
	}
	if err := n.Run(context.Background()); err == nil {
		t.Fatal("Run after Shutdown must fail")
	}
}

func TestBootstrapConfigJSONFillsPatroniDefaults(t *testing.T) {
	n := New(Config{Name: "pg1", Scope: "s", BootstrapDCS: map[string]any{"ttl": 20, "failsafe_mode": true}}, Deps{})
	c, err := cluster.ParseDynamicConfig(n.bootstrapConfigJSON())
	if err != nil {
		t.Fatal(err)
	}
	if c.TTL != 20 || c.LoopWait != 10 || c.RetryTimeout != 10 || !c.FailsafeMode || c.MaximumLagOnFailover != 1048576 {
		t.Errorf("config %+v", c)
	}
}
