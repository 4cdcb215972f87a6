package cluster

import (
	"context"
	"time"
)

// Role is the HA role of this node as pgnoded decides it.
type Role string

// HA roles. Wire spellings (Patroni 3.0.2 "master" vs 4.x "primary") are chosen by RoleName.
const (
	RolePrimary       Role = "primary"
	RoleReplica       Role = "replica"
	RoleStandbyLeader Role = "standby_leader"
	RoleDemoted       Role = "demoted"
	RoleUninitialized Role = "uninitialized"
	RolePromoted      Role = "promoted"
)

// Compat selects which Patroni version's wire spellings pgnoded publishes.
type Compat string

// Supported compat levels.
const (
	Compat302 Compat = "3.0.2" // role "master", metrics labelled {scope} only, patroni_master
	Compat4   Compat = "4.1.4" // role "primary", metrics labelled {scope,name}
)

// RoleName spells a role for the REST API and member keys.
func (c Compat) RoleName(r Role) string {
	if r == RolePrimary && c != Compat4 {
		return "master"
	}
	return string(r)
}

// Version is the Patroni version pgnoded reports to peers (they parse it as a dotted int tuple).
func (c Compat) Version() string {
	if c == Compat4 {
		return "4.1.4"
	}
	return "3.0.2"
}

// Snapshot is the immutable view of this node that the HA loop publishes after
// every change. The REST API and the exporter answer from it alone, never
// from postgres or etcd. Never mutate a published Snapshot: copy it.
type Snapshot struct {
	Name    string
	Scope   string
	Compat  Compat
	APIURL  string
	ConnURL string

	PG   PGObservation // last observation of the local postgres
	Role Role          // HA role (what pgnoded believes/wants this node to be)
	View View          // last DCS view (View.ReadAt tells its age)

	// LeaderUntil is when this node's hold on the leader key ends unless renewed:
	// the time the last successful renewal was sent plus the lease TTL. Zero when
	// not the leader. /primary is 200 only while now < LeaderUntil.
	LeaderUntil time.Time

	TTL          time.Duration
	LoopWait     time.Duration
	RetryTimeout time.Duration
	Config       DynamicConfig // effective dynamic config

	Tags             map[string]any // effective tags (falsy built-in booleans removed)
	Paused           bool
	FailsafeActive   bool
	StandbyCluster   bool
	SyncStandby      bool // synchronous mode is on and the sync key lists this node (SyncState.Lists)
	PendingRestart   bool
	ScheduledRestart map[string]any
	WatchdogFailed   bool
	UpstreamError    string // why this standby leader does not stream from the remote primary ("" while it does)

	LastLoop   time.Time // when the HA loop last completed a cycle (liveness)
	NextLoopAt time.Time // when the next cycle is due at the latest
	Action     string    // last action message, e.g. "no action. I am (pg1), the leader with the lock"

	VIPBound bool
	Counters Counters

	// ConfigRefused lists the settings of the config key pgnoded refuses
	// (docs/config-keys.md); while any stands the node takes no leadership.
	ConfigRefused []KeyIssue
}

// Counters are monotonic event counts and the last failover's timings, for metrics.
type Counters struct {
	Failovers       uint64
	Switchovers     uint64
	Promotions      uint64
	Demotions       uint64
	LastFailover    FailoverTiming
	LeaseRenewFails uint64
	VIPFailures     uint64 // failed attempts to bind or release the VIP
	// PeerErrors counts failed requests to other members by reason
	// (unauthorized, forbidden, tls, timeout, connect, bad_response); nil
	// when no peer client reports them. Never mutated once published.
	PeerErrors map[string]uint64
	// CallbackRuns counts runs of postgresql.callbacks, pre_promote and before_stop
	// by name and exit (a copy taken when the snapshot was published).
	CallbackRuns map[HookRun]uint64
}

// FailoverTiming splits the last failover this node won into phases.
type FailoverTiming struct {
	Detection time.Duration // leader key gone -> lock acquired
	Promotion time.Duration // lock acquired -> postgres accepts writes
	VIPMove   time.Duration // postgres writable -> VIP bound
}

// IsLeader reports whether this node holds a fresh leader key at now.
func (s *Snapshot) IsLeader(now time.Time) bool {
	return s != nil && !s.LeaderUntil.IsZero() && now.Before(s.LeaderUntil)
}

// DCSAvailable reports whether the cached DCS view is still valid at now.
func (s *Snapshot) DCSAvailable(now time.Time) bool {
	return s != nil && s.View.Valid(now, s.TTL)
}

// AwaitRunning reads snap every poll until it shows postgres running (snap is
// an atomic load, such as the HA node's Snapshot); false when ctx ended first.
// The node publishes no change notification, so this polls.
func AwaitRunning(ctx context.Context, snap func() *Snapshot, poll time.Duration) bool {
	t := time.NewTicker(poll)
	defer t.Stop()
	for s := snap(); s == nil || s.PG.State != StateRunning; s = snap() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}
