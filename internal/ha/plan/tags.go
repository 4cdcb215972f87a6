package plan

import (
	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Tags are a member's tags as the HA rules read them (Patroni's tags: nofailover, failover_priority, ...).
type Tags struct {
	NoFailover       bool
	NoFailoverSet    bool // nofailover was given explicitly (then failover_priority does not exclude)
	FailoverPriority int  // default 1; 0 when nofailover is on
	CloneFrom        bool
	NoLoadBalance    bool
	NoSync           bool
	NoStream         bool
	ReplicateFrom    string
}

// ParseTags reads a member's tags by Patroni's rules (cluster.TagOn and the
// other readers in internal/cluster/tags.go).
func ParseTags(m map[string]any) Tags {
	return Tags{
		NoFailover:       cluster.TagOn(m, cluster.TagNoFailover),
		NoFailoverSet:    cluster.NoFailoverSet(m),
		FailoverPriority: cluster.FailoverPriority(m),
		CloneFrom:        cluster.TagOn(m, cluster.TagCloneFrom),
		NoLoadBalance:    cluster.TagOn(m, cluster.TagNoLoadBalance),
		NoSync:           cluster.TagOn(m, cluster.TagNoSync),
		NoStream:         cluster.TagOn(m, cluster.TagNoStream),
		ReplicateFrom:    cluster.ReplicateFrom(m),
	}
}

// CanFailover reports whether the member may ever become leader automatically:
// not nofailover, and failover_priority > 0 unless nofailover was set explicitly.
func (t Tags) CanFailover() bool {
	if t.NoFailoverSet {
		return !t.NoFailover
	}
	return t.FailoverPriority > 0
}

// EffectiveTags returns the tags to publish (cluster.PublishedTags, Patroni's
// _filter_tags): the configured ones minus falsy built-in booleans.
func EffectiveTags(m map[string]any) map[string]any { return cluster.PublishedTags(m) }
