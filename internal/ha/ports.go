package ha

import (
	"context"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// Postgres is what the HA loop needs from the local postgres owner
// (implemented by *proc.Postgres; faked in unit tests). Every method that
// blocks takes a context and returns when it is done or the context ends.
type Postgres interface {
	// Observe queries the local postgres once (one round trip, bounded by ctx).
	Observe(ctx context.Context) cluster.PGObservation
	// Exited fires (is closed and replaced) every time the postmaster exits; it never blocks.
	Exited() <-chan struct{}

	// DataDirEmpty reports whether the data directory is missing or has no PG_VERSION.
	DataDirEmpty() (bool, error)
	// ControlData runs pg_controldata.
	ControlData(ctx context.Context) (cluster.ControlData, error)

	// Initdb creates a new cluster with bootstrap.initdb options and the configured superuser.
	Initdb(ctx context.Context) error
	// CustomBootstrap runs bootstrap.method's command into the empty data directory and
	// lets postgres recover to the end of what it restored; postgres is stopped afterwards.
	CustomBootstrap(ctx context.Context, opts cluster.StartOptions) error
	// RunPostBootstrap runs bootstrap.post_bootstrap (post_init), if any, against the new primary.
	RunPostBootstrap(ctx context.Context) error
	// Clone builds the (empty) data directory from source by create_replica_methods
	// (opts' zero value: as configured, default pg_basebackup); a source with no
	// host means no member to clone from (no_leader methods only).
	Clone(ctx context.Context, source cluster.ConnInfo, opts cluster.CloneOptions) error
	// Rewind runs pg_rewind against source; postgres must be stopped cleanly.
	Rewind(ctx context.Context, source cluster.ConnInfo) error
	// ArchiveShutdownCheckpoint hands the stopped primary's shutdown-checkpoint WAL segment
	// to archive_command when archiving is configured; it returns the segment ("" when not configured).
	ArchiveShutdownCheckpoint(ctx context.Context) (string, error)
	// RemoveDataDir deletes the data directory; callers only do so when the config allows it.
	RemoveDataDir(ctx context.Context) error

	// Start writes the managed config files and starts the postmaster, waiting until it accepts connections.
	Start(ctx context.Context, opts cluster.StartOptions) error
	// Stop stops the postmaster with the given mode and waits for it to exit.
	Stop(ctx context.Context, mode cluster.StopMode) error
	// Promote runs pg_ctl promote and waits until postgres leaves recovery.
	Promote(ctx context.Context) error
	// Reload rewrites config files for opts and signals the postmaster (SIGHUP).
	Reload(ctx context.Context, opts cluster.StartOptions) error

	// SetPassword sets a role's password.
	SetPassword(ctx context.Context, role, password string) error
	// EnsureRole creates the login role, or alters it when it exists, with its attributes and password.
	EnsureRole(ctx context.Context, r cluster.LoginRole) error
	// GrantRewind lets role run pg_rewind against this server.
	GrantRewind(ctx context.Context, role string) error

	// ReplicationSlots lists every replication slot.
	ReplicationSlots(ctx context.Context) ([]cluster.ReplicationSlot, error)
	// CreatePhysicalSlots creates those of the physical slots named that do not exist yet.
	CreatePhysicalSlots(ctx context.Context, names []string) error
	// DropSlot drops a replication slot.
	DropSlot(ctx context.Context, name string) error
	// SlotPositions reads the WAL position of each existing slot named (restart_lsn or confirmed_flush_lsn).
	SlotPositions(ctx context.Context, names []string) (map[string]int64, error)
	// AdvancePhysicalSlot moves an inactive physical slot forward to pos, never past this replica's replay point.
	AdvancePhysicalSlot(ctx context.Context, name string, pos int64) error

	// Checkpoint runs CHECKPOINT.
	Checkpoint(ctx context.Context) error
	// TimelineHistory reads the history file of timeline tl: the switches that led to it, oldest first.
	TimelineHistory(ctx context.Context, tl int) ([]cluster.HistoryEntry, error)
}

// Store is the DCS as the HA loop sees it: Patroni's key layout under
// /<namespace>/<scope>/ in etcd (implemented by internal/ha/dcs; faked in unit tests).
// Methods marked "leader-guarded" write inside a transaction that compares the
// leader key's value with this node's name, so a node that lost leadership cannot write them.
type Store interface {
	// View returns a copy of the cached view of the cluster's keys (kept by a watch).
	// A write of ours that succeeded is in it once the write returned (the
	// cache applies it at once, dcs/txn.go), so the next cycle plans on it:
	// synchronous replication (sync.go) relies on that to set the GUC against
	// the sync key it wrote, not the one it replaced.
	View() cluster.View
	// Changed fires when the leader, config, failover, sync, status or initialize key changes,
	// or when the watch is lost or restored; it never blocks.
	Changed() <-chan struct{}
	// LeaseValidUntil is the latest time this node's lease is known to be alive:
	// the send time of the last successful keepalive plus the lease TTL. Zero if there is no lease.
	LeaseValidUntil() time.Time
	// LeaseLost fires when a keepalive fails or the lease is revoked/expired; it never blocks.
	LeaseLost() <-chan struct{}
	// SetTTL changes the lease TTL; the lease is replaced with one of the new TTL at the next renewal.
	SetTTL(ttl time.Duration)
	// KeepAlive renews (or grants) the lease now and returns LeaseValidUntil.
	KeepAlive(ctx context.Context) (time.Time, error)

	// AcquireLeader takes the leader key with a create-only transaction on our lease;
	// false (no error) when another node holds it.
	AcquireLeader(ctx context.Context) (bool, error)
	// UpdateLeader makes sure the leader key holds our name on our current lease:
	// re-attaches it (compare value == name) when our lease changed; false when another node holds it.
	UpdateLeader(ctx context.Context) (bool, error)
	// ReleaseLeader deletes the leader key if it still holds our name.
	ReleaseLeader(ctx context.Context) error

	// TouchMember writes members/<name> on our lease, only when the value changed since the last write.
	TouchMember(ctx context.Context, m cluster.Member) error

	// AttemptInitialize creates the initialize key with "" (create-only); false when it exists.
	AttemptInitialize(ctx context.Context) (bool, error)
	// SetInitialize writes the system identifier into initialize.
	SetInitialize(ctx context.Context, sysid string) error
	// CancelInitialize deletes initialize (a failed bootstrap).
	CancelInitialize(ctx context.Context) error

	// SetConfig writes the config key; with rev > 0 only if its mod_revision is still rev
	// (false on conflict), with rev == 0 only if the key does not exist.
	SetConfig(ctx context.Context, raw []byte, rev int64) (bool, error)
	// SetHistory writes the history key (leader-guarded).
	SetHistory(ctx context.Context, h []cluster.HistoryEntry) error
	// SetStatus writes the status key when it changed (leader-guarded).
	SetStatus(ctx context.Context, s cluster.StatusKey) error
	// SetFailsafe writes the failsafe key when it changed (leader-guarded); nil deletes it.
	SetFailsafe(ctx context.Context, members map[string]string) error
	// WriteSync writes the sync key only if its mod_revision is still rev
	// (rev == 0: only if it does not exist); false on conflict.
	WriteSync(ctx context.Context, s cluster.SyncState, rev int64) (bool, error)
	// DeleteSync deletes the sync key only if its mod_revision is still rev; false on conflict.
	DeleteSync(ctx context.Context, rev int64) (bool, error)
	// SetFailover writes the failover key; with rev > 0 only if unchanged since rev. Clearing writes {}.
	SetFailover(ctx context.Context, f cluster.Failover, rev int64) (bool, error)

	// Close stops the watch and keepalives; with revoke the lease is revoked (clean shutdown).
	Close(ctx context.Context, revoke bool) error
}

// VIP binds or releases the cluster's virtual IP on this node (implemented by internal/vip).
type VIP interface {
	// Ensure makes the address present (bound=true) or absent, idempotently;
	// on binding it announces the address with gratuitous ARP/NA.
	Ensure(ctx context.Context, bound bool) error
}

// PeerStatus is what the leader race reads from one member's /patroni document (plan.PeerStatus).
type PeerStatus = plan.PeerStatus

// Peers asks other members for their status document (GET api_url, 2 s timeout, in parallel;
// implemented by internal/peers, which also parses the document).
type Peers interface {
	Status(ctx context.Context, members []cluster.Member) []PeerStatus
}

// PeerErrorCounter is an optional extension of Peers: failed peer requests
// by reason, published in the snapshot's counters for metrics.
type PeerErrorCounter interface {
	ErrorCounts() map[string]uint64
}

// PeerTimeout is how long one peer may take to answer during a leader race (Patroni: 2 s, no retry).
const PeerTimeout = 2 * time.Second

// noPeers answers every member as unreachable (no peer client wired; tests).
type noPeers struct{}

func (noPeers) Status(_ context.Context, members []cluster.Member) []PeerStatus {
	out := make([]PeerStatus, len(members))
	for i, m := range members {
		out[i] = PeerStatus{Name: m.Name}
	}
	return out
}

// Fence is the out-of-process guard that stops postgres if the HA loop stops
// patting it before the deadline (implemented by internal/fence).
type Fence interface {
	// Arm tells the guard postgres may run as primary until deadline; later calls extend it.
	Arm(deadline time.Time) error
	// Disarm tells the guard this node is not a primary; the guard does nothing.
	Disarm() error
}

// Hooks runs the operator's postgresql.callbacks, pre_promote and before_stop
// (implemented by internal/hook). Callback never blocks; Run blocks for the script.
type Hooks interface {
	// Callback starts cb's command, if one is configured, as `<cmd> <cb> <role> <scope>`.
	Callback(cb cluster.Callback, role cluster.Role)
	// Run runs hook h and waits for it; ran is false when h has no command.
	Run(ctx context.Context, h cluster.Hook) (ran bool, exit int, err error)
	// Configured reports whether hook h has a command.
	Configured(h cluster.Hook) bool
	// Runs counts the runs so far by callback and exit.
	Runs() map[cluster.HookRun]uint64
}
