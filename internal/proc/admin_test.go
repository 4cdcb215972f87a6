package proc

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func TestQuoting(t *testing.T) {
	if got := quoteIdent(`we"ird`); got != `"we""ird"` {
		t.Errorf("quoteIdent = %s", got)
	}
	if got := quoteLiteral(`it's`); got != `'it''s'` {
		t.Errorf("quoteLiteral = %s", got)
	}
	if got := quoteLiteral(`a\b'`); got != `E'a\\b'''` {
		t.Errorf("quoteLiteral with backslash = %s", got)
	}
}

func TestParseTimelineHistory(t *testing.T) {
	got := parseTimelineHistory("1\t0/3000148\tno recovery target specified\n\n2\t1/A0\tbefore 2026-03-01\n# comment\nbad line\n")
	want := []cluster.HistoryEntry{
		{Timeline: 1, LSN: 0x3000148, Reason: "no recovery target specified"},
		{Timeline: 2, LSN: 1<<32 | 0xA0, Reason: "before 2026-03-01"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestSlotLSNText(t *testing.T) {
	for pos, want := range map[int64]string{0: "0/0", 0x3000060: "0/3000060", 0x16B374D848: "16/B374D848"} {
		if got := FormatLSN(cluster.LSN(pos)); got != want {
			t.Errorf("FormatLSN(%#x) = %q, want %q", pos, got, want)
		}
	}
}

func TestParseSlotRows(t *testing.T) {
	got := parseSlotRows([][]string{{"perm_a", "50331744"}, {"broken", "x"}, {"zero", "0"}, {"short"}})
	if !reflect.DeepEqual(got, map[string]int64{"perm_a": 50331744}) {
		t.Errorf("parseSlotRows = %v, want perm_a only", got)
	}
}

// walPos is n's position as a WAL byte offset: expr is an LSN expression.
func (n *testNode) walPos(ctx context.Context, expr string) int64 {
	n.t.Helper()
	v, err := n.queryOne(ctx, "SELECT pg_catalog.pg_wal_lsn_diff("+expr+", '0/0')::bigint")
	n.must(err, "read "+expr)
	pos, err := strconv.ParseInt(v, 10, 64)
	n.must(err, "parse "+expr)
	return pos
}

// loginAs connects to n over TCP as user with password (scram-sha-256 in pg_hba).
func (n *testNode) loginAs(ctx context.Context, user, password string) error {
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres sslmode=disable", n.cfg.Port))
	if err != nil {
		return err
	}
	cfg.User, cfg.Password = user, password
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// The typed statements the HA loop asks for, against a real PostgreSQL:
// roles (names and passwords that need quoting), slots on a primary and on a
// replica, CHECKPOINT, and the history file of a promoted replica's timeline.
func TestAdminStatements(t *testing.T) {
	a := newTestNode(t, testConfig(t, "adm-a"))
	b := newTestNode(t, testConfig(t, "adm-b"))
	ctx := opCtx(t)
	a.initAndStartPrimary(ctx)

	// Roles: created, then altered on a second run; the rewind role gets pg_rewind's functions.
	repl := cluster.LoginRole{Name: "replicator", Password: testReplPassword, Replication: true}
	a.must(a.p.EnsureRole(ctx, repl), "create the replication role")
	a.must(a.p.EnsureRole(ctx, repl), "alter the replication role")
	rewind := cluster.LoginRole{Name: `re"wind`, Password: `it's a \ pass`}
	a.must(a.p.EnsureRole(ctx, rewind), "create the rewind role")
	a.must(a.p.GrantRewind(ctx, rewind.Name), "grant to the rewind role")
	a.must(a.p.GrantRewind(ctx, rewind.Name), "grant again")
	a.must(a.p.SetPassword(ctx, "postgres", testSuperPassword), "superuser password")
	for _, tc := range []struct {
		role cluster.LoginRole
		want string
	}{{repl, "true true"}, {rewind, "false true"}} {
		got, err := a.queryOne(ctx, "SELECT rolreplication::text || ' ' || rolcanlogin::text FROM pg_catalog.pg_roles WHERE rolname = $1", tc.role.Name)
		if err != nil || got != tc.want {
			t.Errorf("%s: replication, login = %q, %v; want %q", tc.role.Name, got, err, tc.want)
		}
		if err := a.loginAs(ctx, tc.role.Name, tc.role.Password); err != nil {
			t.Errorf("%s cannot log in with its password: %v", tc.role.Name, err)
		}
	}
	if err := a.loginAs(ctx, "postgres", testSuperPassword); err != nil {
		t.Errorf("the superuser cannot log in with its password: %v", err)
	}
	for _, fn := range rewindFunctions {
		if v, err := a.queryOne(ctx, "SELECT pg_catalog.has_function_privilege($1, $2, 'EXECUTE')::text", rewind.Name, fn); err != nil || v != "true" {
			t.Errorf("%s on %s: %q, %v", rewind.Name, fn, v, err)
		}
	}

	// Slots on the primary: created once (a second call is a no-op), listed, positioned, dropped.
	names := []string{cluster.SlotName("adm-b"), "perm_a"}
	a.must(a.p.CreatePhysicalSlots(ctx, names), "create slots")
	a.must(a.p.CreatePhysicalSlots(ctx, names), "create existing slots")
	a.must(a.p.CreatePhysicalSlots(ctx, nil), "create no slot")
	slots, err := a.p.ReplicationSlots(ctx)
	a.must(err, "list slots")
	slices.SortFunc(slots, func(x, y cluster.ReplicationSlot) int { return strings.Compare(x.Name, y.Name) })
	want := []cluster.ReplicationSlot{{Name: "adm_b", Type: "physical"}, {Name: "perm_a", Type: "physical"}}
	if !reflect.DeepEqual(slots, want) {
		t.Errorf("slots = %+v, want %+v", slots, want)
	}
	pos, err := a.p.SlotPositions(ctx, []string{"perm_a", "adm_b", "missing"})
	a.must(err, "slot positions")
	if len(pos) != 2 || pos["perm_a"] <= 0 || pos["adm_b"] <= 0 {
		t.Errorf("positions = %v, want both slots with a reserved position", pos)
	}
	a.must(a.p.Checkpoint(ctx), "checkpoint")
	a.must(a.p.DropSlot(ctx, "perm_a"), "drop a slot")
	if err := a.p.DropSlot(ctx, "perm_a"); err == nil {
		t.Error("dropping a missing slot succeeded")
	}
	if pos, err := a.p.SlotPositions(ctx, []string{"perm_a"}); err != nil || len(pos) != 0 {
		t.Errorf("positions of a dropped slot: %v, %v", pos, err)
	}

	// A permanent slot on a replica follows the primary's position, capped at its replay point, never backward.
	b.must(b.p.Clone(ctx, a.source(), cluster.CloneOptions{}), "clone")
	b.must(b.p.Start(ctx, replicaOpts("adm-b", a)), "start replica")
	b.must(b.p.CreatePhysicalSlots(ctx, []string{"perm_a"}), "create the permanent slot on the replica")
	start, err := b.p.SlotPositions(ctx, []string{"perm_a"})
	b.must(err, "slot position on the replica")
	a.must(a.p.execSQL(ctx, "CREATE TABLE t AS SELECT generate_series(1, 10000) AS id"), "write WAL")
	target := a.walPos(ctx, "pg_catalog.pg_current_wal_flush_lsn()")
	eventually(t, 30*time.Second, "the replica replays the primary's WAL", func() (bool, string) {
		r := b.walPos(ctx, "pg_catalog.pg_last_wal_replay_lsn()")
		return r >= target, fmt.Sprintf("replayed %d of %d", r, target)
	})
	b.must(b.p.AdvancePhysicalSlot(ctx, "perm_a", target), "advance")
	moved, err := b.p.SlotPositions(ctx, []string{"perm_a"})
	b.must(err, "slot position after the advance")
	if moved["perm_a"] != target || moved["perm_a"] <= start["perm_a"] {
		t.Errorf("perm_a at %d after an advance from %d to %d", moved["perm_a"], start["perm_a"], target)
	}
	b.must(b.p.AdvancePhysicalSlot(ctx, "perm_a", start["perm_a"]), "advance backward")
	b.must(b.p.AdvancePhysicalSlot(ctx, "perm_a", target+1<<30), "advance past the replay point")
	replayed := b.walPos(ctx, "pg_catalog.pg_last_wal_replay_lsn()")
	if p, _ := b.p.SlotPositions(ctx, []string{"perm_a"}); p["perm_a"] < target || p["perm_a"] > replayed {
		t.Errorf("perm_a at %d, want between %d and the replay point %d", p["perm_a"], target, replayed)
	}

	// Timeline history: none on timeline 1; the promoted replica's timeline 2 names the switch.
	if h, err := a.p.TimelineHistory(ctx, 2); err == nil {
		t.Errorf("a history file for a timeline that does not exist: %+v", h)
	}
	b.must(b.p.Promote(ctx), "promote")
	h, err := b.p.TimelineHistory(ctx, 2)
	b.must(err, "timeline history")
	if len(h) != 1 || h[0].Timeline != 1 || h[0].LSN < target || h[0].Reason == "" {
		t.Errorf("history of timeline 2 = %+v, want the switch from timeline 1 at or after %d", h, target)
	}
}
