package ha

import "github.com/pgnoded/pgnoded/internal/ha/plan"

// The HA rules live in package plan (docs/architecture.md): these aliases keep
// the loop's and the operations' code in the rules' vocabulary without a
// qualifier on every line. New code may use either spelling.

type (
	// Observation is plan.Observation: what one cycle saw.
	Observation = plan.Observation
	// Decision is plan.Decision: the action chosen for one cycle.
	Decision = plan.Decision
	// Action is plan.Action.
	Action = plan.Action
	// DemoteMode is plan.DemoteMode.
	DemoteMode = plan.DemoteMode
	// LongAction is plan.LongAction.
	LongAction = plan.LongAction
	// LongKind is plan.LongKind.
	LongKind = plan.LongKind
	// DataDir is plan.DataDir.
	DataDir = plan.DataDir
	// Upstream is plan.Upstream.
	Upstream = plan.Upstream
	// CallbackState is plan.CallbackState.
	CallbackState = plan.CallbackState
	// PrePromoteResult is plan.PrePromoteResult.
	PrePromoteResult = plan.PrePromoteResult
	// Tags is plan.Tags.
	Tags = plan.Tags
	// Phase is plan.Phase.
	Phase = plan.Phase
	// PlannedCallback is plan.PlannedCallback.
	PlannedCallback = plan.PlannedCallback
)

// Actions, demote modes, long actions, pre_promote outcomes and callback phases (package plan).
const (
	ActionNone            = plan.ActionNone
	ActionWait            = plan.ActionWait
	ActionBootstrap       = plan.ActionBootstrap
	ActionClone           = plan.ActionClone
	ActionStartPrimary    = plan.ActionStartPrimary
	ActionRestartInPlace  = plan.ActionRestartInPlace
	ActionStartReplica    = plan.ActionStartReplica
	ActionAcquire         = plan.ActionAcquire
	ActionPromote         = plan.ActionPromote
	ActionAskPeers        = plan.ActionAskPeers
	ActionUpdateLock      = plan.ActionUpdateLock
	ActionReleaseLock     = plan.ActionReleaseLock
	ActionDemote          = plan.ActionDemote
	ActionFollow          = plan.ActionFollow
	ActionRewind          = plan.ActionRewind
	ActionReinitialize    = plan.ActionReinitialize
	ActionClaimInitialize = plan.ActionClaimInitialize
	ActionStop            = plan.ActionStop
	ActionFatal           = plan.ActionFatal

	DemoteOffline         = plan.DemoteOffline
	DemoteGraceful        = plan.DemoteGraceful
	DemoteImmediate       = plan.DemoteImmediate
	DemoteImmediateNoLock = plan.DemoteImmediateNoLock

	LongBootstrap    = plan.LongBootstrap
	LongClone        = plan.LongClone
	LongStartPrimary = plan.LongStartPrimary
	LongStartReplica = plan.LongStartReplica
	LongRewind       = plan.LongRewind
	LongReinitialize = plan.LongReinitialize
	LongPrePromote   = plan.LongPrePromote

	PrePromoteNotRun = plan.PrePromoteNotRun
	PrePromotePassed = plan.PrePromotePassed
	PrePromoteFailed = plan.PrePromoteFailed

	AfterNow     = plan.AfterNow
	AfterStop    = plan.AfterStop
	AfterStart   = plan.AfterStart
	AfterPromote = plan.AfterPromote
	AfterReload  = plan.AfterReload
)

// Pure rules used by the loop and by other packages (package plan).
var (
	Decide            = plan.Decide
	ParseTags         = plan.ParseTags
	EffectiveTags     = plan.EffectiveTags
	FenceMargin       = plan.FenceMargin
	DemoteDeadline    = plan.DemoteDeadline
	DemoteStart       = plan.DemoteStart
	KeepAliveInterval = plan.KeepAliveInterval
)
