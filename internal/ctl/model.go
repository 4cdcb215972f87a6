package ctl

import (
	"cmp"
	"slices"
	"strings"

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

// syncMembers are the names listed in the sync key (3.0.2 shows them whatever synchronous_mode says).
func syncMembers(v *cluster.View) map[string]bool {
	out := map[string]bool{}
	if v.Sync == nil || v.Sync.Leader == "" || v.Sync.SyncStandby == nil {
		return out
	}
	for n := range strings.SplitSeq(*v.Sync.SyncStandby, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out[strings.ToLower(n)] = true
		}
	}
	return out
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

// clusterAsJSON is Patroni 3.0.2's cluster_as_json (GET /cluster), the data behind list.
func clusterAsJSON(v *cluster.View) cluster.Doc {
	sync := syncMembers(v)
	return cluster.BuildDoc(v, cluster.DocOptions{
		IsSync: func(name string) bool { return sync[strings.ToLower(name)] },
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
