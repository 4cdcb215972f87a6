package ctl

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// clusterDoc is Patroni 3.0.2's cluster_as_json (GET /cluster), the data behind list.
type clusterDoc struct {
	Members             []memberDoc   `json:"members"`
	Pause               bool          `json:"pause,omitempty"`
	ScheduledSwitchover *scheduledDoc `json:"scheduled_switchover,omitempty"`
}

type memberDoc struct {
	Name             string         `json:"name"`
	Role             string         `json:"role"` // leader, standby_leader, sync_standby, replica
	State            string         `json:"state"`
	APIURL           *string        `json:"api_url"`
	Host             string         `json:"host,omitempty"`
	Port             int            `json:"port,omitempty"`
	Timeline         int            `json:"timeline,omitempty"`
	PendingRestart   bool           `json:"pending_restart,omitempty"`
	ScheduledRestart map[string]any `json:"scheduled_restart,omitempty"`
	Tags             map[string]any `json:"tags,omitempty"`
	Lag              any            `json:"lag,omitempty"` // int64 bytes or "unknown"; absent for the leader
}

type scheduledDoc struct {
	At   string `json:"at"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

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

// isStandbyCluster is Patroni's is_standby_cluster on the config key.
func isStandbyCluster(v *cluster.View) bool {
	if v.Config == nil {
		return false
	}
	sc, ok := v.Config.Raw["standby_cluster"].(map[string]any)
	if !ok {
		return false
	}
	for _, k := range []string{"host", "port", "restore_command"} {
		if truthy(sc[k]) {
			return true
		}
	}
	return false
}

// truthy is Python's truth value of a decoded JSON value.
func truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case string:
		return t != ""
	case float64:
		return t != 0
	case int:
		return t != 0
	case int64:
		return t != 0
	case map[string]any:
		return len(t) > 0
	case []any:
		return len(t) > 0
	}
	return true
}

// hostPort is conn_kwargs' host and port of a postgres:// conn_url (port default 5432).
func hostPort(connURL string) (string, int) {
	if connURL == "" {
		return "", 0
	}
	u, err := url.Parse(connURL)
	if err != nil || u.Hostname() == "" {
		return "", 0
	}
	port := 5432
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return strings.ToLower(u.Hostname()), 0
		}
		port = n
	}
	return strings.ToLower(u.Hostname()), port
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

// clusterAsJSON builds the cluster document from a view.
func clusterAsJSON(v *cluster.View) clusterDoc {
	leader := leaderName(v)
	var clusterLSN int64
	if v.Status != nil {
		clusterLSN = v.Status.Optime
	}
	sync := syncMembers(v)
	standby := isStandbyCluster(v)
	doc := clusterDoc{Members: []memberDoc{}}
	for _, m := range sortedMembers(v) {
		d := memberDoc{Name: m.Name, State: m.State, Timeline: m.Timeline,
			PendingRestart: m.PendingRestart, ScheduledRestart: m.ScheduledRestart}
		if len(m.Tags) > 0 {
			d.Tags = m.Tags
		}
		if m.APIURL != "" {
			u := m.APIURL
			d.APIURL = &u
		}
		d.Host, d.Port = hostPort(m.ConnURL)
		switch {
		case m.Name == leader && standby:
			d.Role = "standby_leader"
		case m.Name == leader:
			d.Role = "leader"
		case sync[strings.ToLower(m.Name)]:
			d.Role = "sync_standby"
		default:
			d.Role = "replica"
		}
		if m.Name != leader {
			switch {
			case m.XLogLocation == nil:
				d.Lag = "unknown"
			case clusterLSN >= *m.XLogLocation:
				d.Lag = clusterLSN - *m.XLogLocation
			default:
				d.Lag = int64(0)
			}
		}
		doc.Members = append(doc.Members, d)
	}
	doc.Pause = v.Config != nil && v.Config.Pause
	if f := v.Failover; f != nil && f.ScheduledAt != "" {
		at := f.ScheduledAt
		if t, err := parseISO(at); err == nil {
			at = isoformat(t)
		}
		doc.ScheduledSwitchover = &scheduledDoc{At: at, From: f.Leader, To: f.Member}
	}
	return doc
}

// noFailover reports a member that must never be promoted: tags.nofailover,
// or failover_priority <= 0 when nofailover is not set.
func noFailover(m cluster.Member) bool {
	if v, ok := m.Tags["nofailover"]; ok && v != nil {
		b, err := cluster.ParseBool(v)
		return err == nil && b
	}
	if v, ok := m.Tags["failover_priority"]; ok && v != nil {
		n, err := cluster.ParseInt(v)
		return err == nil && n <= 0
	}
	return false
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
