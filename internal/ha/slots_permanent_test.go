package ha

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// slotPG is a Postgres that records statements and answers the slot-position query.
type slotPG struct {
	Postgres
	rows    [][]string
	queries []string
	execs   []string
	args    [][]any
}

func (p *slotPG) Query(_ context.Context, sql string, _ ...any) ([][]string, error) {
	p.queries = append(p.queries, sql)
	return p.rows, nil
}

func (p *slotPG) Exec(_ context.Context, sql string, args ...any) error {
	p.execs = append(p.execs, sql)
	p.args = append(p.args, args)
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

func TestLSNText(t *testing.T) {
	for pos, want := range map[int64]string{0: "0/0", 0x3000060: "0/3000060", 0x16B374D848: "16/B374D848"} {
		if got := lsnText(pos); got != want {
			t.Errorf("lsnText(%#x) = %q, want %q", pos, got, want)
		}
	}
}

func TestPermanentSlotPositions(t *testing.T) {
	pg := &slotPG{rows: [][]string{{"perm_a", "50331744"}, {"broken", "x"}, {"zero", "0"}, {"short"}}}
	n := New(Config{Name: "pg1"}, Deps{Postgres: pg})
	if got := n.permanentSlotPositions(context.Background(), newObs().Config); got != nil || len(pg.queries) != 0 {
		t.Fatalf("slots off: %v after %d queries, want nil and none", got, len(pg.queries))
	}
	o := newObs(withPermanentSlots("perm_a", "logical:perm_l"))
	got := n.permanentSlotPositions(context.Background(), o.Config)
	if len(got) != 1 || got["perm_a"] != 50331744 {
		t.Errorf("positions = %v, want perm_a only", got)
	}
	if len(pg.queries) != 1 || !strings.Contains(pg.queries[0], "confirmed_flush_lsn") {
		t.Errorf("queries = %q", pg.queries)
	}
}

func TestKeepReplicaSlots(t *testing.T) {
	newNode := func() (*Node, *slotPG, *fakeClockNow) {
		pg := &slotPG{}
		clk := &fakeClockNow{t: t0}
		n := New(Config{Name: "pg1", Now: clk.now}, Deps{Postgres: pg})
		return n, pg, clk
	}
	// pg_1 (this node's own member slot) and logical slots are never kept on a replica.
	o := newObs(withPermanentSlots("perm_a", "pg1", "logical:perm_l"), func(o *Observation) {
		o.View.Status = &cluster.StatusKey{Optime: 2000, Slots: map[string]int64{"perm_a": 0x1000}}
	})
	n, pg, clk := newNode()
	n.keepReplicaSlots(context.Background(), o)
	if len(pg.execs) != 2 {
		t.Fatalf("execs = %q, want create then advance", pg.execs)
	}
	if names := pg.args[0][0].([]string); len(names) != 1 || names[0] != "perm_a" {
		t.Errorf("created %v, want [perm_a]", names)
	}
	if pg.args[1][0] != "perm_a" || pg.args[1][1] != "0/1000" {
		t.Errorf("advance args %v, want perm_a to the status key's 0/1000", pg.args[1])
	}

	// A failsafe primary's POST /failsafe overrides the status key for ttl.
	s := *n.Snapshot()
	s.TTL = 10 * time.Second
	s.Role, s.PG = cluster.RoleReplica, cluster.PGObservation{Running: true, Ready: true, InRecovery: true}
	n.snap.Store(&s)
	if kind, _ := opOutcome(n.Failsafe(context.Background(), FailsafeRequest{Name: "pg2", Slots: map[string]int64{"perm_a": 0x2000}})); kind != "done" {
		t.Fatalf("replica refused POST /failsafe: %s", kind)
	}
	pg.execs, pg.args = nil, nil
	n.keepReplicaSlots(context.Background(), o)
	if len(pg.args) != 2 || pg.args[1][1] != "0/2000" {
		t.Errorf("advance args %v, want the failsafe body's 0/2000", pg.args)
	}
	clk.t = t0.Add(11 * time.Second)
	o.Now = clk.t
	pg.execs, pg.args = nil, nil
	n.keepReplicaSlots(context.Background(), o)
	if len(pg.args) != 2 || pg.args[1][1] != "0/1000" {
		t.Errorf("after ttl: advance args %v, want the status key's 0/1000 again", pg.args)
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
		if len(pg.execs) != 0 {
			t.Errorf("%s: execs %q, want none", name, pg.execs)
		}
	}
}
