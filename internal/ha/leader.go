package ha

import (
	"context"
	"sort"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// restoreClusterKeys writes the initialize key (our system identifier) and
// the config key (bootstrap.dcs) when they are missing: the duty of whoever
// holds the leader key, primary or standby leader.
func (l *loop) restoreClusterKeys(ctx context.Context, o plan.Observation) {
	sysid := o.PG.SystemID
	if sysid == "" {
		sysid = l.st.pg.sysid
	}
	if sysid != "" && (o.View.Initialize == nil || !plan.ValidSysID(*o.View.Initialize)) {
		if err := l.deps.Store.SetInitialize(ctx, sysid); err != nil {
			l.log.Warn("cannot write the initialize key", "err", err)
		}
	}
	if o.View.Config == nil && len(o.View.ConfigRaw) == 0 {
		if _, err := l.deps.Store.SetConfig(ctx, l.bootstrapConfigJSON(), 0); err != nil {
			l.log.Warn("cannot write the config key", "err", err)
		}
	}
}

// leaderDuties is the housekeeping of a healthy primary holding the key, each
// cycle after a successful UpdateLeader: initialize, config, status, failsafe,
// history, synchronous replication (sync, the sync key and synchronous_standby_names),
// the post-promote CHECKPOINT and member slots. Every write is
// leader-guarded or create-only in the Store; failures are logged and retried next cycle.
func (l *loop) leaderDuties(ctx context.Context, o plan.Observation, sync plan.SyncStep) {
	octx, cancel := l.dcsCtx(ctx) // the DCS writes
	defer cancel()
	pctx, pcancel := l.opCtx(ctx) // the local postgres
	defer pcancel()
	store := l.deps.Store
	l.restoreClusterKeys(octx, o)
	status := cluster.StatusKey{Optime: int64(o.PG.WALPosition()), Slots: l.permanentSlotPositions(pctx, o.Config)}
	if err := store.SetStatus(octx, status); err != nil {
		l.log.Warn("cannot write the status key", "err", err)
	}
	if o.Config.FailsafeMode {
		// For a ttl after taking the key, keep the members the key already names.
		justTook := l.now().Sub(l.st.lease.acquiredAt) < l.st.conf.dyn.TTLDuration()
		fs := failsafeMembers(l.cfg.Name, l.cfg.APIURL, &o.View, justTook)
		if err := store.SetFailsafe(octx, fs); err != nil {
			l.log.Warn("cannot write the failsafe key", "err", err)
		}
	} else if o.View.Failsafe != nil {
		// failsafe_mode was turned off: a stale key would keep members it
		// does not name from ever becoming leader should the mode come back.
		if err := store.SetFailsafe(octx, nil); err != nil {
			l.log.Warn("cannot delete the failsafe key", "err", err)
		} else {
			l.log.Info("failsafe key deleted: failsafe_mode is off")
		}
	}
	l.applySync(octx, o, sync)
	l.updateHistory(octx, pctx, o)
	if l.st.pg.checkpointPending {
		if err := l.deps.Postgres.Checkpoint(pctx); err != nil {
			l.log.Warn("CHECKPOINT after promote failed; retrying next cycle", "err", err)
		} else {
			l.st.pg.checkpointPending = false
		}
	}
	if o.Config.UseSlots {
		l.syncSlots(pctx, o)
	}
}

// updateHistory appends the timeline switch that made us primary to the
// history key, from the new timeline's history file (Patroni's layout).
func (l *loop) updateHistory(ctx, pgCtx context.Context, o plan.Observation) {
	tl := o.PG.Timeline
	if tl <= 1 || o.View.Timeline() >= tl {
		return
	}
	have := map[int]bool{}
	entries := append([]cluster.HistoryEntry(nil), o.View.History...)
	for _, h := range entries {
		have[h.Timeline] = true
	}
	now := pyfmt.Isoformat(l.now(), 'T')
	lines, err := l.deps.Postgres.TimelineHistory(pgCtx, tl)
	if err != nil || len(lines) == 0 {
		l.log.Warn("cannot read the timeline history file; recording the switch without its LSN", "timeline", tl, "err", err)
		lines = []cluster.HistoryEntry{{Timeline: tl - 1, Reason: "no recovery target specified"}}
	}
	for i, e := range lines {
		if have[e.Timeline] {
			continue
		}
		if i == len(lines)-1 {
			e.Timestamp, e.NewLeader = now, l.cfg.Name
		}
		entries = append(entries, e)
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Timeline < entries[j].Timeline })
	if k := o.Config.MaxTimelinesHistory; k > 0 && len(entries) > k {
		entries = entries[len(entries)-k:]
	}
	if err := l.deps.Store.SetHistory(ctx, entries); err != nil {
		l.log.Warn("cannot write the history key", "err", err)
	}
}

// failsafeMembers is what a leader writes to the failsafe key: itself and
// every member key with an API URL. With keepNamed (for a ttl after it took
// the leader key) it also keeps the members the key already names whose
// member keys are not back: after a DCS outage every lease has expired, and a
// primary that took the key again and wrote it before its replicas
// re-registered would name itself alone; dying then, it would leave every
// replica "not listed in the failsafe key", unable to take over. A member that
// does not come back within the ttl is dropped by the next write after it.
func failsafeMembers(self, selfURL string, v *cluster.View, keepNamed bool) map[string]string {
	fs := map[string]string{self: selfURL}
	for name, m := range v.Members {
		if m.APIURL != "" {
			fs[name] = m.APIURL
		}
	}
	if keepNamed {
		for name, url := range v.Failsafe {
			if _, ok := fs[name]; !ok {
				fs[name] = url
			}
		}
	}
	return fs
}
