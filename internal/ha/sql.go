package ha

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// createRoles runs after bootstrap (post_bootstrap): the superuser's password,
// the replication role, and the rewind role with the functions pg_rewind needs.
// A role that is the superuser itself is left as it is.
func createRoles(ctx context.Context, pg Postgres, c Credentials) error {
	su := c.Superuser.Username
	if su != "" && c.Superuser.Password != "" {
		if err := pg.SetPassword(ctx, su, c.Superuser.Password); err != nil {
			return fmt.Errorf("superuser password: %w", err)
		}
	}
	if r := c.Replication; r.Username != "" && r.Username != su {
		if err := pg.EnsureRole(ctx, cluster.LoginRole{Name: r.Username, Password: r.Password, Replication: true}); err != nil {
			return fmt.Errorf("replication role %s: %w", r.Username, err)
		}
	}
	if w := c.Rewind; w.Username != "" && w.Username != su {
		if err := pg.EnsureRole(ctx, cluster.LoginRole{Name: w.Username, Password: w.Password}); err != nil {
			return fmt.Errorf("rewind role %s: %w", w.Username, err)
		}
		if err := pg.GrantRewind(ctx, w.Username); err != nil {
			return fmt.Errorf("rewind role %s: %w", w.Username, err)
		}
	}
	return nil
}

// slotsTrust is how long the primary works from its last reading of
// pg_replication_slots, kept up to date with its own creates and drops, before
// reading the view again. Patroni's SlotsHandler reads it only when scheduled
// (start, role change, error); the periodic reading here also catches, within
// slotsTrust, a slot dropped or created by hand and an unclaimed slot that
// went inactive. An idle primary thus runs one query per cycle, not two.
const slotsTrust = 30 * time.Second

// slotsCache is a reading of pg_replication_slots, valid for one postmaster,
// timeline and hold of the leader key, and for slotsTrust.
type slotsCache struct {
	slots       []cluster.ReplicationSlot
	readAt      time.Time
	postmaster  time.Time
	timeline    int
	leaderSince time.Time
}

// cachedSlots is pg_replication_slots: the cached reading while it is
// valid for o, else a new one.
func (l *loop) cachedSlots(ctx context.Context, o plan.Observation) ([]cluster.ReplicationSlot, error) {
	c, now := &l.st.pg.slots, l.now()
	if !c.readAt.IsZero() && !now.Before(c.readAt) && now.Sub(c.readAt) < slotsTrust &&
		c.postmaster.Equal(o.PG.PostmasterStartTime) && c.timeline == o.PG.Timeline &&
		c.leaderSince.Equal(l.st.lease.acquiredAt) {
		return c.slots, nil
	}
	slots, err := l.deps.Postgres.ReplicationSlots(ctx)
	if err != nil {
		*c = slotsCache{}
		return nil, err
	}
	*c = slotsCache{slots: slots, readAt: now, postmaster: o.PG.PostmasterStartTime,
		timeline: o.PG.Timeline, leaderSince: l.st.lease.acquiredAt}
	return slots, nil
}

// syncSlots makes the primary hold one physical slot per streaming member and
// drops inactive physical slots nobody claims (not while paused). Permanent
// slots (config "slots") are created when physical and never dropped;
// ignore_slots matchers are honoured by name and type. It works from
// cachedSlots' reading, updated with what it creates and drops; a failed
// create or drop makes the next cycle read the view again.
func (l *loop) syncSlots(ctx context.Context, o plan.Observation) {
	slots, err := l.cachedSlots(ctx, o)
	if err != nil {
		l.log.Warn("cannot list replication slots", "err", err)
		return
	}
	next, failed := slices.Clone(slots), false // the reading after our own creates and drops
	want := memberSlots(o)
	permanent := permanentSlots(o.Config.Raw)
	for name, physical := range permanent {
		if physical {
			want[name] = true
		}
	}
	have := map[string]bool{}
	for _, sl := range slots {
		have[sl.Name] = true
		name, typ, active := sl.Name, sl.Type, sl.Active
		if typ != "physical" || want[name] || active || o.Paused() || ignoredSlot(o.Config.Raw, name, typ) {
			continue
		}
		if _, ok := permanent[name]; ok {
			continue
		}
		if err := l.deps.Postgres.DropSlot(ctx, name); err != nil {
			l.log.Warn("cannot drop replication slot", "slot", name, "err", err)
			failed = true
		} else {
			l.log.Info("dropped unknown replication slot", "slot", name)
			next = slices.DeleteFunc(next, func(s cluster.ReplicationSlot) bool { return s.Name == name })
		}
	}
	for name := range want {
		if have[name] {
			continue
		}
		if err := l.deps.Postgres.CreatePhysicalSlots(ctx, []string{name}); err != nil {
			l.log.Warn("cannot create replication slot", "slot", name, "err", err)
			failed = true
		} else {
			l.log.Info("created replication slot", "slot", name)
			next = append(next, cluster.ReplicationSlot{Name: name, Type: "physical"})
		}
	}
	if failed {
		l.st.pg.slots = slotsCache{} // read the view again next cycle
	} else {
		l.st.pg.slots.slots = next
	}
}

// memberSlots are the physical slots the primary keeps for its streaming members.
func memberSlots(o plan.Observation) map[string]bool {
	want := map[string]bool{}
	for name, m := range o.View.Members {
		if name == o.Name {
			continue
		}
		t := plan.ParseTags(m.Tags)
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
func (l *loop) createMemberSlots(ctx context.Context, o plan.Observation) {
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
	if err := l.deps.Postgres.CreatePhysicalSlots(ctx, names); err != nil {
		l.log.Warn("cannot create the members' replication slots before promotion", "err", err)
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
