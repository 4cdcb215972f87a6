package cluster

import "time"

// StopMode is how postgres is stopped (pg_ctl -m).
type StopMode string

// Stop modes.
const (
	StopSmart     StopMode = "smart"
	StopFast      StopMode = "fast"
	StopImmediate StopMode = "immediate"
)

// ConnInfo describes how to reach a postgres server (an upstream to follow or clone from).
type ConnInfo struct {
	Host     string
	Port     int
	User     string
	Password string
	DBName   string
	SSLMode  string
}

// RecoveryConfig is what a replica follows. A zero Upstream means "standalone,
// read-only" (Patroni's demote 'offline': standby.signal without primary_conninfo).
type RecoveryConfig struct {
	Upstream        ConnInfo
	SlotName        string // primary_slot_name; empty when slots are off
	ApplicationName string // member name
	// Standby cluster settings (the standby_cluster section): restore_command
	// and archive_cleanup_command on every member, recovery_min_apply_delay and
	// target_session_attrs=read-write (several hosts) on the standby leader only.
	RestoreCommand        string
	ArchiveCleanupCommand string
	MinApplyDelay         string
	ReadWriteOnly         bool
}

// StartOptions tells proc how to start postgres.
type StartOptions struct {
	AsReplica bool           // write standby.signal + recovery parameters
	Recovery  RecoveryConfig // used when AsReplica
	Timeout   time.Duration  // how long to wait for it to accept connections
	Params    map[string]any // effective GUCs (dynamic merged with local); proc adds managed ones
}

// ControlData is the subset of pg_controldata pgnoded needs.
type ControlData struct {
	SystemID          string
	ClusterState      string // "in production", "shut down", "shut down in recovery", "in crash recovery", ...
	TimelineID        int    // Latest checkpoint's TimeLineID
	CheckpointLSN     LSN    // Latest checkpoint location
	CheckpointRedoLSN LSN
	// RedoWALFile is "Latest checkpoint's REDO WAL file": after a clean
	// shutdown, the segment holding the shutdown checkpoint.
	RedoWALFile       string
	MinRecoveryEndLSN LSN
	// MinRecoveryEndTimeline is "Min recovery ending loc's timeline": after a
	// promotion without a checkpoint yet, the data's real timeline (above TimelineID).
	MinRecoveryEndTimeline int
	WALLogHints            bool
	DataChecksumsEnabled   bool
}
