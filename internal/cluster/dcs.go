package cluster

import (
	"encoding/json"
	"fmt"
	"time"
)

// Member is the JSON value of members/<name> (what Patroni's Ha.touch_member writes, ha.py).
type Member struct {
	Name string `json:"-"` // from the key, not the value

	ConnURL                string                   `json:"conn_url"`
	APIURL                 string                   `json:"api_url"`
	State                  string                   `json:"state"`
	Role                   string                   `json:"role"`
	Version                string                   `json:"version"`
	XLogLocation           *int64                   `json:"xlog_location,omitempty"`
	ReplicationState       string                   `json:"replication_state,omitempty"`
	Timeline               int                      `json:"timeline,omitempty"`
	Tags                   map[string]any           `json:"tags,omitempty"`
	ProxyURL               string                   `json:"proxy_url,omitempty"`
	CheckpointAfterPromote *bool                    `json:"checkpoint_after_promote,omitempty"`
	PendingRestart         bool                     `json:"pending_restart,omitempty"`
	PendingRestartReason   map[string]PendingChange `json:"pending_restart_reason,omitempty"`
	ScheduledRestart       map[string]any           `json:"scheduled_restart,omitempty"`
	Pause                  bool                     `json:"pause,omitempty"`

	ModRevision int64 `json:"-"`
	LeaseID     int64 `json:"-"`
}

// Failover is the value of the failover key; empty ({}) means none pending.
type Failover struct {
	Leader      string `json:"leader,omitempty"`
	Member      string `json:"member,omitempty"` // the candidate
	ScheduledAt string `json:"scheduled_at,omitempty"`

	ModRevision int64 `json:"-"`
}

// Empty reports a cleared failover key.
func (f *Failover) Empty() bool { return f == nil || (f.Leader == "" && f.Member == "") }

// SyncState is the value of the sync key.
type SyncState struct {
	Leader string `json:"leader"`
	// Quorum is Patroni 4.x's "quorum" (0 outside quorum mode); nil: absent (3.0.2).
	Quorum      *int    `json:"quorum,omitempty"`
	SyncStandby *string `json:"sync_standby"`

	ModRevision int64 `json:"-"`
}

// StatusKey is the value of the status key (leader's last known WAL position).
type StatusKey struct {
	Optime int64            `json:"optime"`
	Slots  map[string]int64 `json:"slots,omitempty"`
}

// HistoryEntry is one timeline switch: [timeline, lsn, reason, timestamp, new_leader].
type HistoryEntry struct {
	Timeline  int
	LSN       int64
	Reason    string
	Timestamp string
	NewLeader string
}

// MarshalJSON writes the entry as Patroni's 5-element array.
func (h HistoryEntry) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{h.Timeline, h.LSN, h.Reason, h.Timestamp, h.NewLeader})
}

// UnmarshalJSON reads a 3- to 5-element array.
func (h *HistoryEntry) UnmarshalJSON(b []byte) error {
	var raw []any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*h = HistoryEntry{}
	if len(raw) > 0 {
		if v, ok := raw[0].(float64); ok {
			h.Timeline = int(v)
		}
	}
	if len(raw) > 1 {
		if v, ok := raw[1].(float64); ok {
			h.LSN = int64(v)
		}
	}
	if len(raw) > 2 {
		h.Reason, _ = raw[2].(string)
	}
	if len(raw) > 3 {
		h.Timestamp, _ = raw[3].(string)
	}
	if len(raw) > 4 {
		h.NewLeader, _ = raw[4].(string)
	}
	return nil
}

// LeaderKey is the leader key: the bare member name on the owner's lease.
type LeaderKey struct {
	Name        string
	LeaseID     int64
	ModRevision int64
}

// View is the cached, in-memory copy of the cluster's keys under /<namespace>/<scope>/.
type View struct {
	Leader     *LeaderKey        // nil: no leader key (cluster unlocked)
	Members    map[string]Member // by name
	Initialize *string           // nil: key absent; "" while a bootstrap is in flight
	Config     *DynamicConfig    // nil: key absent or unparsable
	ConfigRaw  json.RawMessage   // the config key as stored, for GET /config and CAS edits
	ConfigRev  int64             // mod_revision of the config key
	Failover   *Failover
	Sync       *SyncState
	History    []HistoryEntry
	Status     *StatusKey
	Failsafe   map[string]string // member name -> api_url; nil: key absent

	Revision int64     // etcd revision this view reflects
	ReadAt   time.Time // last successful read/watch confirmation; the view is valid for ttl after it
}

// Valid reports whether the view is fresh enough to act on (Patroni: ttl after the last read).
func (v *View) Valid(now time.Time, ttl time.Duration) bool {
	return v != nil && !v.ReadAt.IsZero() && now.Sub(v.ReadAt) < ttl
}

// Timeline returns the cluster timeline Patroni derives from history (last entry + 1), or 0.
func (v *View) Timeline() int {
	if v == nil || len(v.History) == 0 {
		return 0
	}
	return v.History[len(v.History)-1].Timeline + 1
}

// WakeFields is the part of a member key a waiting decision looks at:
// role, state, whether it can be cloned from (conn_url), timeline and tags.
// A member key change that keeps these (an xlog_location update on a busy
// cluster) wakes no one; one that changes them (the leader's postgres turned
// running, an old primary rejoined as a replica) wakes every waiting node at
// once instead of at its next loop_wait. The Store's watch uses it to decide
// which member changes fire Changed, and the HA loop to decide whether they
// run a cycle.
func (m Member) WakeFields() string {
	conn := "-"
	if m.ConnURL != "" {
		conn = "c"
	}
	tags := ""
	if len(m.Tags) > 0 {
		tags = fmt.Sprint(m.Tags) // fmt prints maps sorted by key
	}
	return fmt.Sprintf("%s/%s/%s/%d/%s", m.Role, m.State, conn, m.Timeline, tags)
}
