package ha

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// Restarts requested through the API (Patroni's api.py do_POST_restart, ha.py
// restart and schedule_future_restart): now, with
// the caller waiting for postgres to come back, or scheduled, executed by the
// loop when due and published in the member key as scheduled_restart.

// restartFacts are what the restart filters look at.
type restartFacts struct {
	role           cluster.Role
	serverVersion  int // e.g. 150008; 0 unknown
	pendingRestart bool
}

// restartMatches is Patroni's restart_matches: every filter given must hold.
// It returns the reason to refuse, "" when the restart may go ahead.
func restartMatches(f restartFacts, req RestartRequest) string {
	if req.Role != "" && !roleMatches(req.Role, f.role) {
		return "host role mismatch"
	}
	if req.PostgresVersion != "" {
		want, err := postgresVersionToInt(req.PostgresVersion)
		if err != nil || want <= f.serverVersion {
			return "postgres version mismatch"
		}
	}
	if req.RestartPending && !f.pendingRestart {
		return "pending restart flag is not set"
	}
	return ""
}

func roleMatches(want string, have cluster.Role) bool {
	switch want {
	case "master", "primary":
		return have == cluster.RolePrimary
	case "replica":
		return have == cluster.RoleReplica
	case "standby_leader":
		return have == cluster.RoleStandbyLeader
	}
	return false
}

// postgresVersionToInt turns X.Y (X ≥ 10) or X.Y.Z into server_version_num
// form: 15.8 → 150008, 9.6.3 → 90603.
func postgresVersionToInt(v string) (int, error) {
	parts := strings.Split(v, ".")
	nums := make([]int, 0, 3)
	for _, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid PostgreSQL version: %s", v)
		}
		nums = append(nums, n)
	}
	if len(nums) < 2 || len(nums) == 2 && nums[0] < 10 || len(nums) > 3 {
		return 0, fmt.Errorf("invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: %s", v)
	}
	if len(nums) == 2 {
		nums = []int{nums[0], 0, nums[1]}
	}
	return nums[0]*10000 + nums[1]*100 + nums[2], nil
}

// scheduleRestart stores a future restart (one at a time).
func (l *loop) scheduleRestart(req *opRequest) {
	if l.st.sched.restart != nil {
		replyTo(req.reply, cluster.OpResult{}, cluster.Refuse(cluster.OpConflict, "Another restart is already scheduled"))
		return
	}
	l.st.sched.restart = &scheduledRestart{req: req.restart, pmStart: l.st.pg.obs.PostmasterStartTime}
	l.log.Info("restart scheduled", "at", req.restart.Schedule)
	replyTo(req.reply, cluster.Scheduled("Restart scheduled"), nil)
	l.publish()
}

// restartNow stops postgres fast and starts it again in its role. It returns
// nil when the restart was launched: reply is answered when the start ends.
// A synchronous standby first asks to be released from sync duty
// (beginSyncRelease): the restart then waits for the primary to drop it from
// the sync key, at most 2×loop_wait.
func (l *loop) restartNow(ctx context.Context, req RestartRequest, reply chan opReply) error {
	facts := restartFacts{role: l.st.role, serverVersion: l.st.pg.obs.ServerVersion, pendingRestart: l.st.pg.obs.PendingRestart}
	if why := restartMatches(facts, req); why != "" {
		l.log.Info("not proceeding with the restart", "reason", why)
		return cluster.Refuse(cluster.OpUnavailable, "restart conditions are not satisfied")
	}
	if run := l.st.long.run; run != nil {
		return cluster.Refusef(cluster.OpUnavailable, "%s already in progress", run.kind)
	}
	if l.st.sched.release != nil {
		return cluster.Refuse(cluster.OpUnavailable, "restart already in progress")
	}
	if l.wantsSyncRelease() {
		if l.beginSyncRelease(ctx, req, reply) {
			return nil // evaluateSyncRelease restarts once released
		}
		return l.runReleasedRestart(ctx)
	}
	return l.restartPG(ctx, req, reply)
}

// restartPG is the restart itself: stop fast, start again in the role the node has.
func (l *loop) restartPG(ctx context.Context, req RestartRequest, reply chan opReply) error {
	if run := l.st.long.run; run != nil {
		return cluster.Refusef(cluster.OpUnavailable, "%s already in progress", run.kind)
	}
	pg := l.st.pg.obs
	asReplica := !l.holdsKey() || pg.Running && pg.Ready && pg.InRecovery
	l.log.Info("restarting postgres on request", "as_replica", asReplica, "timeout", req.Timeout)
	if pg.Running {
		if err := l.stopPG(ctx, cluster.StopFast, time.Time{}); err != nil {
			return errRestartFailed
		}
	}
	o := l.opObservation()
	target := plan.FollowTarget(o)
	if l.st.pg.upstream.Known {
		target = l.st.pg.upstream.Name
	}
	delete(l.st.long.failedAt, plan.LongStartPrimary)
	delete(l.st.long.failedAt, plan.LongStartReplica)
	role := l.st.role
	l.launchStartTimeout(ctx, o, asReplica, target, req.Timeout)
	run := l.st.long.run
	if run == nil {
		return errRestartFailed
	}
	run.waiter = reply
	run.endsSyncRelease = l.st.sched.release != nil
	// Patroni's restart fires on_restart only (no on_stop, no on_start), with the role it had.
	run.callbacks = []plan.PlannedCallback{{Callback: cluster.OnRestart, Role: role, After: plan.AfterStart}}
	l.st.sched.recycle = true
	return nil
}

// errRestartFailed answers a restart whose stop or start failed.
var errRestartFailed = cluster.Refuse(cluster.OpFailed, "restart failed")

// evaluateScheduledRestart runs a scheduled restart when it is due: cancelled
// if postgres was restarted meanwhile, dropped when more than 1.5×loop_wait
// late, held while paused or while a long action runs.
func (l *loop) evaluateScheduledRestart(ctx context.Context) {
	s := l.st.sched.restart
	if s == nil || l.st.long.run != nil || l.st.conf.dyn.Pause {
		return
	}
	if pm := l.st.pg.obs.PostmasterStartTime; !pm.IsZero() && !s.pmStart.IsZero() && !pm.Equal(s.pmStart) {
		l.log.Info("cancelling scheduled restart: postgres restarted meanwhile", "postmaster_start_time", pm)
		l.st.sched.restart = nil
		return
	}
	delta := s.req.Schedule.Sub(l.now())
	if delta > 0 {
		return // the loop wakes up at the scheduled time (nextWake)
	}
	l.st.sched.restart = nil
	if lw := l.st.conf.dyn.LoopWaitDuration(); delta < -lw*3/2 {
		l.log.Warn("found a stale scheduled restart, cleaning up", "at", s.req.Schedule)
		return
	}
	l.log.Info("running the scheduled restart", "at", s.req.Schedule)
	if err := l.restartNow(ctx, s.req, nil); err != nil {
		l.log.Warn("scheduled restart not done", "reason", err.Error())
	}
}

// scheduledRestartDoc is the scheduled_restart object of the member key and the
// snapshot: schedule (isoformat), postmaster_start_time and the filters given.
func scheduledRestartDoc(s *scheduledRestart) map[string]any {
	if s == nil {
		return nil
	}
	m := map[string]any{"schedule": pyfmt.Isoformat(s.req.Schedule, 'T')}
	if !s.pmStart.IsZero() {
		m["postmaster_start_time"] = pyfmt.Isoformat(s.pmStart, ' ')
	}
	if s.req.Role != "" {
		m["role"] = s.req.Role
	}
	if s.req.PostgresVersion != "" {
		m["postgres_version"] = s.req.PostgresVersion
	}
	if s.req.Timeout > 0 {
		m["timeout"] = int64(s.req.Timeout / time.Second)
	}
	if s.req.RestartPending {
		m["restart_pending"] = true
	}
	return m
}
