package ha

import (
	"context"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"maps"
	"slices"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Permanent slots (dynamic "slots") live on every node, not only on the
// primary: a replica keeps a copy of each permanent physical slot and moves it
// to the primary's position (never past its own replay point), so that after
// a failover the consumer resumes from the new primary without a WAL gap.
// The primary publishes the positions in the status key's "slots" and, while
// the DCS is lost, in the body of POST /failsafe.

// permanentPhysical lists the permanent physical slots of cfg, sorted,
// without the slot this node's own member name maps to.
func permanentPhysical(cfg cluster.DynamicConfig, self string) []string {
	var names []string
	for name, physical := range permanentSlots(cfg.Raw) {
		if physical && name != cluster.SlotName(self) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// permanentSlotPositions reads the positions of the permanent slots that
// exist on this (primary) node: restart_lsn for physical slots,
// confirmed_flush_lsn for logical ones, as WAL byte offsets. nil when
// slots are off, none are configured or postgres cannot be asked.
func (l *loop) permanentSlotPositions(ctx context.Context, cfg cluster.DynamicConfig) map[string]int64 {
	if !cfg.UseSlots {
		return nil
	}
	names := slices.Sorted(maps.Keys(permanentSlots(cfg.Raw)))
	if len(names) == 0 {
		return nil
	}
	pos, err := l.deps.Postgres.SlotPositions(ctx, names)
	if err != nil {
		l.log.Warn("cannot read the permanent slots' positions", "err", err)
		return nil
	}
	return pos
}

// leaderSlotPositions is where the primary last said its permanent slots
// are: the body of a failsafe primary's POST /failsafe while it is fresh,
// else the status key.
func (l *loop) leaderSlotPositions(o plan.Observation) map[string]int64 {
	l.fsMu.Lock()
	fs := l.fsLeader
	l.fsMu.Unlock()
	if fs.name != "" && o.Now.Before(fs.until) && fs.slots != nil {
		return fs.slots
	}
	if o.View.Status != nil {
		return o.View.Status.Slots
	}
	return nil
}

// keepReplicaSlots runs on a replica each cycle: it creates the permanent
// physical slots it lacks and advances each to the primary's position, capped
// at its own replay point (pg_replication_slot_advance cannot go further).
func (l *loop) keepReplicaSlots(ctx context.Context, o plan.Observation) {
	if !o.Config.UseSlots || o.LeaderIsMe() || !o.PGReady() || !o.PG.InRecovery || o.Paused() {
		return
	}
	names := permanentPhysical(o.Config, o.Name)
	if len(names) == 0 {
		return
	}
	sctx, cancel := shortCtx(ctx, PeerTimeout)
	defer cancel()
	if err := l.deps.Postgres.CreatePhysicalSlots(sctx, names); err != nil {
		l.log.Warn("cannot create the permanent slots on this replica", "slots", names, "err", err)
		return
	}
	want := l.leaderSlotPositions(o)
	for _, name := range names {
		pos, ok := want[name]
		if !ok || pos <= 0 {
			continue
		}
		// Advance only forward, and never past what this replica has replayed.
		if err := l.deps.Postgres.AdvancePhysicalSlot(sctx, name, pos); err != nil {
			l.log.Warn("cannot advance a permanent slot on this replica", "slot", name, "to", pos, "err", err)
		}
	}
}
