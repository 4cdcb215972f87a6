package ha

import (
	"context"
	"sort"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// leaderDuties is the housekeeping of a healthy primary holding the key, each
// cycle after a successful UpdateLeader: initialize, config, status, failsafe,
// history, the post-promote CHECKPOINT and member slots. Every write is
// leader-guarded or create-only in the Store; failures are logged and retried next cycle.
func (n *Node) leaderDuties(ctx context.Context, o plan.Observation) {
	octx, cancel := n.dcsCtx(ctx) // the DCS writes
	defer cancel()
	pctx, pcancel := n.opCtx(ctx) // the local postgres
	defer pcancel()
	store := n.deps.Store
	sysid := o.PG.SystemID
	if sysid == "" {
		sysid = n.st.sysid
	}
	if sysid != "" && (o.View.Initialize == nil || !plan.ValidSysID(*o.View.Initialize)) {
		if err := store.SetInitialize(octx, sysid); err != nil {
			n.log.Warn("cannot write the initialize key", "err", err)
		}
	}
	if o.View.Config == nil && len(o.View.ConfigRaw) == 0 {
		if _, err := store.SetConfig(octx, n.bootstrapConfigJSON(), 0); err != nil {
			n.log.Warn("cannot write the config key", "err", err)
		}
	}
	status := cluster.StatusKey{Optime: int64(o.PG.WALPosition()), Slots: n.permanentSlotPositions(pctx, o.Config)}
	if err := store.SetStatus(octx, status); err != nil {
		n.log.Warn("cannot write the status key", "err", err)
	}
	if o.Config.FailsafeMode {
		fs := map[string]string{n.cfg.Name: n.cfg.APIURL}
		for name, m := range o.View.Members {
			if m.APIURL != "" {
				fs[name] = m.APIURL
			}
		}
		if err := store.SetFailsafe(octx, fs); err != nil {
			n.log.Warn("cannot write the failsafe key", "err", err)
		}
	} else if o.View.Failsafe != nil {
		// failsafe_mode was turned off: a stale key would keep members it
		// does not name from ever becoming leader should the mode come back.
		if err := store.SetFailsafe(octx, nil); err != nil {
			n.log.Warn("cannot delete the failsafe key", "err", err)
		} else {
			n.log.Info("failsafe key deleted: failsafe_mode is off")
		}
	}
	n.updateHistory(octx, pctx, o)
	if n.st.checkpointPending {
		if err := n.deps.Postgres.Checkpoint(pctx); err != nil {
			n.log.Warn("CHECKPOINT after promote failed; retrying next cycle", "err", err)
		} else {
			n.st.checkpointPending = false
		}
	}
	if o.Config.UseSlots {
		n.syncSlots(pctx, o)
	}
}

// updateHistory appends the timeline switch that made us primary to the
// history key, from the new timeline's history file (Patroni's layout).
func (n *Node) updateHistory(ctx, pgCtx context.Context, o plan.Observation) {
	tl := o.PG.Timeline
	if tl <= 1 || o.View.Timeline() >= tl {
		return
	}
	have := map[int]bool{}
	entries := append([]cluster.HistoryEntry(nil), o.View.History...)
	for _, h := range entries {
		have[h.Timeline] = true
	}
	now := pyfmt.Isoformat(n.now(), 'T')
	lines, err := n.deps.Postgres.TimelineHistory(pgCtx, tl)
	if err != nil || len(lines) == 0 {
		n.log.Warn("cannot read the timeline history file; recording the switch without its LSN", "timeline", tl, "err", err)
		lines = []cluster.HistoryEntry{{Timeline: tl - 1, Reason: "no recovery target specified"}}
	}
	for i, l := range lines {
		if have[l.Timeline] {
			continue
		}
		if i == len(lines)-1 {
			l.Timestamp, l.NewLeader = now, n.cfg.Name
		}
		entries = append(entries, l)
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Timeline < entries[j].Timeline })
	if k := o.Config.MaxTimelinesHistory; k > 0 && len(entries) > k {
		entries = entries[len(entries)-k:]
	}
	if err := n.deps.Store.SetHistory(ctx, entries); err != nil {
		n.log.Warn("cannot write the history key", "err", err)
	}
}
