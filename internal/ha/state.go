package ha

import (
	"context"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// loopState is what the loop remembers between cycles, grouped by concern.
// Only the loop owns it: the Run goroutine, and Shutdown's once Run has
// returned (docs/architecture.md, "Goroutines and who owns what").
type loopState struct {
	conf  confState  // the dynamic config in force and postgres' parameters
	lease leaseState // the DCS view, our lease and the leader key, failsafe
	pg    pgState    // the local postgres as last observed, and what we did to it
	fence fenceState // the fence guard and the VIP as this node last set them
	long  longState  // the long action running, its back-off, pre_promote
	sched schedState // when the next cycle runs, the scheduled restart
	sync  syncState  // synchronous replication: the GUC pgnoded set, the confirmation position

	role     cluster.Role
	action   string // last decision message
	lastMsg  string
	fatal    error
	counters cluster.Counters
	deciding *plan.Decision // the decision apply is carrying out (nil outside apply)
	cbCalled bool           // a start/stop/restart/role callback fired since we started (Patroni's cb_called)
	// upstreamErr is why the standby leader does not stream from the remote
	// primary, or its failed clone's error (plan.UpstreamError); "" otherwise.
	upstreamErr string
}

// confState is the dynamic config in force and postgres' parameters.
type confState struct {
	dyn         cluster.DynamicConfig // effective dynamic config (last good)
	refused     []cluster.KeyIssue    // settings of the config key pgnoded refuses
	configSeen  string                // the config key document refused was computed from
	appliedTTL  int                   // ttl last given to Store.SetTTL
	ttlPending  bool                  // ttl changed: run a full cycle at the next renewal
	localParams map[string]any        // postgresql.parameters of the config file (replaced by a reload)
	paramsKey   string                // the effective parameters postgres was last started or reloaded with
	reloadPG    bool                  // a reload was requested: rewrite the config files and SIGHUP postgres
}

// leaseState is the DCS as the loop last saw it, and our hold of the leader key.
type leaseState struct {
	view         cluster.View
	dcsOK        bool
	dcsFailing   bool          // a lease renewal, read or leader-key update failed since the last renewal
	fs           failsafeState // primary side of failsafe mode
	lockLost     bool          // UpdateLeader said another node holds the key (this cycle)
	digest       string        // viewDigest of the last cycle's view
	leaderGoneAt time.Time     // first cycle that saw no leader key
	acquiredAt   time.Time
	releasedAt   time.Time
}

// pgState is the local postgres as last observed, and what the loop did to it.
type pgState struct {
	obs                 cluster.PGObservation // last observation (InRecovery hinted when not Ready)
	roleKnown           bool                  // inRecovery is trustworthy for the running postmaster
	inRecovery          bool
	data                plan.DataDir
	sysid               string
	downSince           time.Time
	stopping            bool // we stopped postgres ourselves: its exit is not a crash
	lastStartFailed     bool
	rewindFailed        bool
	rewindLeader        string // leader the failed rewind ran against; a new leader resets the failure
	upstream            plan.Upstream
	checkpointPending   bool       // CHECKPOINT after promote not done yet
	notStreamingSince   time.Time  // running replica without a streaming WAL receiver since
	switchoverDemotedAt time.Time  // we stepped down for a switchover (cleared once postgres runs again)
	slots               slotsCache // the primary's replication slots as last read (syncSlots)
}

// fenceState is the fence guard and the VIP as this node last set them.
type fenceState struct {
	want     bool      // we hold the key and postgres is (or is becoming) a primary
	known    bool      // the fence state below reflects a call we made
	armed    bool      //
	until    time.Time // deadline last armed
	failed   bool
	vipBound bool
}

// longState is the long action running (initdb, clone, rewind, start, pre_promote) and its back-off.
type longState struct {
	run                *longRun
	promoting          bool
	failedAt           map[plan.LongKind]time.Time // back-off: a failed long action is not retried within loop_wait
	prePromote         plan.PrePromoteResult       // pre_promote's outcome for this hold of the key
	prePromoteFailedAt time.Time                   // pre_promote failed and the key was given up then
	prePromoteRace     *bool                       // the promotion waiting for pre_promote won a race (manual?): for the counters
}

// schedState is when the next cycle runs, and the restart scheduled through the API.
type schedState struct {
	restart        *scheduledRestart // a restart scheduled through the API
	release        *syncRelease      // a restart waiting for (or running after) our release from sync duty
	pollAfter      time.Duration     // re-run the cycle this soon (the last plan's PollAfter); 0: no poll
	cycleOnRenewal bool              // the last plan's wait ends at the next lease renewal
	wakeAt         time.Time         // run a cycle at this time (a postponed scheduled action)
	lastLoop       time.Time
	recycle        bool // run another cycle at once (postgres changed under our hands)
}

// scheduledRestart is a restart requested for later (POST /restart with schedule).
type scheduledRestart struct {
	req     RestartRequest
	pmStart time.Time // postmaster start time when it was scheduled: a restart in between cancels it
}

// longRun is a long action running in its own goroutine.
type longRun struct {
	kind      plan.LongKind
	since     time.Time
	cancel    context.CancelFunc
	cancelled bool
	result    chan longResult // capacity 1: the worker never blocks
	done      chan struct{}
	waiter    chan opReply           // an API restart waiting for this start to end (capacity 1), or nil
	callbacks []plan.PlannedCallback // fired when the action ends well (AfterStart)

	// endsSyncRelease: this start ends a restart that asked for release from
	// sync duty (syncrelease.go); the nosync tag is withdrawn when it ends.
	endsSyncRelease bool
}

// action is the running long action as the rules see it (nil: none).
func (l *longRun) action() *plan.LongAction {
	if l == nil {
		return nil
	}
	return &plan.LongAction{Kind: l.kind, Since: l.since}
}

// longResult is what a long action reports back to the loop.
type longResult struct {
	kind         plan.LongKind
	err          error
	sysid        string         // bootstrap
	upstream     *plan.Upstream // set when postgres was started as a replica
	startedAs    *bool          // in recovery? set when postgres was started
	rewindFailed bool
	leader       string // leader a rewind ran against
	prePromote   plan.PrePromoteResult
	remoteClone  bool // the standby leader's clone of the remote primary (its error is published)
}
