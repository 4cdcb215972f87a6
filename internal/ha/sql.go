package ha

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// createRoles runs after bootstrap (post_bootstrap): the superuser's password,
// the replication role, and the rewind role with the functions pg_rewind needs.
// Statements are never logged (they carry passwords).
func createRoles(ctx context.Context, pg Postgres, c Credentials) error {
	su := c.Superuser.Username
	if su != "" && c.Superuser.Password != "" {
		if err := pg.Exec(ctx, fmt.Sprintf("ALTER ROLE %s WITH PASSWORD %s",
			quoteIdent(su), quoteLiteral(c.Superuser.Password))); err != nil {
			return fmt.Errorf("superuser password: %w", err)
		}
	}
	if r := c.Replication; r.Username != "" && r.Username != su {
		if err := ensureRole(ctx, pg, r, "REPLICATION LOGIN"); err != nil {
			return fmt.Errorf("replication role %s: %w", r.Username, err)
		}
	}
	if w := c.Rewind; w.Username != "" && w.Username != su {
		if err := ensureRole(ctx, pg, w, "LOGIN"); err != nil {
			return fmt.Errorf("rewind role %s: %w", w.Username, err)
		}
		for _, fn := range []string{
			"pg_catalog.pg_ls_dir(text, boolean, boolean)",
			"pg_catalog.pg_stat_file(text, boolean)",
			"pg_catalog.pg_read_binary_file(text)",
			"pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
		} {
			if err := pg.Exec(ctx, fmt.Sprintf("GRANT EXECUTE ON FUNCTION %s TO %s", fn, quoteIdent(w.Username))); err != nil {
				return fmt.Errorf("rewind role %s: grant on %s: %w", w.Username, fn, err)
			}
		}
	}
	return nil
}

// ensureRole creates the role, or alters it when it exists, with attrs and the password.
func ensureRole(ctx context.Context, pg Postgres, c Credential, attrs string) error {
	rows, err := pg.Query(ctx, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", c.Username)
	if err != nil {
		return err
	}
	verb := "CREATE"
	if len(rows) > 0 {
		verb = "ALTER"
	}
	stmt := fmt.Sprintf("%s ROLE %s WITH %s", verb, quoteIdent(c.Username), attrs)
	if c.Password != "" {
		stmt += " PASSWORD " + quoteLiteral(c.Password)
	}
	return pg.Exec(ctx, stmt)
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

// syncSlots makes the primary hold one physical slot per streaming member and
// drops inactive physical slots nobody claims (not while paused). Permanent
// slots (config "slots") are created when physical and never dropped;
// ignore_slots matchers are honoured by name and type.
func (n *Node) syncSlots(ctx context.Context, o Observation) {
	rows, err := n.deps.Postgres.Query(ctx, "SELECT slot_name, slot_type, active::text FROM pg_catalog.pg_replication_slots")
	if err != nil {
		n.log.Warn("cannot list replication slots", "err", err)
		return
	}
	want := memberSlots(o)
	permanent := permanentSlots(o.Config.Raw)
	for name, physical := range permanent {
		if physical {
			want[name] = true
		}
	}
	have := map[string]bool{}
	for _, r := range rows {
		if len(r) < 3 {
			continue
		}
		have[r[0]] = true
		name, typ, active := r[0], r[1], r[2] == "t" || r[2] == "true"
		if typ != "physical" || want[name] || active || o.Paused() || ignoredSlot(o.Config.Raw, name, typ) {
			continue
		}
		if _, ok := permanent[name]; ok {
			continue
		}
		if err := n.deps.Postgres.Exec(ctx, "SELECT pg_catalog.pg_drop_replication_slot($1)", name); err != nil {
			n.log.Warn("cannot drop replication slot", "slot", name, "err", err)
		} else {
			n.log.Info("dropped unknown replication slot", "slot", name)
		}
	}
	for name := range want {
		if have[name] {
			continue
		}
		if err := n.deps.Postgres.Exec(ctx, "SELECT pg_catalog.pg_create_physical_replication_slot($1, true)", name); err != nil {
			n.log.Warn("cannot create replication slot", "slot", name, "err", err)
		} else {
			n.log.Info("created replication slot", "slot", name)
		}
	}
}

// memberSlots are the physical slots the primary keeps for its streaming members.
func memberSlots(o Observation) map[string]bool {
	want := map[string]bool{}
	for name, m := range o.View.Members {
		if name == o.Name {
			continue
		}
		t := ParseTags(m.Tags)
		if t.NoStream {
			continue
		}
		if rf := t.ReplicateFrom; rf != "" && rf != o.Name {
			if up, ok := o.View.Members[rf]; ok && up.State == string(cluster.StateRunning) {
				continue // the member it cascades from holds its slot
			}
		}
		want[cluster.SlotName(name)] = true
	}
	return want
}

// createMemberSlots creates the members' slots on a replica that just won the
// leader key, before it is promoted: the other members point their recovery
// at it the moment the key changes, and a slot missing then would hold their
// walreceiver off for wal_retrieve_retry_interval (5 s).
func (n *Node) createMemberSlots(ctx context.Context, o Observation) {
	if !o.Config.UseSlots {
		return
	}
	var names []string
	for name := range memberSlots(o) {
		names = append(names, name)
	}
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	err := n.deps.Postgres.Exec(ctx, `SELECT pg_catalog.pg_create_physical_replication_slot(s, true)
  FROM pg_catalog.unnest($1::text[]) AS s
 WHERE s NOT IN (SELECT slot_name FROM pg_catalog.pg_replication_slots)`, names)
	if err != nil {
		n.log.Warn("cannot create the members' replication slots before promotion", "err", err)
	}
}

// permanentSlots reads the dynamic "slots" map (or its aliases): name -> is physical.
func permanentSlots(raw map[string]any) map[string]bool {
	out := map[string]bool{}
	for _, key := range []string{"slots", "permanent_slots", "permanent_replication_slots"} {
		m, ok := raw[key].(map[string]any)
		if !ok {
			continue
		}
		for name, v := range m {
			typ := "physical"
			if spec, ok := v.(map[string]any); ok {
				if t, ok := spec["type"].(string); ok {
					typ = t
				}
			}
			out[name] = typ == "physical"
		}
	}
	return out
}

// ignoredSlot reports whether an ignore_slots matcher covers the slot (name and type only).
func ignoredSlot(raw map[string]any, name, typ string) bool {
	list, _ := raw["ignore_slots"].([]any)
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		if v, ok := m["name"].(string); ok && v != name {
			continue
		}
		if v, ok := m["type"].(string); ok && v != typ {
			continue
		}
		return true
	}
	return false
}
