package restapi

import (
	"context"
	"net/http"
	"time"
)

// SwitchoverRequest is a POST /switchover or /failover body that passed the
// REST-layer validation of patroni-contract.md §1.6.1 steps 1–5.
type SwitchoverRequest struct {
	Leader      string    // "leader": the current leader named by the caller ("" only for a failover)
	Candidate   string    // "candidate" (alias "member"); "" means any healthy member
	ScheduledAt time.Time // zero: immediate; otherwise in the future, with a time zone
}

// RestartRequest is a POST /restart body that passed the validation of §1.6.2.
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
// checked access and validated the body; implementations return the HTTP status
// and the one-line reply text (or a JSON body for the config methods) that
// Patroni would send. They may block (switchover polls up to 2×max(10, loop_wait) s)
// and must return when ctx ends.
type Actions interface {
	// Switchover schedules or performs a switchover (412 feasibility, 503 DCS write, 200/202/503 outcome).
	Switchover(ctx context.Context, req SwitchoverRequest) (code int, text string)
	// Failover performs a failover to req.Candidate.
	Failover(ctx context.Context, req SwitchoverRequest) (code int, text string)
	// Restart restarts postgres now (200/503) or schedules it (202/409) when req.Schedule is set.
	Restart(ctx context.Context, req RestartRequest) (code int, text string)
	// DeleteRestart cancels a scheduled restart (200 / 404).
	DeleteRestart(ctx context.Context) (code int, text string)
	// Reload re-reads the configuration file like SIGHUP (202 "reload scheduled").
	Reload(ctx context.Context) (code int, text string)
	// Reinitialize starts re-creating this replica (200 "reinitialize started" / 503 reason).
	Reinitialize(ctx context.Context, req ReinitializeRequest) (code int, text string)
	// PatchConfig deep-merges patch into the config key with CAS; 2xx bodies are JSON, others text.
	PatchConfig(ctx context.Context, patch map[string]any) (code int, body []byte)
	// PutConfig overwrites the config key; 2xx bodies are JSON, others text.
	PutConfig(ctx context.Context, config map[string]any) (code int, body []byte)
	// DeleteSwitchover clears a scheduled switchover (200 / 404 / 409).
	DeleteSwitchover(ctx context.Context) (code int, text string)
	// Failsafe answers a failsafe primary's probe (200 "Accepted" / 500 "Running as a leader").
	Failsafe(ctx context.Context, req FailsafeRequest) (code int, text string)
}

// NotImplemented is an Actions that refuses everything with 503, so the server
// can run before the HA loop provides real actions.
type NotImplemented struct{}

const notImplementedText = "not implemented yet"

// Switchover implements Actions.
func (NotImplemented) Switchover(context.Context, SwitchoverRequest) (int, string) {
	return http.StatusServiceUnavailable, notImplementedText
}

// Failover implements Actions.
func (NotImplemented) Failover(context.Context, SwitchoverRequest) (int, string) {
	return http.StatusServiceUnavailable, notImplementedText
}

// Restart implements Actions.
func (NotImplemented) Restart(context.Context, RestartRequest) (int, string) {
	return http.StatusServiceUnavailable, notImplementedText
}

// DeleteRestart implements Actions.
func (NotImplemented) DeleteRestart(context.Context) (int, string) {
	return http.StatusServiceUnavailable, notImplementedText
}

// Reload implements Actions.
func (NotImplemented) Reload(context.Context) (int, string) {
	return http.StatusServiceUnavailable, notImplementedText
}

// Reinitialize implements Actions.
func (NotImplemented) Reinitialize(context.Context, ReinitializeRequest) (int, string) {
	return http.StatusServiceUnavailable, notImplementedText
}

// PatchConfig implements Actions.
func (NotImplemented) PatchConfig(context.Context, map[string]any) (int, []byte) {
	return http.StatusServiceUnavailable, []byte(notImplementedText)
}

// PutConfig implements Actions.
func (NotImplemented) PutConfig(context.Context, map[string]any) (int, []byte) {
	return http.StatusServiceUnavailable, []byte(notImplementedText)
}

// DeleteSwitchover implements Actions.
func (NotImplemented) DeleteSwitchover(context.Context) (int, string) {
	return http.StatusServiceUnavailable, notImplementedText
}

// Failsafe implements Actions.
func (NotImplemented) Failsafe(context.Context, FailsafeRequest) (int, string) {
	return http.StatusServiceUnavailable, notImplementedText
}
