package cluster

import (
	"encoding/json"
	"fmt"

	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// Member tags are read here, and only here, the way Patroni reads them
// (Patroni 3.0.2's __main__.py Patroni.nofailover/noloadbalance/nosync and
// dcs/__init__.py Member.nofailover/clonefrom; 4.x's tags.py Tags). Patroni's
// readers differ per tag, and so do these:
//
//   - nofailover, noloadbalance, clonefrom, nosync: Python's bool(value), so
//     any non-empty string is on, "false" and "foo" included; false, 0, "",
//     null and an absent tag are off.
//   - nostream (new in 4.x): Patroni's parse_bool, so only on/true/yes/1 (any
//     case) are on; "foo" and "false" are off.
//   - failover_priority: Patroni's parse_int; a value that is not an integer
//     counts as absent.
//
// The built-in tags of pgnoded's own config file are booleans (the loader reads
// true/false, on/off, yes/no and refuses anything else with file:line, where
// Patroni's validator wants a YAML boolean); strings reach these readers from
// other members' keys and status documents.

// Built-in tag names.
const (
	TagNoFailover       = "nofailover"
	TagFailoverPriority = "failover_priority"
	TagNoLoadBalance    = "noloadbalance"
	TagCloneFrom        = "clonefrom"
	TagNoSync           = "nosync"
	TagSyncPriority     = "sync_priority"
	TagNoStream         = "nostream"
	TagReplicateFrom    = "replicatefrom"
)

// TagOn reports whether the built-in boolean tag name (nofailover,
// noloadbalance, clonefrom, nosync, nostream) is on, read by Patroni's rule
// for that tag. For whether a member may be promoted use NoFailover, which
// also reads failover_priority.
func TagOn(tags map[string]any, name string) bool {
	v, ok := tags[name]
	if !ok || v == nil {
		return false
	}
	if name == TagNoStream {
		on, _ := pyfmt.ParseBool(v) // parse_bool's None (not a boolean) is off
		return on
	}
	return pyfmt.Truthy(v)
}

// TagInt is an integer tag (failover_priority, sync_priority) by Patroni's
// parse_int: ok is false when it is absent or not an integer.
func TagInt(tags map[string]any, name string) (n int, ok bool) {
	v, present := tags[name]
	if !present || v == nil {
		return 0, false
	}
	if num, isNum := v.(json.Number); isNum {
		v = num.String()
	}
	i, err := ParseInt(v)
	if err != nil {
		return 0, false
	}
	return int(i), true
}

// NoFailoverSet reports whether nofailover is given (not absent, not null):
// then it alone decides, and failover_priority does not.
func NoFailoverSet(tags map[string]any) bool {
	v, ok := tags[TagNoFailover]
	return ok && v != nil
}

// NoFailover reports whether the member must never be promoted (Patroni's
// Tags.nofailover): nofailover when given, else failover_priority <= 0 when
// that is given.
func NoFailover(tags map[string]any) bool {
	if NoFailoverSet(tags) {
		return TagOn(tags, TagNoFailover)
	}
	p, ok := TagInt(tags, TagFailoverPriority)
	return ok && p <= 0
}

// FailoverPriority is the member's priority in the leader race (Patroni's
// Tags.failover_priority): 0 when nofailover is on, else failover_priority,
// 1 when that is absent or not an integer.
func FailoverPriority(tags map[string]any) int {
	if TagOn(tags, TagNoFailover) {
		return 0
	}
	if p, ok := TagInt(tags, TagFailoverPriority); ok {
		return p
	}
	return 1
}

// ReplicateFrom is the member the replicatefrom tag names, or "".
func ReplicateFrom(tags map[string]any) string {
	v, ok := tags[TagReplicateFrom]
	if !ok || v == nil {
		return ""
	}
	if s, isStr := v.(string); isStr {
		return s
	}
	return fmt.Sprint(v)
}

// PublishedTags are the tags a member publishes (Patroni's Tags._filter_tags):
// every custom tag as given; a built-in boolean tag only when its value is
// truthy, except nofailover when failover_priority is given and nosync when
// sync_priority is given (both are then kept to show the contradiction). nil
// when nothing is left.
func PublishedTags(tags map[string]any) map[string]any {
	out := make(map[string]any, len(tags))
	for k, v := range tags {
		switch k {
		case TagNoFailover, TagNoLoadBalance, TagCloneFrom, TagNoSync, TagNoStream:
			_, hasFP := tags[TagFailoverPriority]
			_, hasSP := tags[TagSyncPriority]
			if !pyfmt.Truthy(v) && !(k == TagNoFailover && hasFP) && !(k == TagNoSync && hasSP) {
				continue
			}
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
