package ha

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// slotViewPG is a Postgres holding physical slots, counting its readings of
// pg_replication_slots; failDrop makes DropSlot fail.
type slotViewPG struct {
	Postgres
	slots    map[string]bool // name -> active
	reads    int
	failDrop bool
}

func (p *slotViewPG) ReplicationSlots(context.Context) ([]cluster.ReplicationSlot, error) {
	p.reads++
	var out []cluster.ReplicationSlot
	for _, name := range slices.Sorted(maps.Keys(p.slots)) {
		out = append(out, cluster.ReplicationSlot{Name: name, Type: "physical", Active: p.slots[name]})
	}
	return out, nil
}

func (p *slotViewPG) CreatePhysicalSlots(_ context.Context, names []string) error {
	for _, n := range names {
		if _, ok := p.slots[n]; !ok {
			p.slots[n] = false
		}
	}
	return nil
}

func (p *slotViewPG) DropSlot(_ context.Context, name string) error {
	if p.failDrop {
		return errors.New("replication slot is active")
	}
	delete(p.slots, name)
	return nil
}

// TestSyncSlotsTrustsItsReading: the primary reads pg_replication_slots once,
// then works from that reading kept up to date with its own creates and drops,
// until slotsTrust passes, postgres restarts or is promoted, it acquires the
// leader key again, or a create or drop fails.
func TestSyncSlotsTrustsItsReading(t *testing.T) {
	pg := &slotViewPG{slots: map[string]bool{}}
	clk := &fakeClockNow{t: t0}
	n := newLoop(Config{Name: "pg1", Now: clk.now}, Deps{Postgres: pg})
	o := newObs(iLead, cfg(func(c *cluster.DynamicConfig) { c.UseSlots = true }))
	ctx := context.Background()
	want := func(step string, reads int, slots ...string) {
		t.Helper()
		if pg.reads != reads {
			t.Errorf("%s: %d readings of pg_replication_slots, want %d", step, pg.reads, reads)
		}
		if got := slices.Sorted(maps.Keys(pg.slots)); !slices.Equal(got, slots) {
			t.Errorf("%s: slots %v, want %v", step, got, slots)
		}
	}

	n.syncSlots(ctx, o)
	want("first cycle", 1, "pg2", "pg3")
	for range 5 {
		clk.t = clk.t.Add(2 * time.Second)
		n.syncSlots(ctx, o)
	}
	want("idle cycles", 1, "pg2", "pg3")

	// A new member gets its slot from the cached reading; a member gone loses
	// its (inactive) slot the same way.
	o4 := newObs(iLead, cfg(func(c *cluster.DynamicConfig) { c.UseSlots = true }), func(o *plan.Observation) {
		o.View.Members["pg4"] = cluster.Member{Name: "pg4", State: "running", Role: "replica"}
		delete(o.View.Members, "pg3")
	})
	n.syncSlots(ctx, o4)
	want("member change", 1, "pg2", "pg4")
	n.syncSlots(ctx, o4)
	want("member change settled", 1, "pg2", "pg4")

	// A slot dropped by hand comes back once the reading is older than slotsTrust.
	delete(pg.slots, "pg4")
	clk.t = clk.t.Add(slotsTrust)
	n.syncSlots(ctx, o4)
	want("after slotsTrust", 2, "pg2", "pg4")

	// A restarted postmaster, a new timeline or a new hold of the key: read again.
	o4.PG.PostmasterStartTime = clk.t
	n.syncSlots(ctx, o4)
	want("postmaster restarted", 3, "pg2", "pg4")
	o4.PG.Timeline = 2
	n.syncSlots(ctx, o4)
	want("promoted", 4, "pg2", "pg4")
	n.st.lease.acquiredAt = clk.t
	n.syncSlots(ctx, o4)
	want("leader key acquired again", 5, "pg2", "pg4")

	// A failed drop makes the next cycle read the view again.
	pg.slots["stray"] = false
	clk.t = clk.t.Add(slotsTrust)
	pg.failDrop = true
	n.syncSlots(ctx, o4)
	want("drop failed", 6, "pg2", "pg4", "stray")
	pg.failDrop = false
	n.syncSlots(ctx, o4)
	want("drop retried", 7, "pg2", "pg4")
	n.syncSlots(ctx, o4)
	want("settled again", 7, "pg2", "pg4")
}
