package cluster

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestTagOn: Patroni's bool(value) for the 3.x tags, parse_bool for nostream.
func TestTagOn(t *testing.T) {
	old := []string{TagNoFailover, TagNoLoadBalance, TagCloneFrom, TagNoSync}
	cases := []struct {
		value    any
		old, new bool // old: the bool(value) tags; new: nostream (parse_bool)
	}{
		{true, true, true},
		{false, false, false},
		{nil, false, false},
		{"", false, false},
		{"true", true, true},
		{"TRUE", true, true},
		{"on", true, true},
		{"yes", true, true},
		{"1", true, true},
		{"false", true, false}, // a non-empty string is truthy in Python
		{"off", true, false},
		{"0", true, false},
		{"foo", true, false},
		{1.0, true, true}, // JSON 1, an int in Python: str() is "1"
		{2.0, true, false},
		{0.0, false, false},
		{json.Number("1"), true, true},
		{json.Number("0"), false, false},
		{[]any{}, false, false},
		{map[string]any{"a": 1}, true, false},
	}
	for _, c := range cases {
		for _, name := range old {
			if got := TagOn(map[string]any{name: c.value}, name); got != c.old {
				t.Errorf("TagOn(%s: %#v) = %v, want %v", name, c.value, got, c.old)
			}
		}
		if got := TagOn(map[string]any{TagNoStream: c.value}, TagNoStream); got != c.new {
			t.Errorf("TagOn(nostream: %#v) = %v, want %v", c.value, got, c.new)
		}
	}
	for _, name := range append(old, TagNoStream) {
		if TagOn(nil, name) || TagOn(map[string]any{"other": true}, name) {
			t.Errorf("TagOn(%s) is on when the tag is absent", name)
		}
	}
}

// TestFailoverTags: nofailover decides when given; otherwise failover_priority <= 0.
func TestFailoverTags(t *testing.T) {
	cases := []struct {
		name     string
		tags     map[string]any
		noFail   bool
		set      bool
		priority int
	}{
		{"none", nil, false, false, 1},
		{"nofailover true", map[string]any{"nofailover": true}, true, true, 0},
		{"nofailover false", map[string]any{"nofailover": false}, false, true, 1},
		{"nofailover null", map[string]any{"nofailover": nil}, false, false, 1},
		{"nofailover foo", map[string]any{"nofailover": "foo"}, true, true, 0},
		{"nofailover string false", map[string]any{"nofailover": "false"}, true, true, 0},
		{"priority 0", map[string]any{"failover_priority": 0.0}, true, false, 0},
		{"priority -1 string", map[string]any{"failover_priority": "-1"}, true, false, -1},
		{"priority 3", map[string]any{"failover_priority": 3.0}, false, false, 3},
		{"priority json number", map[string]any{"failover_priority": json.Number("5")}, false, false, 5},
		{"priority not a number", map[string]any{"failover_priority": "high"}, false, false, 1},
		{"nofailover false wins over priority 0", map[string]any{"nofailover": false, "failover_priority": 0.0}, false, true, 0},
		{"nofailover true wins over priority 5", map[string]any{"nofailover": true, "failover_priority": 5.0}, true, true, 0},
	}
	for _, c := range cases {
		if got := NoFailover(c.tags); got != c.noFail {
			t.Errorf("%s: NoFailover = %v, want %v", c.name, got, c.noFail)
		}
		if got := NoFailoverSet(c.tags); got != c.set {
			t.Errorf("%s: NoFailoverSet = %v, want %v", c.name, got, c.set)
		}
		if got := FailoverPriority(c.tags); got != c.priority {
			t.Errorf("%s: FailoverPriority = %d, want %d", c.name, got, c.priority)
		}
	}
}

func TestReplicateFrom(t *testing.T) {
	for _, c := range []struct {
		tags map[string]any
		want string
	}{
		{nil, ""},
		{map[string]any{"replicatefrom": nil}, ""},
		{map[string]any{"replicatefrom": "pg-2"}, "pg-2"},
		{map[string]any{"replicatefrom": 2.0}, "2"},
	} {
		if got := ReplicateFrom(c.tags); got != c.want {
			t.Errorf("ReplicateFrom(%v) = %q, want %q", c.tags, got, c.want)
		}
	}
}

// TestPublishedTags is Patroni's _filter_tags.
func TestPublishedTags(t *testing.T) {
	cases := []struct {
		name string
		in   map[string]any
		want map[string]any
	}{
		{"nothing", nil, nil},
		{"false built-ins dropped", map[string]any{"nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false, "nostream": false}, nil},
		{"true built-ins kept", map[string]any{"nofailover": true, "nostream": true}, map[string]any{"nofailover": true, "nostream": true}},
		{"truthy strings kept as written", map[string]any{"noloadbalance": "false"}, map[string]any{"noloadbalance": "false"}},
		{"custom falsy kept", map[string]any{"dc": "", "weight": 0.0}, map[string]any{"dc": "", "weight": 0.0}},
		{"nofailover false kept beside failover_priority", map[string]any{"nofailover": false, "failover_priority": 2.0}, map[string]any{"nofailover": false, "failover_priority": 2.0}},
		{"nosync false kept beside sync_priority", map[string]any{"nosync": false, "sync_priority": 1.0}, map[string]any{"nosync": false, "sync_priority": 1.0}},
		{"nosync false dropped beside failover_priority", map[string]any{"nosync": false, "failover_priority": 1.0}, map[string]any{"failover_priority": 1.0}},
	}
	for _, c := range cases {
		if got := PublishedTags(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: PublishedTags(%v) = %v, want %v", c.name, c.in, got, c.want)
		}
	}
}
