package ctl

import (
	"cmp"
	"slices"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// leaderName is the leader key's value, or "".
func leaderName(v *cluster.View) string {
	if v.Leader == nil {
		return ""
	}
	return v.Leader.Name
}

// sortedMembers returns the members ordered by name.
func sortedMembers(v *cluster.View) []cluster.Member {
	out := make([]cluster.Member, 0, len(v.Members))
	for name, m := range v.Members {
		m.Name = name
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b cluster.Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// clusterAsJSON is Patroni 3.0.2's cluster_as_json (GET /cluster), the data
// behind list: every member the sync key lists is a sync_standby, whatever
// synchronous_mode says. Under synchronous_mode: quorum, which 3.0.2 cannot
// run, the listed members are quorum_standby by Patroni 4.x's rule (names
// without case), as 4.x's patronictl shows them ("Quorum Standby").
func clusterAsJSON(v *cluster.View) cluster.Doc {
	quorum := v.Config != nil && v.Config.SynchronousQuorum && !cluster.IsStandbyCluster(v.Config)
	listed := func(name string) bool { return v.Sync.Lists(name, cluster.Compat302) }
	if quorum {
		listed = func(name string) bool { return v.Sync.Lists(name, cluster.Compat4) }
	}
	return cluster.BuildDoc(v, cluster.DocOptions{
		IsSync: listed,
		Quorum: quorum,
		ScheduledAt: func(at string) string {
			if t, err := parseISO(at); err == nil {
				return pyfmt.Isoformat(t, 'T')
			}
			return at
		},
	})
}

// isPaused reports maintenance mode (pause: true in the config key).
func isPaused(v *cluster.View) bool { return v.Config != nil && v.Config.Pause }

// loopWait is the configured loop_wait in seconds, Patroni's default when unset.
func loopWait(v *cluster.View) int {
	if v.Config != nil && v.Config.LoopWait > 0 {
		return v.Config.LoopWait
	}
	return cluster.DefaultLoopWait
}
