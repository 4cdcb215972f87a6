package ha

import (
	"context"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"sort"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// gracefulDemote is the switchover step-down, ordered for the shortest write
// outage that loses nothing acknowledged:
//
//  1. a scheduled switchover is postponed to its exact time;
//  2. CHECKPOINT while writes still flow, so the shutdown checkpoint is quick;
//  3. note the eligible candidates streaming from us (pg_stat_replication);
//  4. drop the VIP and stop fast: postgres writes the shutdown checkpoint and
//     its walsenders exit only after every streaming standby confirmed all of
//     the WAL, so those candidates hold every acknowledged commit;
//  5. publish that we are no longer primary; read the checkpoint location;
//  6. when no candidate was streaming (cascading ones), poll the candidates'
//     /patroni until one reports it, at most max(retry_timeout, 5s); when none
//     does (or postgres did not shut down cleanly) the switchover is aborted:
//     the key is kept and postgres restarts as primary in the next cycle;
//  7. status optime := the checkpoint (the candidate checks it has it), and a
//     request without a candidate names the best streaming one in the failover key;
//  8. release the leader key at once (no pause): the candidate's watch fires
//     and it promotes without asking its peers.
//
// If postgres does not stop, nothing else happens: we stay the leader.
// Decide only asks for it when a candidate streams (or cascades) from us.
func (l *loop) gracefulDemote(ctx context.Context, o plan.Observation, d plan.Decision) {
	candidate := d.Member
	if l.postponeScheduledSwitchover(o) {
		return
	}
	begin := l.now()
	octx, cancel := l.opCtx(ctx)
	if err := l.deps.Postgres.Checkpoint(octx); err != nil {
		l.log.Warn("CHECKPOINT before switchover failed", "err", err)
	}
	cancel()
	streaming := streamingCandidates(o, candidate)
	checkpointed := l.now()
	l.ensureVIP(ctx, false)
	l.demoted()
	if err := l.stopPG(ctx, cluster.StopFast, time.Time{}); err != nil {
		return
	}
	l.fire(d.Callbacks, plan.AfterStop)
	stopped := l.now()
	l.publishNow()
	cctx, cancel := l.opCtx(ctx)
	cd, err := l.deps.Postgres.ControlData(cctx)
	cancel()
	chosen := ""
	switch {
	case err != nil:
		l.log.Error("pg_controldata after the switchover stop failed", "err", err)
	case cd.ClusterState != "shut down":
		l.log.Error("postgres did not shut down cleanly; the end of its WAL is unknown", "state", cd.ClusterState)
	case len(streaming) > 0:
		chosen = streaming[0] // its walsender confirmed the shutdown checkpoint before postgres exited
	default:
		chosen = l.waitForCandidate(ctx, o, candidate, cd.CheckpointLSN)
	}
	if chosen == "" {
		// Handing over now could lose acknowledged commits: keep the key, let the
		// next cycle start postgres again as primary, and fail the request.
		l.log.Error("switchover aborted: no candidate is known to have the shutdown checkpoint; restarting as primary")
		l.st.action = "switchover aborted: no candidate has the shutdown checkpoint"
		l.clearFailover(ctx, o.View)
		return
	}
	sctx, cancel := l.opCtx(ctx)
	if err := l.deps.Store.SetStatus(sctx, cluster.StatusKey{Optime: int64(cd.CheckpointLSN)}); err != nil {
		l.log.Warn("cannot write the status key", "err", err)
	}
	cancel()
	if f := o.View.Failover; candidate == "" && chosen != "" && !f.Empty() {
		// Name the candidate: it then takes over at once instead of racing its peers.
		fctx, cancel := l.opCtx(ctx)
		if _, err := l.deps.Store.SetFailover(fctx, cluster.Failover{Leader: l.cfg.Name, Member: chosen},
			f.ModRevision); err != nil {
			l.log.Warn("cannot name the switchover candidate in the failover key", "err", err)
		}
		cancel()
	}
	l.releaseLock(ctx)
	l.st.pg.switchoverDemotedAt = l.now()
	l.log.Info("stepped down for a switchover", "candidate", chosen, "streaming", streaming,
		"standbys", len(o.PG.Replication), "checkpoint_lsn", uint64(cd.CheckpointLSN),
		"checkpoint", checkpointed.Sub(begin), "stop", stopped.Sub(checkpointed), "handover", l.now().Sub(stopped))
}

// postponeScheduledSwitchover keeps a scheduled switchover for its exact
// time: Decide starts it up to loop_wait early (as Patroni, which then
// sleeps); the loop instead runs a cycle at that time and does it then.
func (l *loop) postponeScheduledSwitchover(o plan.Observation) bool {
	f := o.View.Failover
	if f.Empty() || f.ScheduledAt == "" {
		return false
	}
	at, err := time.Parse(time.RFC3339Nano, f.ScheduledAt)
	if err != nil || !at.After(l.now()) {
		return false
	}
	l.st.sched.wakeAt = at
	l.st.action = "manual failover: awaiting the scheduled time " + f.ScheduledAt
	l.log.Debug(l.st.action)
	return true
}

// streamingCandidates lists the members that may take over (candidate, or
// any when ""), are eligible by their member key and stream from us now, best
// first: furthest flushed, then higher failover_priority, then by name.
func streamingCandidates(o plan.Observation, candidate string) []string {
	type cand struct {
		name     string
		flush    cluster.LSN
		priority int
	}
	var list []cand
	for _, r := range o.PG.Replication {
		name := r.ApplicationName
		if r.State != "streaming" || (candidate != "" && name != candidate) {
			continue
		}
		m, ok := o.Member(name)
		if !ok || !o.CandidateOK(o.WithStreamedPosition(m)) || o.SyncActive() && !o.InSync(name) {
			continue
		}
		list = append(list, cand{name: name, flush: r.FlushLSN, priority: plan.ParseTags(m.Tags).FailoverPriority})
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.flush != b.flush {
			return a.flush > b.flush
		}
		if a.priority != b.priority {
			return a.priority > b.priority
		}
		return a.name < b.name
	})
	out := make([]string, len(list))
	for i, c := range list {
		out[i] = c.name
	}
	return out
}

// waitForCandidate polls the candidates' /patroni until one has received lsn,
// for at most max(retry_timeout, 5s); it returns that candidate, or "".
func (l *loop) waitForCandidate(ctx context.Context, o plan.Observation, candidate string, lsn cluster.LSN) string {
	var ask []cluster.Member
	for name, m := range o.View.Members {
		m.Name = name
		if (candidate == "" || name == candidate) && o.CandidateOK(o.WithStreamedPosition(m)) {
			ask = append(ask, m)
		}
	}
	if len(ask) == 0 {
		return ""
	}
	wctx, cancel := context.WithTimeout(ctx, max(l.st.conf.dyn.RetryTimeoutDuration(), 5*time.Second))
	defer cancel()
	for {
		for _, p := range l.deps.Peers.Status(wctx, ask) {
			if p.Reachable && p.WALPosition >= lsn {
				l.log.Info("switchover candidate has the shutdown checkpoint", "candidate", p.Name, "lsn", uint64(lsn))
				return p.Name
			}
		}
		if !l.sleep(100*time.Millisecond, wctx.Done()) {
			l.log.Warn("no candidate confirmed the shutdown checkpoint in time; releasing the key anyway")
			return ""
		}
	}
}
