package plan

import (
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Observation is everything Decide looks at: one consistent picture of this
// node, the local postgres and the cluster's keys, taken by the loop at Now.
// Decide never mutates it (maps and slices inside are shared with the loop).
type Observation struct {
	Now  time.Time
	Name string
	Tags Tags

	Config                           cluster.DynamicConfig // effective dynamic config
	UsePgRewind                      bool                  // effective postgresql.use_pg_rewind (local override applied)
	RemoveDataDirOnRewindFailure     bool
	RemoveDataDirOnDivergedTimelines bool
	HasBootstrapConfig               bool // a bootstrap section exists locally
	// CloneWithoutLeader: a create_replica_methods entry has no_leader, so an
	// empty data directory may be filled while no member runs to clone from.
	CloneWithoutLeader bool

	View  cluster.View
	DCSOK bool // the view is fresh (read or confirmed within ttl)
	// LeaseValidUntil is the Store's LeaseValidUntil: how long our lease, and so
	// a leader key attached to it, is known to live. Zero: no lease.
	LeaseValidUntil time.Time
	// LockLost is set when UpdateLeader reported this cycle that another node holds the key.
	LockLost bool
	// FailsafeConfirmed and FailsafeUntil are what failsafe_mode brings in:
	// while confirmed, leadership is held until FailsafeUntil even without DCS.
	FailsafeConfirmed bool
	FailsafeUntil     time.Time
	// Failsafe is the primary side of failsafe mode (NextFailsafe reads it).
	Failsafe FailsafeFacts
	// FailsafeLeader is the member that asked us with POST /failsafe less than
	// ttl ago ("" if none): it is a live primary, so no leader race.
	FailsafeLeader string
	// FenceFailed: the fence guard could not be armed; such a node must not become primary.
	FenceFailed bool

	PG   cluster.PGObservation // InRecovery is the last known value when Ready is false
	Data DataDir

	Long            *LongAction // a long action (bootstrap, clone, start, rewind) is running
	PGDownSince     time.Time   // first observation of postgres not running, zero while it runs
	LastStartFailed bool        // the last start attempt failed (reset when postgres runs)
	RewindFailed    bool        // pg_rewind against the current leader failed
	Upstream        Upstream    // what the running replica was last configured to follow
	ReleasedLockAt  time.Time   // when this node last gave up the leader key voluntarily
	// SwitchoverDemotedAt is when this node stepped down for a switchover (zero
	// once postgres runs again): it waits for the new leader, then follows it.
	SwitchoverDemotedAt time.Time
	// LeaderGoneAt is the first observation without a leader key (zero while there is one).
	LeaderGoneAt time.Time
	// NotStreamingSince is the first observation of this running replica without
	// a streaming WAL receiver (zero: streaming, or not tracked).
	NotStreamingSince time.Time

	// RefusedConfig lists the config key's settings pgnoded refuses: while any
	// stands, the node takes no leadership and promotes nothing.
	RefusedConfig []cluster.KeyIssue

	// Peers is the answer of the members' /patroni documents; nil means "not asked yet".
	Peers []PeerStatus

	// Callbacks is what planning postgresql.callbacks needs (callbacks.go).
	Callbacks CallbackState
	// HasPrePromote: postgresql.pre_promote is set, so every promotion runs it first.
	HasPrePromote bool
	// Sync is what the loop remembers of synchronous replication (NextSync).
	Sync SyncFacts
	// PrePromote is the outcome of pre_promote for the current hold of the leader key.
	PrePromote PrePromoteResult
	// PrePromoteFailedAt is when pre_promote last failed and the key was given up
	// (zero: never): the node stays out of the leader race for ttl after it.
	PrePromoteFailedAt time.Time
}

// CallbackState is Patroni's cb_called and role: whether a start, stop,
// restart or role-change callback was already planned since pgnoded started,
// and the role the node last ran as.
type CallbackState struct {
	Called bool
	Role   cluster.Role
}

// PrePromoteResult is the outcome of postgresql.pre_promote for this hold of the key.
type PrePromoteResult int

// Outcomes of pre_promote.
const (
	PrePromoteNotRun PrePromoteResult = iota
	PrePromotePassed                  // exit 0: promote
	PrePromoteFailed                  // non-zero exit or not run: give the key up
)

// DataDir holds the facts about the data directory.
type DataDir struct {
	Empty   bool                 // missing or without PG_VERSION
	Err     string               // the directory could not be inspected
	Control *cluster.ControlData // pg_controldata, nil when unknown
}

// Upstream is the recovery target the running replica was configured with.
type Upstream struct {
	Known   bool   // false after a pgnoded restart until we configure it ourselves
	Name    string // member followed; "" = standalone (no primary_conninfo)
	ConnURL string
}

// LongAction is an action that runs in the background across cycles.
type LongAction struct {
	Kind  LongKind
	Since time.Time
}

// LongKind names a long action.
type LongKind int

// Long actions.
const (
	LongBootstrap LongKind = iota + 1
	LongClone
	LongStartPrimary
	LongStartReplica
	LongRewind
	LongReinitialize
	LongPrePromote // postgresql.pre_promote runs; the key is held, postgres is still a replica
)

var longKindNames = map[LongKind]string{
	LongBootstrap: "bootstrap", LongClone: "clone", LongStartPrimary: "start as primary",
	LongStartReplica: "start as replica", LongRewind: "rewind", LongReinitialize: "reinitialize",
	LongPrePromote: "pre_promote",
}

// String names the long action for logs.
func (k LongKind) String() string { return longKindNames[k] }

// Action is what the loop does after a decision.
type Action int

// Actions.
const (
	ActionNone            Action = iota // nothing to change
	ActionWait                          // waiting for something outside this node
	ActionBootstrap                     // race for initialize, take the key, initdb, start as primary
	ActionClone                         // pg_basebackup from Decision.Member, then start as replica
	ActionStartPrimary                  // start postgres as primary (we hold the key)
	ActionRestartInPlace                // the leader's postmaster died: start it again as primary
	ActionStartReplica                  // start as replica following Decision.Member ("" = standalone)
	ActionAcquire                       // take the leader key, then promote if in recovery
	ActionPromote                       // we hold the key and postgres is a replica: promote
	ActionAskPeers                      // ask Decision.AskPeers for /patroni, then decide again
	ActionUpdateLock                    // healthy leader: keep the key (and do leader housekeeping)
	ActionReleaseLock                   // give up the key without touching postgres
	ActionDemote                        // stop being primary (Decision.Demote, Decision.Stop)
	ActionFollow                        // reconfigure recovery to follow Decision.Member and reload
	ActionRewind                        // stop if needed, pg_rewind from Decision.Member, start as replica
	ActionReinitialize                  // wipe the data directory and clone again
	ActionClaimInitialize               // write initialize = our system identifier (adopting data)
	ActionStop                          // stop postgres (data directory vanished under it)
	ActionFatal                         // refuse to continue: Decision.Message says why
)

var actionNames = map[Action]string{
	ActionNone: "none", ActionWait: "wait", ActionBootstrap: "bootstrap", ActionClone: "clone",
	ActionStartPrimary: "start-as-primary", ActionRestartInPlace: "restart-in-place",
	ActionStartReplica: "start-as-replica", ActionAcquire: "acquire-and-promote", ActionPromote: "promote",
	ActionAskPeers: "ask-peers", ActionUpdateLock: "update-lock", ActionReleaseLock: "release-lock",
	ActionDemote: "demote", ActionFollow: "follow", ActionRewind: "rewind-then-follow",
	ActionReinitialize: "reinitialize", ActionClaimInitialize: "claim-initialize", ActionStop: "stop",
	ActionFatal: "fatal",
}

// String is the action's stable name for logs and metrics.
func (a Action) String() string { return actionNames[a] }

// DemoteMode is how a primary stops being one (the modes of Patroni's Ha.demote in ha.py).
type DemoteMode int

// Demote modes.
const (
	DemoteOffline         DemoteMode = iota + 1 // DCS unusable: stop, restart read-only without upstream; key kept
	DemoteGraceful                              // switchover: checkpoint, stop fast, hand the key to a caught-up candidate
	DemoteImmediate                             // unfit primary: stop immediately and release the key
	DemoteImmediateNoLock                       // the key is someone else's: stop immediately
	DemoteCluster                               // standby_cluster added: stop fast, keep the key, follow the remote primary (standby.go)
)

var demoteNames = map[DemoteMode]string{
	DemoteOffline: "offline", DemoteGraceful: "graceful", DemoteImmediate: "immediate",
	DemoteImmediateNoLock: "immediate-nolock", DemoteCluster: "demote-cluster",
}

// String is Patroni's name of the demote mode.
func (m DemoteMode) String() string { return demoteNames[m] }

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	Demote DemoteMode       // ActionDemote
	Stop   cluster.StopMode // ActionDemote, ActionStop: how to stop postgres
	// Member is the other member the action concerns: clone source, upstream to
	// follow ("" = standalone), rewind source, or switchover candidate ("" = any).
	Member string
	// AskPeers lists the members whose /patroni to fetch (ActionAskPeers).
	AskPeers []cluster.Member
	// CancelLong cancels the running long action before acting.
	CancelLong bool
	// ClearFailover clears the failover key (stale or impossible request).
	ClearFailover bool
	// PrePromote: run postgresql.pre_promote (as a long action) before promoting
	// (ActionAcquire of a replica, ActionPromote); the promotion follows when it passes.
	PrePromote bool
	// Callbacks are the postgresql.callbacks this decision fires, each after the
	// step of the action it names has succeeded (planCallbacks).
	Callbacks []PlannedCallback
	// Sync is the synchronous replication step of a primary keeping its key
	// (ActionUpdateLock; set by Make), applied once the key update succeeded.
	Sync SyncStep
	// RewindRemote (DemoteCluster, or ActionStartReplica resuming it after a
	// restart, see resumeDemoteCluster): run pg_rewind from the remote primary
	// before following it, as Patroni 4.1 does after demote-cluster when our
	// timeline forked from the remote's (a promoted former standby cluster);
	// pg_rewind finds nothing to do when it did not.
	RewindRemote bool
	// ArchiveShutdown (DemoteCluster, or the standby leader starting on a data
	// directory a primary shut down cleanly): hand the shutdown checkpoint's WAL
	// segment to archive_command before following the remote primary, as
	// Patroni 4.1 does after demote-cluster (the node does nothing when
	// archiving is not configured).
	ArchiveShutdown bool
	// UpstreamError is why the standby leader does not stream from the remote
	// primary (decideStandbyLeader); the loop publishes it (see UpstreamError).
	UpstreamError string
	// Message is the human line, in Patroni's style; Reason is a stable token for logs and metrics.
	Message string
	Reason  string
}

// Decide is the HA rule book (Patroni's Ha._run_cycle in ha.py): a pure function of the
// observation. The order of the checks is the order of precedence:
//
//  1. fencing: a writable primary whose hold on the leader key is about to end is demoted;
//  2. a long action in progress (only lock upkeep, cancellation or wait);
//  3. DCS unusable: a primary goes read-only, everyone else holds still;
//  4. empty data directory: bootstrap or clone;
//  5. system identifier against the initialize key;
//  6. postgres not running: restart, hand over, or start as replica;
//  7. leader key absent: the race; held by us: leader duties; held by another: follow it.
//
// Over all of them: while the config key holds a setting pgnoded refuses, no
// decision takes leadership or promotes (see holdRefused).
func Decide(o Observation) Decision {
	d := decide(o)
	if o.StandbyCluster() {
		d = adjustStandby(o, d)
	}
	if len(o.RefusedConfig) > 0 {
		d = holdRefused(o, d)
	}
	if (d.Action == ActionPromote || d.Action == ActionAcquire && o.PGReady() && o.PG.InRecovery) && !o.StandbyCluster() {
		d.PrePromote = o.HasPrePromote && o.PrePromote != PrePromotePassed
	}
	d.Callbacks = PlanCallbacks(o, d)
	return d
}

// holdRefused keeps a node out of leadership while the config key holds a
// refused setting (standby_cluster, synchronous_mode, ...): acting as if it
// were not there could make a second primary or drop a replication guarantee.
// A running primary keeps running and keeps its key; nothing else changes.
func holdRefused(o Observation, d Decision) Decision {
	switch d.Action {
	case ActionAcquire, ActionPromote, ActionBootstrap, ActionAskPeers:
	default:
		return d
	}
	parts := make([]string, len(o.RefusedConfig))
	for i, k := range o.RefusedConfig {
		parts[i] = k.Key
	}
	return wait("not taking leadership: the config key has settings pgnoded refuses ("+strings.Join(parts, ", ")+")",
		"config_refused")
}

func decide(o Observation) Decision {
	if d, ok := decideFencing(o); ok {
		return d
	}
	if o.Long != nil {
		return decideLongAction(o)
	}
	if !o.DCSUsable() {
		return decideDCSError(o)
	}
	if o.Data.Err != "" && !o.PG.Running {
		return wait("cannot inspect the data directory: "+o.Data.Err, "data_dir_error")
	}
	if o.Data.Empty && !o.PG.Running {
		return decideEmptyDataDir(o)
	}
	if d, ok := decideSystemID(o); ok {
		return d
	}
	if !o.PG.Running {
		return decideNotRunning(o)
	}
	switch {
	case o.View.Leader == nil:
		return decideRace(o)
	case o.View.Leader.Name == o.Name && !o.LockLost && o.StandbyCluster():
		return decideStandbyLeader(o)
	case o.View.Leader.Name == o.Name && !o.LockLost:
		return decideLeader(o)
	case o.View.Leader.Name == o.Name: // we thought so, but UpdateLeader said otherwise
		return decideLockLost(o)
	default:
		return decideFollower(o)
	}
}

// decideFencing enforces the fencing rule: a writable primary must be read-only
// or stopped by DemoteDeadline. From DemoteStart on it is demoted with a fast
// stop (bounded by the deadline); past the deadline with an immediate one.
// Paused clusters are exempt (nothing is stopped in maintenance mode).
func decideFencing(o Observation) (Decision, bool) {
	if o.Paused() || !o.PGWritable() || !o.LeaderIsMe() {
		return Decision{}, false
	}
	hold := o.HoldUntil()
	if o.Now.Before(DemoteStart(hold, o.Config)) {
		return Decision{}, false
	}
	stop := cluster.StopFast
	if !o.Now.Before(DemoteDeadline(hold, o.Config)) {
		stop = cluster.StopImmediate
	}
	msg := "demoting self because the leader lease could not be renewed in time"
	if !o.DCSOK {
		msg = "demoting self because DCS is not accessible and I was a leader"
	}
	return Decision{Action: ActionDemote, Demote: DemoteOffline, Stop: stop, CancelLong: o.Long != nil,
		Message: msg, Reason: "lease_deadline"}, true
}

// decideDCSError is Patroni's _handle_dcs_error: a running primary goes
// read-only unless failsafe mode vouches for it; replicas keep replicating and
// nobody starts, promotes or bootstraps anything.
func decideDCSError(o Observation) Decision {
	if o.Paused() {
		return none("PAUSE: DCS is not accessible", "dcs_error")
	}
	if o.PGWritable() {
		if o.FailsafeConfirmed {
			return none("continue to run as primary because failsafe mode is enabled and all members are accessible",
				"failsafe")
		}
		stop := cluster.StopFast
		if hold := o.HoldUntil(); !o.Now.Before(DemoteDeadline(hold, o.Config)) {
			stop = cluster.StopImmediate
		}
		return Decision{Action: ActionDemote, Demote: DemoteOffline, Stop: stop,
			Message: "demoting self because DCS is not accessible and I was a leader", Reason: "dcs_error"}
	}
	return none("DCS is not accessible", "dcs_error")
}

// decideLockLost: UpdateLeader found the key owned by someone else (Patroni's Ha.process_healthy_cluster).
func decideLockLost(o Observation) Decision {
	if o.Paused() {
		return none("PAUSE: failed to update leader lock in DCS; continue to run", "lock_lost")
	}
	if o.PGWritable() {
		return Decision{Action: ActionDemote, Demote: DemoteImmediateNoLock, Stop: cluster.StopImmediate,
			Message: "demoted self because failed to update leader lock in DCS", Reason: "lock_lost"}
	}
	return wait("lost the leader lock; waiting for the new leader", "lock_lost")
}

func none(msg, reason string) Decision {
	return Decision{Action: ActionNone, Message: msg, Reason: reason}
}

func wait(msg, reason string) Decision {
	return Decision{Action: ActionWait, Message: msg, Reason: reason}
}
