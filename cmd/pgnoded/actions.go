package main

import (
	"context"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha"
	"github.com/pgnoded/pgnoded/internal/restapi"
)

// nodeActions maps the REST API's state-changing endpoints onto the HA node
// (restapi and ha do not know each other). Reload re-reads the config file
// first, as SIGHUP does.
type nodeActions struct {
	node   *ha.Node
	reload func() // schedule a re-read of the config file (never blocks)
}

var _ restapi.Actions = nodeActions{}

func switchoverRequest(r restapi.SwitchoverRequest) ha.SwitchoverRequest {
	return ha.SwitchoverRequest{Leader: r.Leader, Candidate: r.Candidate, ScheduledAt: r.ScheduledAt}
}

// Switchover implements restapi.Actions.
func (a nodeActions) Switchover(ctx context.Context, req restapi.SwitchoverRequest) (cluster.OpResult, error) {
	return a.node.Switchover(ctx, switchoverRequest(req))
}

// Failover implements restapi.Actions.
func (a nodeActions) Failover(ctx context.Context, req restapi.SwitchoverRequest) (cluster.OpResult, error) {
	return a.node.Failover(ctx, switchoverRequest(req))
}

// Restart implements restapi.Actions.
func (a nodeActions) Restart(ctx context.Context, req restapi.RestartRequest) (cluster.OpResult, error) {
	return a.node.Restart(ctx, ha.RestartRequest{Schedule: req.Schedule, Role: req.Role,
		PostgresVersion: req.PostgresVersion, Timeout: req.Timeout, RestartPending: req.RestartPending})
}

// DeleteRestart implements restapi.Actions.
func (a nodeActions) DeleteRestart(ctx context.Context) (cluster.OpResult, error) {
	return a.node.DeleteRestart(ctx)
}

// Reload implements restapi.Actions: accepted at once (202); the supervisor
// re-reads the file as on SIGHUP.
func (a nodeActions) Reload(context.Context) (cluster.OpResult, error) {
	a.reload()
	return cluster.Scheduled("reload scheduled"), nil
}

// Reinitialize implements restapi.Actions.
func (a nodeActions) Reinitialize(ctx context.Context, req restapi.ReinitializeRequest) (cluster.OpResult, error) {
	return a.node.Reinitialize(ctx, ha.ReinitializeRequest{Force: req.Force, FromLeader: req.FromLeader})
}

// PatchConfig implements restapi.Actions.
func (a nodeActions) PatchConfig(ctx context.Context, patch map[string]any) ([]byte, error) {
	return a.node.PatchConfig(ctx, patch)
}

// PutConfig implements restapi.Actions.
func (a nodeActions) PutConfig(ctx context.Context, config map[string]any) ([]byte, error) {
	return a.node.PutConfig(ctx, config)
}

// DeleteSwitchover implements restapi.Actions.
func (a nodeActions) DeleteSwitchover(ctx context.Context) (cluster.OpResult, error) {
	return a.node.DeleteSwitchover(ctx)
}

// Failsafe implements restapi.Actions: a failsafe primary asks this node to confirm it.
func (a nodeActions) Failsafe(ctx context.Context, req restapi.FailsafeRequest) (cluster.OpResult, error) {
	return a.node.Failsafe(ctx, ha.FailsafeRequest{Name: req.Name, ConnURL: req.ConnURL, APIURL: req.APIURL,
		Slots: req.Slots})
}
