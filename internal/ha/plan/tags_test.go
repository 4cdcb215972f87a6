package plan

import (
	"reflect"
	"testing"
)

// TestParseTags: the HA view of a member's tags, read by Patroni's rules
// (internal/cluster/tags.go has the per-tag table).
func TestParseTags(t *testing.T) {
	cases := []struct {
		name string
		in   map[string]any
		want Tags
	}{
		{"none", nil, Tags{FailoverPriority: 1}},
		{"booleans", map[string]any{"nofailover": false, "failover_priority": "2", "clonefrom": true, "replicatefrom": "pg2"},
			Tags{NoFailoverSet: true, FailoverPriority: 2, CloneFrom: true, ReplicateFrom: "pg2"}},
		{"strings are truthy as in Python", map[string]any{"nofailover": "off", "clonefrom": "no", "noloadbalance": "foo", "nosync": "false"},
			Tags{NoFailover: true, NoFailoverSet: true, CloneFrom: true, NoLoadBalance: true, NoSync: true}},
		{"nostream by parse_bool", map[string]any{"nostream": "yes"}, Tags{FailoverPriority: 1, NoStream: true}},
		{"nostream foo is off", map[string]any{"nostream": "foo"}, Tags{FailoverPriority: 1}},
		{"failover_priority 0 without nofailover", map[string]any{"failover_priority": 0.0}, Tags{}},
	}
	for _, c := range cases {
		if got := ParseTags(c.in); got != c.want {
			t.Errorf("%s: ParseTags(%v) = %+v, want %+v", c.name, c.in, got, c.want)
		}
	}
	if ParseTags(map[string]any{"failover_priority": 0.0}).CanFailover() {
		t.Error("failover_priority 0 must not fail over")
	}
	if !ParseTags(map[string]any{"nofailover": false, "failover_priority": 0.0}).CanFailover() {
		t.Error("nofailover: false given explicitly wins over failover_priority 0")
	}
}

func TestEffectiveTags(t *testing.T) {
	eff := EffectiveTags(map[string]any{"nofailover": false, "clonefrom": true, "noloadbalance": "off", "dc": "a"})
	if !reflect.DeepEqual(eff, map[string]any{"clonefrom": true, "noloadbalance": "off", "dc": "a"}) {
		t.Errorf("effective tags %v", eff)
	}
	if EffectiveTags(map[string]any{"nosync": false}) != nil {
		t.Error("all-falsy tags should publish nothing")
	}
}
