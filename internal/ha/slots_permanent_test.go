package ha

import (
	"context"
	"fmt"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// slotPG is a Postgres that records the slot calls and answers SlotPositions.
type slotPG struct {
	Postgres
	positions map[string]int64
	asked     [][]string // the names of every SlotPositions call
	calls     []string   // "create [names]", "advance name 0xpos"
}

func (p *slotPG) SlotPositions(_ context.Context, names []string) (map[string]int64, error) {
	p.asked = append(p.asked, names)
	return p.positions, nil
}

func (p *slotPG) CreatePhysicalSlots(_ context.Context, names []string) error {
	p.calls = append(p.calls, fmt.Sprintf("create %v", names))
	return nil
}

func (p *slotPG) AdvancePhysicalSlot(_ context.Context, name string, pos int64) error {
	p.calls = append(p.calls, fmt.Sprintf("advance %s %#x", name, pos))
	return nil
}

// withPermanentSlots turns slots on with the permanent slots named (physical unless "logical:" prefixed).
func withPermanentSlots(names ...string) fx {
	return cfg(func(c *cluster.DynamicConfig) {
		c.UseSlots = true
		slots := map[string]any{}
		for _, n := range names {
			if l, ok := strings.CutPrefix(n, "logical:"); ok {
				slots[l] = map[string]any{"type": "logical", "database": "postgres", "plugin": "pgoutput"}
			} else {
				slots[n] = map[string]any{"type": "physical"}
			}
		}
		c.Raw = map[string]any{"slots": slots}
	})
}

func TestPermanentSlotPositions(t *testing.T) {
	pg := &slotPG{positions: map[string]int64{"perm_a": 50331744}}
	n := newLoop(Config{Name: "pg1"}, Deps{Postgres: pg})
	if got := n.permanentSlotPositions(context.Background(), newObs().Config); got != nil || len(pg.asked) != 0 {
		t.Fatalf("slots off: %v after %d queries, want nil and none", got, len(pg.asked))
	}
	o := newObs(withPermanentSlots("perm_a", "logical:perm_l"))
	got := n.permanentSlotPositions(context.Background(), o.Config)
	if len(got) != 1 || got["perm_a"] != 50331744 {
		t.Errorf("positions = %v, want perm_a only", got)
	}
	if len(pg.asked) != 1 || !slices.Equal(pg.asked[0], []string{"perm_a", "perm_l"}) {
		t.Errorf("asked for %q, want both permanent slots, sorted", pg.asked)
	}
}

func TestKeepReplicaSlots(t *testing.T) {
	newNode := func() (*loop, *slotPG, *fakeClockNow) {
		pg := &slotPG{}
		clk := &fakeClockNow{t: t0}
		n := newLoop(Config{Name: "pg1", Now: clk.now}, Deps{Postgres: pg})
		return n, pg, clk
	}
	// pg_1 (this node's own member slot) and logical slots are never kept on a replica.
	o := newObs(withPermanentSlots("perm_a", "pg1", "logical:perm_l"), func(o *plan.Observation) {
		o.View.Status = &cluster.StatusKey{Optime: 2000, Slots: map[string]int64{"perm_a": 0x1000}}
	})
	n, pg, clk := newNode()
	n.keepReplicaSlots(context.Background(), o)
	if want := []string{"create [perm_a]", "advance perm_a 0x1000"}; !slices.Equal(pg.calls, want) {
		t.Fatalf("calls = %q, want %q: create, then advance to the status key's position", pg.calls, want)
	}

	// A failsafe primary's POST /failsafe overrides the status key for ttl.
	s := *faceOf(n).Snapshot()
	s.TTL = 10 * time.Second
	s.Role, s.PG = cluster.RoleReplica, cluster.PGObservation{Running: true, Ready: true, InRecovery: true}
	n.snap.Store(&s)
	if kind, _ := opOutcome(faceOf(n).Failsafe(context.Background(), FailsafeRequest{Name: "pg2", Slots: map[string]int64{"perm_a": 0x2000}})); kind != "done" {
		t.Fatalf("replica refused POST /failsafe: %s", kind)
	}
	pg.calls = nil
	n.keepReplicaSlots(context.Background(), o)
	if len(pg.calls) != 2 || pg.calls[1] != "advance perm_a 0x2000" {
		t.Errorf("calls %q, want an advance to the failsafe body's 0x2000", pg.calls)
	}
	clk.t = t0.Add(11 * time.Second)
	o.Now = clk.t
	pg.calls = nil
	n.keepReplicaSlots(context.Background(), o)
	if len(pg.calls) != 2 || pg.calls[1] != "advance perm_a 0x1000" {
		t.Errorf("after ttl: calls %q, want an advance to the status key's 0x1000 again", pg.calls)
	}

	// Nothing to do: on the leader, a primary, slots off, no permanent physical slot, a stopped postgres.
	for name, mod := range map[string]fx{
		"leader":      iLead,
		"slots off":   cfg(func(c *cluster.DynamicConfig) { c.UseSlots = false }),
		"no physical": withPermanentSlots("logical:perm_l"),
		"pg down":     pgDown("stopped"),
	} {
		n, pg, _ := newNode()
		oo := newObs(withPermanentSlots("perm_a"), mod)
		n.keepReplicaSlots(context.Background(), oo)
		if len(pg.calls) != 0 {
			t.Errorf("%s: calls %q, want none", name, pg.calls)
		}
	}
}
