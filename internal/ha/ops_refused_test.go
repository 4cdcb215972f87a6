package ha

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// testRefuser stands in for the key table (internal/config.DynamicChecks):
// standby_cluster and a true synchronous_mode are refused.
func testRefuser(doc map[string]any) []cluster.KeyIssue {
	var out []cluster.KeyIssue
	if v, ok := doc["synchronous_mode"]; ok {
		if b, err := cluster.ParseBool(v); err == nil && b {
			out = append(out, cluster.KeyIssue{Key: "synchronous_mode", Msg: "pgnoded does not support synchronous replication (set it false)"})
		}
	}
	if _, ok := doc["standby_cluster"]; ok {
		out = append(out, cluster.KeyIssue{Key: "standby_cluster", Msg: "pgnoded does not support standby clusters (remove it)"})
	}
	return out
}

func refusingNode(st Store) *Node {
	return New(Config{Name: "pg1", Scope: "s", RefusedConfig: testRefuser}, Deps{Store: st})
}

func TestConfigEditsRefused(t *testing.T) {
	base := `{"ttl":30,"synchronous_mode":false}`
	withStandby := `{"ttl":30,"standby_cluster":{"host":"10.0.0.9"}}`
	cases := []struct {
		name   string
		view   string
		put    bool
		doc    map[string]any
		kind   string
		writes int
		body   string
	}{
		{"PATCH synchronous_mode true is 400 with the reason", base, false, map[string]any{"synchronous_mode": true},
			"bad request", 0, "synchronous_mode: pgnoded does not support synchronous replication (set it false)"},
		{"PATCH synchronous_mode \"on\" is 400", base, false, map[string]any{"synchronous_mode": "on", "ttl": 20.0},
			"bad request", 0, "synchronous_mode: pgnoded does not support"},
		{"PATCH standby_cluster is 400", base, false, map[string]any{"standby_cluster": map[string]any{"host": "x"}},
			"bad request", 0, "standby_cluster: pgnoded does not support standby clusters"},
		{"PATCH synchronous_mode false passes", base, false, map[string]any{"synchronous_mode": false, "ttl": 20.0},
			"done", 1, `"ttl":20`},
		{"PATCH removing a refused setting passes", withStandby, false, map[string]any{"standby_cluster": nil},
			"done", 1, `"ttl":30`},
		{"PATCH of another key while a refused one stands passes", withStandby, false, map[string]any{"ttl": 20.0},
			"done", 1, `"ttl":20`},
		{"PUT with synchronous_mode true is 400", base, true, map[string]any{"ttl": 30.0, "synchronous_mode": true},
			"bad request", 0, "synchronous_mode: pgnoded does not support"},
		{"PUT without refused settings passes", base, true, map[string]any{"ttl": 25.0},
			"done", 1, `"ttl":25`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &stubStore{view: configView(tc.view, 7), setOK: []bool{true}}
			n := refusingNode(st)
			var kind string
			var body []byte
			if tc.put {
				kind, body = cfgOutcome(n.PutConfig(context.Background(), tc.doc))
			} else {
				kind, body = cfgOutcome(n.PatchConfig(context.Background(), tc.doc))
			}
			if kind != tc.kind || !strings.Contains(string(body), tc.body) {
				t.Fatalf("code %s body %s, want %s %q", kind, body, tc.kind, tc.body)
			}
			if len(st.wrote) != tc.writes {
				t.Fatalf("%d writes, want %d", len(st.wrote), tc.writes)
			}
		})
	}
}

func TestRefusedConfigAtStartup(t *testing.T) {
	n := refusingNode(&stubStore{view: configView(`{"ttl":30,"standby_cluster":{"host":"10.0.0.9"}}`, 3)})
	err := loopOf(n).refusedAtStartup()
	if !errors.Is(err, ErrConfigRefused) || !strings.Contains(err.Error(), "/config: standby_cluster: pgnoded does not support standby clusters") {
		t.Fatalf("err = %v", err)
	}
	n = refusingNode(&stubStore{view: configView(`{"ttl":30,"synchronous_mode":"off"}`, 3)})
	if err := loopOf(n).refusedAtStartup(); err != nil {
		t.Fatalf("err = %v", err)
	}
}
