package cluster

import "time"

// PGState is Patroni's postgres state string ("running", "starting", ...).
type PGState string

// Patroni's postgres states (the set_state calls in Patroni's postgresql/__init__.py).
const (
	StateRunning          PGState = "running"
	StateStarting         PGState = "starting"
	StateStopped          PGState = "stopped"
	StateStopping         PGState = "stopping"
	StateRestarting       PGState = "restarting"
	StateCrashed          PGState = "crashed"
	StateCreatingReplica  PGState = "creating replica"
	StateInitializing     PGState = "initializing new cluster"
	StateInitdbFailed     PGState = "initdb failed"
	StateStartFailed      PGState = "start failed"
	StateRestartFailed    PGState = "restart failed"
	StateStopFailed       PGState = "stop failed"
	StateUnknown          PGState = "unknown"
	StateRewinding        PGState = "rewinding"
	StateUninitializedDir PGState = "uninitialized"
)

// LSN is a WAL position in bytes.
type LSN uint64

// ReplicationRow is one row of pg_stat_replication as Patroni publishes it.
type ReplicationRow struct {
	UseName         string `json:"usename"`
	ApplicationName string `json:"application_name"`
	ClientAddr      string `json:"client_addr"`
	State           string `json:"state"`
	SyncState       string `json:"sync_state"`
	SyncPriority    int    `json:"sync_priority"`
	// Lag fields are not part of Patroni's document; kept for metrics and the CLI.
	SentLSN   LSN `json:"-"`
	FlushLSN  LSN `json:"-"`
	ReplayLSN LSN `json:"-"`
}

// PGObservation is one observation of the local postgres, taken by internal/proc.
// Zero values mean "unknown"; Running=false means no postmaster answers.
type PGObservation struct {
	ObservedAt time.Time
	State      PGState // Patroni state string as proc sees it
	Running    bool    // a postmaster is alive (process-level)
	Ready      bool    // a query succeeded in this observation
	InRecovery bool    // pg_is_in_recovery()

	Timeline       int
	CurrentLSN     LSN // primary: pg_current_wal_lsn (3.0.2 reports this as xlog.location)
	FlushLSN       LSN // primary: pg_current_wal_flush_lsn
	ReceivedLSN    LSN // replica: pg_last_wal_receive_lsn
	ReplayedLSN    LSN // replica: pg_last_wal_replay_lsn
	ReplayedAt     *time.Time
	ReplayPaused   bool
	Streaming      bool // replica: a WAL receiver is streaming
	ReceiverTLI    int
	ReceiverLatest LSN // walreceiver latest_end_lsn
	// SyncStandbyNames is synchronous_standby_names as the observing session
	// sees it (the value in effect after the last reload it processed).
	SyncStandbyNames string

	Replication         []ReplicationRow
	PostmasterStartTime time.Time
	PostmasterPID       int
	ServerVersion       int // e.g. 150008
	SystemID            string
	PendingRestart      bool
	PendingRestartWhy   map[string]PendingChange
	Err                 string // last observation error, for logs and /patroni "unknown"
}

// PendingChange is one parameter waiting for a restart.
type PendingChange struct {
	OldValue string `json:"old_value"`
	NewValue string `json:"new_value"`
}

// WALPosition is the position Patroni compares in the leader race:
// a primary's current LSN, a replica's max(received, replayed).
func (o PGObservation) WALPosition() LSN {
	if !o.InRecovery {
		if o.FlushLSN > o.CurrentLSN {
			return o.FlushLSN
		}
		return o.CurrentLSN
	}
	if o.ReceivedLSN > o.ReplayedLSN {
		return o.ReceivedLSN
	}
	return o.ReplayedLSN
}

// IsRunningPrimary reports a running, answering, not-in-recovery postgres.
func (o PGObservation) IsRunningPrimary() bool {
	return o.Running && o.Ready && o.State == StateRunning && !o.InRecovery
}
