package cluster

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// Doc is Patroni's cluster_as_json: the body of GET /cluster and the data behind patronictl list.
type Doc struct {
	Members             []DocMember    `json:"members"`
	Scope               string         `json:"scope,omitempty"` // Patroni 3.2+, set with DocOptions.Compat4
	Pause               bool           `json:"pause,omitempty"`
	ScheduledSwitchover *DocSwitchover `json:"scheduled_switchover,omitempty"`
}

// DocMember is one entry of Doc.Members.
type DocMember struct {
	Name                 string                   `json:"name"`
	Role                 string                   `json:"role"` // leader, standby_leader, sync_standby, quorum_standby, replica
	State                string                   `json:"state"`
	APIURL               *string                  `json:"api_url"`
	Host                 string                   `json:"host,omitempty"`
	Port                 int                      `json:"port,omitempty"`
	Timeline             int                      `json:"timeline,omitempty"`
	PendingRestart       bool                     `json:"pending_restart,omitempty"`
	PendingRestartReason map[string]PendingChange `json:"pending_restart_reason,omitempty"` // 4.x
	ScheduledRestart     map[string]any           `json:"scheduled_restart,omitempty"`
	Tags                 map[string]any           `json:"tags,omitempty"`
	Lag                  any                      `json:"lag,omitempty"` // int64 bytes or "unknown"; absent for the leader
}

// DocSwitchover is Doc.ScheduledSwitchover, a pending scheduled switchover.
type DocSwitchover struct {
	At   string `json:"at"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// DocOptions are what differs between the renderings of Doc.
type DocOptions struct {
	Compat4     bool                   // 4.x: scope, pending_restart_reason, replication_state as the state
	Scope       string                 // shown when Compat4 is set
	IsSync      func(name string) bool // a member the sync key names (role sync_standby); nil: none
	Quorum      bool                   // 4.x synchronous_mode: quorum: IsSync members are quorum_standby
	ScheduledAt func(at string) string // renders failover.scheduled_at; nil keeps it as stored
}

// BuildDoc builds the cluster document from a view, members ordered by name.
func BuildDoc(v *View, o DocOptions) Doc {
	leader := ""
	if v.Leader != nil {
		leader = v.Leader.Name
	}
	var clusterLSN int64
	if v.Status != nil {
		clusterLSN = v.Status.Optime
	}
	standby := IsStandbyCluster(v.Config)
	doc := Doc{Members: make([]DocMember, 0, len(v.Members))}
	for name, m := range v.Members {
		if name == "" {
			name = m.Name
		}
		d := DocMember{Name: name, State: m.State, Timeline: m.Timeline,
			PendingRestart: m.PendingRestart, ScheduledRestart: m.ScheduledRestart}
		if len(m.Tags) > 0 {
			d.Tags = m.Tags
		}
		if o.Compat4 {
			d.PendingRestartReason = m.PendingRestartReason
			if m.ReplicationState != "" {
				d.State = m.ReplicationState
			}
		}
		if m.APIURL != "" {
			u := m.APIURL
			d.APIURL = &u
		}
		d.Host, d.Port = connHostPort(m.ConnURL)
		switch {
		case name == leader && standby:
			d.Role = "standby_leader"
		case name == leader:
			d.Role = "leader"
		case o.IsSync != nil && o.IsSync(name) && o.Quorum:
			d.Role = "quorum_standby"
		case o.IsSync != nil && o.IsSync(name):
			d.Role = "sync_standby"
		default:
			d.Role = "replica"
		}
		if name != leader {
			d.Lag = memberLag(m, clusterLSN)
		}
		doc.Members = append(doc.Members, d)
	}
	slices.SortFunc(doc.Members, func(a, b DocMember) int { return cmp.Compare(a.Name, b.Name) })
	if o.Compat4 {
		doc.Scope = o.Scope
	}
	doc.Pause = v.Config != nil && v.Config.Pause
	if f := v.Failover; f != nil && f.ScheduledAt != "" {
		at := f.ScheduledAt
		if o.ScheduledAt != nil {
			at = o.ScheduledAt(at)
		}
		doc.ScheduledSwitchover = &DocSwitchover{At: at, From: f.Leader, To: f.Member}
	}
	return doc
}

// memberLag is a replica's lag behind the status key's optime: bytes, or "unknown" without an xlog_location.
func memberLag(m Member, clusterLSN int64) any {
	switch {
	case m.XLogLocation == nil:
		return "unknown"
	case clusterLSN >= *m.XLogLocation:
		return clusterLSN - *m.XLogLocation
	}
	return int64(0)
}

// IsStandbyCluster is Patroni's is_standby_cluster: a standby_cluster section
// with host, port or restore_command in the config key.
func IsStandbyCluster(c *DynamicConfig) bool {
	if c == nil {
		return false
	}
	sc, ok := c.Raw["standby_cluster"].(map[string]any)
	if !ok {
		return false
	}
	for _, k := range []string{"host", "port", "restore_command"} {
		if pyfmt.Truthy(sc[k]) {
			return true
		}
	}
	return false
}

// connHostPort is conn_kwargs' host (lower-cased) and port (default 5432) of a postgres:// conn_url.
func connHostPort(connURL string) (string, int) {
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
