package ha

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// leaderDuties is the housekeeping of a healthy primary holding the key, each
// cycle after a successful UpdateLeader: initialize, config, status, failsafe,
// history, the post-promote CHECKPOINT and member slots. Every write is
// leader-guarded or create-only in the Store; failures are logged and retried next cycle.
func (n *Node) leaderDuties(ctx context.Context, o Observation) {
	octx, cancel := n.dcsCtx(ctx) // the DCS writes
	defer cancel()
	pctx, pcancel := n.opCtx(ctx) // the local postgres
	defer pcancel()
	store := n.deps.Store
	sysid := o.PG.SystemID
	if sysid == "" {
		sysid = n.st.sysid
	}
	if sysid != "" && (o.View.Initialize == nil || !validSysID(*o.View.Initialize)) {
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
		if err := n.deps.Postgres.Exec(pctx, "CHECKPOINT"); err != nil {
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
func (n *Node) updateHistory(ctx, pgCtx context.Context, o Observation) {
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
	lines, err := n.readTimelineHistory(pgCtx, tl)
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

// readTimelineHistory reads pg_wal/<TLI>.history over SQL.
func (n *Node) readTimelineHistory(ctx context.Context, tl int) ([]cluster.HistoryEntry, error) {
	rows, err := n.deps.Postgres.Query(ctx, "SELECT pg_catalog.pg_read_file($1)", fmt.Sprintf("pg_wal/%08X.history", tl))
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || len(rows[0]) == 0 {
		return nil, fmt.Errorf("empty result")
	}
	return parseTimelineHistory(rows[0][0]), nil
}

// parseTimelineHistory parses "<parent tli>\t<X/Y>\t<reason>" lines.
func parseTimelineHistory(s string) []cluster.HistoryEntry {
	var out []cluster.HistoryEntry
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		if len(f) < 2 {
			f = strings.Fields(line)
		}
		if len(f) < 2 {
			continue
		}
		tl, err1 := strconv.Atoi(strings.TrimSpace(f[0]))
		lsn, err2 := parseLSN(strings.TrimSpace(f[1]))
		if err1 != nil || err2 != nil {
			continue
		}
		e := cluster.HistoryEntry{Timeline: tl, LSN: int64(lsn)}
		if len(f) > 2 {
			e.Reason = strings.TrimSpace(f[2])
		}
		out = append(out, e)
	}
	return out
}

// parseLSN parses postgres' X/Y notation.
func parseLSN(s string) (cluster.LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("bad LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("bad LSN %q: %w", s, err)
	}
	return cluster.LSN(h<<32 | l), nil
}
