package restapi

import (
	"context"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// SwitchoverRequest is a POST /switchover or /failover body that passed the
// REST-layer validation of Patroni's do_POST_failover (validateSwitchover).
type SwitchoverRequest struct {
	Leader      string    // "leader": the current leader named by the caller ("" only for a failover)
	Candidate   string    // "candidate" (alias "member"); "" means any healthy member
	ScheduledAt time.Time // zero: immediate; otherwise in the future, with a time zone
}

// RestartRequest is a POST /restart body that passed validateRestart.
type RestartRequest struct {
	Schedule        time.Time     // zero: restart now; otherwise schedule it (202 / 409)
	Role            string        // "" or one of master|primary|replica (3.0.2) / primary|standby_leader|replica (4.x), as sent
	PostgresVersion string        // "" or X.Y / X.Y.Z: restart only if the running version is lower
	Timeout         time.Duration // 0: use primary_start_timeout
	RestartPending  bool          // restart only if a restart is pending
}

// ReinitializeRequest is a POST /reinitialize body.
type ReinitializeRequest struct {
	Force      bool // cancel a running async action first
	FromLeader bool // 4.1: clone from the leader with pg_basebackup
}

// FailsafeRequest is a POST /failsafe body sent by a failsafe primary.
type FailsafeRequest struct {
	Name    string           // the primary's member name
	ConnURL string           // its conn_url
	APIURL  string           // its api_url
	Slots   map[string]int64 // slot name -> confirmed LSN, when sent
}

// Actions carries out the state-changing endpoints. The REST layer has already
// checked access and validated the body; implementations return a
// cluster.OpResult or a *cluster.OpError carrying the one-line reply text (the
// config methods return the JSON document written) that Patroni would send,
// and the REST layer maps them to Patroni's statuses (outcome.go). They may
// block (switchover polls up to 2×max(10, loop_wait) s) and must return when ctx ends.
type Actions interface {
	// Switchover schedules or performs a switchover (OpInfeasible, OpStoreFailed, then the outcome).
	Switchover(ctx context.Context, req SwitchoverRequest) (cluster.OpResult, error)
	// Failover performs a failover to req.Candidate.
	Failover(ctx context.Context, req SwitchoverRequest) (cluster.OpResult, error)
	// Restart restarts postgres now or schedules it (OpConflict when one is scheduled) when req.Schedule is set.
	Restart(ctx context.Context, req RestartRequest) (cluster.OpResult, error)
	// DeleteRestart cancels a scheduled restart (OpNotFound when none is).
	DeleteRestart(ctx context.Context) (cluster.OpResult, error)
	// Reload re-reads the configuration file like SIGHUP (Scheduled "reload scheduled").
	Reload(ctx context.Context) (cluster.OpResult, error)
	// Reinitialize starts re-creating this replica ("reinitialize started" / the reason it cannot).
	Reinitialize(ctx context.Context, req ReinitializeRequest) (cluster.OpResult, error)
	// PatchConfig deep-merges patch into the config key with CAS and returns the merged document.
	PatchConfig(ctx context.Context, patch map[string]any) ([]byte, error)
	// PutConfig overwrites the config key and returns the document written.
	PutConfig(ctx context.Context, config map[string]any) ([]byte, error)
	// DeleteSwitchover clears a scheduled switchover (OpNotFound / OpConflict).
	DeleteSwitchover(ctx context.Context) (cluster.OpResult, error)
	// Failsafe answers a failsafe primary's probe ("Accepted" / the reason it refuses).
	Failsafe(ctx context.Context, req FailsafeRequest) (cluster.OpResult, error)
}

// NotImplemented is an Actions that refuses everything as OpUnavailable (503),
// so the server can run before the HA loop provides real actions.
type NotImplemented struct{}

var errNotImplemented = cluster.Refuse(cluster.OpUnavailable, "not implemented yet")

// Switchover implements Actions.
func (NotImplemented) Switchover(context.Context, SwitchoverRequest) (cluster.OpResult, error) {
	return cluster.OpResult{}, errNotImplemented
}

// Failover implements Actions.
func (NotImplemented) Failover(context.Context, SwitchoverRequest) (cluster.OpResult, error) {
	return cluster.OpResult{}, errNotImplemented
}

// Restart implements Actions.
func (NotImplemented) Restart(context.Context, RestartRequest) (cluster.OpResult, error) {
	return cluster.OpResult{}, errNotImplemented
}

// DeleteRestart implements Actions.
func (NotImplemented) DeleteRestart(context.Context) (cluster.OpResult, error) {
	return cluster.OpResult{}, errNotImplemented
}

// Reload implements Actions.
func (NotImplemented) Reload(context.Context) (cluster.OpResult, error) {
	return cluster.OpResult{}, errNotImplemented
}

// Reinitialize implements Actions.
func (NotImplemented) Reinitialize(context.Context, ReinitializeRequest) (cluster.OpResult, error) {
	return cluster.OpResult{}, errNotImplemented
}

// PatchConfig implements Actions.
func (NotImplemented) PatchConfig(context.Context, map[string]any) ([]byte, error) {
	return nil, errNotImplemented
}

// PutConfig implements Actions.
func (NotImplemented) PutConfig(context.Context, map[string]any) ([]byte, error) {
	return nil, errNotImplemented
}

// DeleteSwitchover implements Actions.
func (NotImplemented) DeleteSwitchover(context.Context) (cluster.OpResult, error) {
	return cluster.OpResult{}, errNotImplemented
}

// Failsafe implements Actions.
func (NotImplemented) Failsafe(context.Context, FailsafeRequest) (cluster.OpResult, error) {
	return cluster.OpResult{}, errNotImplemented
}
