package proc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// The statements the HA loop has postgres run, as typed methods: roles after
// bootstrap, replication slots, CHECKPOINT, timeline history. Every one runs
// as the superuser over the local connection (execSQL/querySQL); the HA loop decides
// what to ask for and never writes SQL itself. Statements that carry passwords
// are never logged.

// SetPassword sets role's password (ALTER ROLE … WITH PASSWORD).
func (p *Postgres) SetPassword(ctx context.Context, role, password string) error {
	return p.execSQL(ctx, fmt.Sprintf("ALTER ROLE %s WITH PASSWORD %s", quoteIdent(role), quoteLiteral(password)))
}

// EnsureRole creates r, or alters it when it exists, with LOGIN (and
// REPLICATION when r.Replication) and, when given, its password.
func (p *Postgres) EnsureRole(ctx context.Context, r cluster.LoginRole) error {
	rows, err := p.querySQL(ctx, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", r.Name)
	if err != nil {
		return err
	}
	verb := "CREATE"
	if len(rows) > 0 {
		verb = "ALTER"
	}
	attrs := "LOGIN"
	if r.Replication {
		attrs = "REPLICATION LOGIN"
	}
	stmt := fmt.Sprintf("%s ROLE %s WITH %s", verb, quoteIdent(r.Name), attrs)
	if r.Password != "" {
		stmt += " PASSWORD " + quoteLiteral(r.Password)
	}
	return p.execSQL(ctx, stmt)
}

// rewindFunctions are what pg_rewind calls on its source as a non-superuser.
var rewindFunctions = []string{
	"pg_catalog.pg_ls_dir(text, boolean, boolean)",
	"pg_catalog.pg_stat_file(text, boolean)",
	"pg_catalog.pg_read_binary_file(text)",
	"pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
}

// GrantRewind lets role run pg_rewind against this server (EXECUTE on the functions it calls).
func (p *Postgres) GrantRewind(ctx context.Context, role string) error {
	for _, fn := range rewindFunctions {
		if err := p.execSQL(ctx, fmt.Sprintf("GRANT EXECUTE ON FUNCTION %s TO %s", fn, quoteIdent(role))); err != nil {
			return fmt.Errorf("grant on %s: %w", fn, err)
		}
	}
	return nil
}

// quoteIdent quotes a SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes a SQL string literal; backslashes switch to the E” form.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		q = "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// ReplicationSlots lists every replication slot (pg_replication_slots).
func (p *Postgres) ReplicationSlots(ctx context.Context) ([]cluster.ReplicationSlot, error) {
	rows, err := p.querySQL(ctx, "SELECT slot_name, slot_type, active::text FROM pg_catalog.pg_replication_slots")
	if err != nil {
		return nil, err
	}
	out := make([]cluster.ReplicationSlot, 0, len(rows))
	for _, r := range rows {
		if len(r) < 3 {
			continue
		}
		out = append(out, cluster.ReplicationSlot{Name: r[0], Type: r[1], Active: r[2] == "t" || r[2] == "true"})
	}
	return out, nil
}

// CreatePhysicalSlots creates those of the physical slots named that do not
// exist yet, reserving WAL at once, in one statement.
func (p *Postgres) CreatePhysicalSlots(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return p.execSQL(ctx, `SELECT pg_catalog.pg_create_physical_replication_slot(s, true)
  FROM pg_catalog.unnest($1::text[]) AS s
 WHERE s NOT IN (SELECT slot_name FROM pg_catalog.pg_replication_slots)`, names)
}

// DropSlot drops the replication slot name (an error when it is active or missing).
func (p *Postgres) DropSlot(ctx context.Context, name string) error {
	return p.execSQL(ctx, "SELECT pg_catalog.pg_drop_replication_slot($1)", name)
}

// SlotPositions reads where the slots named that exist stand: restart_lsn for
// a physical slot, confirmed_flush_lsn for a logical one, as WAL byte offsets.
// Slots without a position yet are left out.
func (p *Postgres) SlotPositions(ctx context.Context, names []string) (map[string]int64, error) {
	rows, err := p.querySQL(ctx, `SELECT slot_name,
       pg_catalog.pg_wal_lsn_diff(COALESCE(confirmed_flush_lsn, restart_lsn), '0/0')::bigint::text
  FROM pg_catalog.pg_replication_slots
 WHERE slot_name = ANY($1::text[]) AND COALESCE(confirmed_flush_lsn, restart_lsn) IS NOT NULL`, names)
	if err != nil {
		return nil, err
	}
	return parseSlotRows(rows), nil
}

// parseSlotRows turns (name, position) rows into a map, skipping malformed ones.
func parseSlotRows(rows [][]string) map[string]int64 {
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		if len(r) < 2 {
			continue
		}
		if pos, err := strconv.ParseInt(r[1], 10, 64); err == nil && pos > 0 {
			out[r[0]] = pos
		}
	}
	return out
}

// AdvancePhysicalSlot moves the inactive physical slot name forward to pos,
// capped at what this replica has replayed (pg_replication_slot_advance
// cannot go further); a slot already there, active, or missing is left alone.
func (p *Postgres) AdvancePhysicalSlot(ctx context.Context, name string, pos int64) error {
	return p.execSQL(ctx, `SELECT pg_catalog.pg_replication_slot_advance(slot_name,
       LEAST(pg_catalog.pg_last_wal_replay_lsn(), $2::pg_lsn))
  FROM pg_catalog.pg_replication_slots
 WHERE slot_name = $1 AND slot_type = 'physical' AND NOT active
   AND restart_lsn < LEAST(pg_catalog.pg_last_wal_replay_lsn(), $2::pg_lsn)`, name, FormatLSN(cluster.LSN(pos)))
}

// Checkpoint runs CHECKPOINT.
func (p *Postgres) Checkpoint(ctx context.Context) error {
	return p.execSQL(ctx, "CHECKPOINT")
}

// TimelineHistory reads and parses pg_wal/<tl>.history over SQL: one entry per
// timeline switch that led to tl, oldest first.
func (p *Postgres) TimelineHistory(ctx context.Context, tl int) ([]cluster.HistoryEntry, error) {
	rows, err := p.querySQL(ctx, "SELECT pg_catalog.pg_read_file($1)", fmt.Sprintf("pg_wal/%08X.history", tl))
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || len(rows[0]) == 0 {
		return nil, errors.New("empty result")
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
		lsn, err2 := ParseLSN(strings.TrimSpace(f[1]))
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
