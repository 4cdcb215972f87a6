package ha

import (
	"context"
	"maps"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// The nosync dance (Patroni's while_not_sync_standby, ha.py; the contract's
// synchronous replication section): a synchronous standby that is going to
// restart or stop postgres first publishes the tag nosync: true (4.x also
// sync_priority: 0) in its member key, so that the primary picks another
// standby, and waits up to 2×loop_wait for the primary to drop it from the
// sync key. It is only a hint: when the member key cannot be written or the
// DCS cannot be read, the restart or stop goes ahead at once, and it goes
// ahead when the wait runs out. The wait ends on the sync key changing (a
// DCS change runs a cycle, evaluateSyncRelease), never on a sleep. The tag is
// withdrawn when the restart's start has ended (endSyncRelease); a stop
// leaves it, since the member key goes with the lease.

// syncRelease is a restart waiting for this node's release from sync duty, or
// (started) running after it.
type syncRelease struct {
	until   time.Time // restart anyway then
	req     RestartRequest
	reply   chan opReply // the API caller, or nil (a scheduled restart)
	started bool         // the restart was launched; the tag stays until its start ends
}

// wantsSyncRelease: synchronous mode is on outside a standby cluster, this
// node does not hold the leader key and is not configured nosync.
func (l *loop) wantsSyncRelease() bool {
	cfg := l.st.conf.dyn
	return cfg.SynchronousMode && !cluster.IsStandbyCluster(&cfg) && !l.holdsKey() &&
		!plan.ParseTags(l.configTags()).NoSync
}

// memberTags are the configured tags plus, while this node asks to be
// released from sync duty, nosync: true (and sync_priority: 0 under 4.x, as
// Patroni 4.x's get_effective_tags): what the member key and /patroni show.
func (l *loop) memberTags() map[string]any {
	tags := l.configTags()
	if l.st.sched.release == nil {
		return tags
	}
	out := make(map[string]any, len(tags)+2)
	maps.Copy(out, tags)
	out[cluster.TagNoSync] = true
	if l.cfg.Compat == cluster.Compat4 {
		out[cluster.TagSyncPriority] = 0
	}
	return out
}

// isSyncStandby is Patroni's is_sync_standby: the sync key belongs to the
// current leader and lists name.
func isSyncStandby(v cluster.View, name string, c cluster.Compat) bool {
	if v.Leader == nil || v.Sync == nil {
		return false
	}
	owner := v.Sync.Leader == v.Leader.Name || c == cluster.Compat4 && strings.EqualFold(v.Sync.Leader, v.Leader.Name)
	return owner && v.Sync.Lists(name, c)
}

// beginSyncRelease publishes the nosync tag for a restart and reports
// whether the restart must wait for the primary (true), or may run now:
// the member key could not be written, or the sync key does not list us.
func (l *loop) beginSyncRelease(ctx context.Context, req RestartRequest, reply chan opReply) bool {
	wait := 2 * l.st.conf.dyn.LoopWaitDuration()
	l.st.sched.release = &syncRelease{until: l.now().Add(wait), req: req, reply: reply}
	if !l.publishNoSync(ctx) {
		return false
	}
	if !isSyncStandby(l.deps.Store.View(), l.cfg.Name, l.cfg.Compat) {
		return false
	}
	l.log.Info("Waiting for primary to release us from synchronous standby", "at_most", wait)
	return true
}

// publishNoSync publishes the snapshot (/patroni shows the tag from now on,
// as Patroni's get_effective_tags does once _disable_sync is raised) and
// writes the member key with the nosync tag; false (logged) when the key
// cannot be written.
func (l *loop) publishNoSync(ctx context.Context) bool {
	l.publish()
	m := plan.Settle(l.settleState()).Member
	if m == nil {
		l.log.Warn("Updating member state failed, skipping synchronous standby disable", "err", "the DCS is not usable")
		return false
	}
	octx, cancel := l.opCtx(ctx)
	defer cancel()
	if err := l.deps.Store.TouchMember(octx, *m); err != nil {
		l.log.Warn("Updating member state failed, skipping synchronous standby disable", "err", err)
		return false
	}
	return true
}

// evaluateSyncRelease runs a restart waiting for our release from sync duty
// once the sync key no longer lists us, the DCS cannot be read, or the wait
// (2×loop_wait) is over.
func (l *loop) evaluateSyncRelease(ctx context.Context) {
	r := l.st.sched.release
	if r == nil || r.started {
		return
	}
	switch {
	case !l.st.lease.dcsOK:
		l.log.Warn("Could not get cluster state, skipping synchronous standby disable")
	case !isSyncStandby(l.st.lease.view, l.cfg.Name, l.cfg.Compat):
		l.log.Info("released from synchronous standby duty; restarting")
	case !l.now().Before(r.until):
		l.log.Warn("the primary did not release us from synchronous standby within 2×loop_wait; restarting anyway")
	default:
		return
	}
	if err := l.runReleasedRestart(ctx); err != nil {
		replyTo(r.reply, cluster.OpResult{}, err)
	}
}

// runReleasedRestart launches the restart that asked for release from sync
// duty (released, or not waiting); the request is forgotten when it could not
// be launched, and the error is the caller's to answer.
func (l *loop) runReleasedRestart(ctx context.Context) error {
	r := l.st.sched.release
	r.started = true
	err := l.restartPG(ctx, r.req, r.reply)
	if err != nil {
		l.st.sched.release = nil
	}
	return err
}

// endSyncRelease withdraws the nosync tag after the restart's start ended;
// the member key is rewritten at the end of the cycle that follows.
func (l *loop) endSyncRelease() {
	if l.st.sched.release != nil {
		l.st.sched.release = nil
		l.log.Info("restart done; withdrawing the nosync tag")
	}
}

// releaseSyncForStop is the dance before a clean stop of postgres (Shutdown):
// the loop no longer runs, so the wait is on the Store's Changed channel.
func (l *loop) releaseSyncForStop(ctx context.Context) {
	if !l.wantsSyncRelease() {
		return
	}
	wait := 2 * l.st.conf.dyn.LoopWaitDuration()
	l.st.sched.release = &syncRelease{until: l.now().Add(wait), started: true}
	if !l.publishNoSync(ctx) {
		return
	}
	t := l.clock.NewTimer(wait)
	defer t.Stop()
	for logged := false; ; logged = true {
		v := l.deps.Store.View()
		if !v.Valid(l.now(), l.st.conf.dyn.TTLDuration()) {
			l.log.Warn("Could not get cluster state, skipping synchronous standby disable")
			return
		}
		if !isSyncStandby(v, l.cfg.Name, l.cfg.Compat) {
			if logged {
				l.log.Info("released from synchronous standby duty; stopping postgres")
			}
			return
		}
		if !logged {
			l.log.Info("Waiting for primary to release us from synchronous standby", "at_most", wait)
		}
		select {
		case <-l.deps.Store.Changed():
			l.eventDone()
		case <-t.C():
			l.eventDone()
			l.log.Warn("the primary did not release us from synchronous standby within 2×loop_wait; stopping anyway")
			return
		case <-ctx.Done():
			return
		}
	}
}
