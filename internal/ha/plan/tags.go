package plan

import (
	"fmt"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Tags are a member's tags as the HA rules read them (Patroni's tags: nofailover, failover_priority, ...).
type Tags struct {
	NoFailover       bool
	NoFailoverSet    bool // nofailover was given explicitly (then failover_priority does not exclude)
	FailoverPriority int  // default 1
	CloneFrom        bool
	NoLoadBalance    bool
	NoSync           bool
	NoStream         bool
	ReplicateFrom    string
}

// builtinBoolTags are dropped from published tags when false, as Patroni does.
var builtinBoolTags = []string{"nofailover", "noloadbalance", "clonefrom", "nosync", "nostream"}

// ParseTags reads a tags object leniently (booleans and integers may be strings).
func ParseTags(m map[string]any) Tags {
	t := Tags{FailoverPriority: 1}
	b := func(key string) (bool, bool) {
		v, ok := m[key]
		if !ok || v == nil {
			return false, false
		}
		x, err := cluster.ParseBool(v)
		return x && err == nil, true
	}
	t.NoFailover, t.NoFailoverSet = b("nofailover")
	t.CloneFrom, _ = b("clonefrom")
	t.NoLoadBalance, _ = b("noloadbalance")
	t.NoSync, _ = b("nosync")
	t.NoStream, _ = b("nostream")
	if v, ok := m["failover_priority"]; ok && v != nil {
		if n, err := cluster.ParseInt(v); err == nil {
			t.FailoverPriority = int(n)
		}
	}
	if v, ok := m["replicatefrom"]; ok && v != nil {
		t.ReplicateFrom = fmt.Sprint(v)
	}
	return t
}

// CanFailover reports whether the member may ever become leader automatically:
// not nofailover, and failover_priority > 0 unless nofailover was set explicitly.
func (t Tags) CanFailover() bool {
	if t.NoFailoverSet {
		return !t.NoFailover
	}
	return t.FailoverPriority > 0
}

// EffectiveTags returns the tags to publish: the configured ones minus falsy built-in booleans.
func EffectiveTags(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, k := range builtinBoolTags {
		if v, ok := out[k]; ok {
			if b, err := cluster.ParseBool(v); err != nil || !b {
				delete(out, k)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
