package plan

import (
	"slices"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Sync fixtures: pg1 leads as primary (flush 1000), pg2 and pg3 stream from it.

func syncOn(o *Observation) { o.Config.SynchronousMode = true }

func strict(o *Observation) { o.Config.SynchronousModeStrict = true }

func syncKey(leader string, standbys ...string) fx {
	return func(o *Observation) {
		s := &cluster.SyncState{Leader: leader, ModRevision: 7}
		if len(standbys) > 0 {
			v := standbys[0]
			for _, n := range standbys[1:] {
				v += "," + n
			}
			s.SyncStandby = &v
		}
		o.View.Sync = s
	}
}

func ssn(v string) fx { return func(o *Observation) { o.PG.SyncStandbyNames = v } }

// row sets pg_stat_replication's row of name (appended when missing).
func row(name, state, syncState string, flush, replay cluster.LSN) fx {
	return func(o *Observation) {
		r := cluster.ReplicationRow{ApplicationName: name, State: state, SyncState: syncState, FlushLSN: flush, ReplayLSN: replay}
		for i := range o.PG.Replication {
			if o.PG.Replication[i].ApplicationName == name {
				o.PG.Replication[i] = r
				return
			}
		}
		o.PG.Replication = append(o.PG.Replication, r)
	}
}

func noRows(o *Observation) { o.PG.Replication = nil }

func leadPrimary(o *Observation) {
	iLead(o)
	o.PG.CurrentLSN, o.PG.FlushLSN = 1000, 1000
	o.PG.Replication = []cluster.ReplicationRow{
		{ApplicationName: "pg2", State: "streaming", SyncState: "async", FlushLSN: 1000, ReplayLSN: 1000},
		{ApplicationName: "pg3", State: "streaming", SyncState: "async", FlushLSN: 900, ReplayLSN: 900},
	}
}

var confirmed1000 = SyncFacts{SeenSet: true, SeenFor: "pg2", ConfirmSet: true, ConfirmFor: "pg2", ConfirmLSN: 1000}

func TestNextSync(t *testing.T) {
	null := (*string)(nil)
	cases := []struct {
		name  string
		facts SyncFacts
		mods  []fx
		// want
		manage, write, del, record, waiting bool
		guc                                 string
		standby                             *string // the sync key's sync_standby when written
		picked                              []string
	}{
		{name: "mode off, no key: nothing", mods: []fx{leadPrimary}},
		{name: "mode off with a key: delete it", mods: []fx{leadPrimary, syncKey("pg1", "pg2")}, del: true},
		{name: "mode on, empty key: publish leader, list the best standby, wait",
			mods:   []fx{leadPrimary, syncOn},
			manage: true, write: true, record: true, waiting: true, guc: "pg2", standby: null, picked: []string{"pg2"}},
		{name: "GUC newly in effect: note it, no promise",
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), ssn("pg2"), row("pg2", "streaming", "sync", 1000, 1000)},
			manage: true, record: true, waiting: true, guc: "pg2", picked: []string{"pg2"}},
		{name: "GUC seen a cycle ago, no position yet: record it, no promise",
			facts:  SyncFacts{SeenSet: true, SeenFor: "pg2"},
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), ssn("pg2"), row("pg2", "streaming", "sync", 1000, 1000)},
			manage: true, record: true, waiting: true, guc: "pg2", picked: []string{"pg2"}},
		{name: "recorded for another value: note again",
			facts:  SyncFacts{SeenSet: true, SeenFor: "pg3", ConfirmSet: true, ConfirmFor: "pg3", ConfirmLSN: 500},
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), ssn("pg2"), row("pg2", "streaming", "sync", 1000, 1000)},
			manage: true, record: true, waiting: true, guc: "pg2", picked: []string{"pg2"}},
		{name: "sync and replayed up to the recorded flush: published",
			facts:  confirmed1000,
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), ssn("pg2"), row("pg2", "streaming", "sync", 1000, 1000)},
			manage: true, write: true, guc: "pg2", standby: str("pg2"), picked: []string{"pg2"}},
		{name: "sync but replay behind the recorded flush: wait",
			facts:  confirmed1000,
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), ssn("pg2"), row("pg2", "streaming", "sync", 1000, 999)},
			manage: true, waiting: true, guc: "pg2", picked: []string{"pg2"}},
		{name: "replayed but postgres does not report it sync yet: wait",
			facts:  confirmed1000,
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), ssn("pg2"), row("pg2", "streaming", "potential", 1000, 1000)},
			manage: true, waiting: true, guc: "pg2", picked: []string{"pg2"}},
		{name: "GUC not in effect yet (reload pending): wait",
			facts:  SyncFacts{SeenSet: true, ConfirmSet: true, ConfirmFor: "", ConfirmLSN: 1000},
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), ssn(""), row("pg2", "streaming", "sync", 1000, 1000)},
			manage: true, waiting: true, guc: "pg2", picked: []string{"pg2"}},
		{name: "steady state: nothing to write",
			facts:  confirmed1000,
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1", "pg2"), ssn("pg2"), row("pg2", "streaming", "sync", 1000, 1000)},
			manage: true, guc: "pg2", picked: []string{"pg2"}},
		{name: "already published standby stays confirmed after a GUC re-record",
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1", "pg2"), ssn("pg2"), row("pg2", "streaming", "sync", 1000, 10)},
			manage: true, record: true, guc: "pg2", picked: []string{"pg2"}},
		{name: "sync standby gone: narrow the key first, run async",
			facts:  confirmed1000,
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1", "pg2"), ssn("pg2"), row("pg2", "stopped", "", 0, 0), row("pg3", "streaming", "async", 0, 0), func(o *Observation) { o.PG.Replication = o.PG.Replication[:1] }},
			manage: true, write: true, guc: "", standby: null},
		{name: "sync standby gone, another streams: key narrowed, the other listed and awaited",
			facts:  confirmed1000,
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1", "pg2"), ssn("pg2"), row("pg2", "catchup", "async", 10, 10)},
			manage: true, write: true, waiting: true, guc: "pg3", standby: null, picked: []string{"pg3"}},
		{name: "strict, nobody streams: * and the key keeps only the leader",
			mods:   []fx{leadPrimary, syncOn, strict, syncKey("pg1", "pg2"), ssn("pg2"), noRows},
			manage: true, write: true, record: true, guc: "*", standby: null},
		{name: "strict 4.x, nobody streams: the last published standbys stay in the GUC",
			facts:  SyncFacts{Compat4: true},
			mods:   []fx{leadPrimary, syncOn, strict, syncKey("pg1", "pg2"), ssn("pg2"), noRows},
			manage: true, write: true, record: true, guc: "pg2", standby: null},
		{name: "strict 4.x, nobody ever: placeholder",
			facts:  SyncFacts{Compat4: true},
			mods:   []fx{leadPrimary, syncOn, strict, syncKey("pg1"), noRows},
			manage: true, record: true, guc: SyncPlaceholder},
		{name: "non-strict, nobody streams: async, key has the leader only",
			mods:   []fx{leadPrimary, syncOn, noRows},
			manage: true, write: true, record: true, guc: "", standby: null},
		{name: "nosync member is never picked",
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), memberTags("pg2", map[string]any{"nosync": true})},
			manage: true, record: true, waiting: true, guc: "pg3", picked: []string{"pg3"}},
		{name: "nostream member is never picked",
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), memberTags("pg2", map[string]any{"nostream": true})},
			manage: true, record: true, waiting: true, guc: "pg3", picked: []string{"pg3"}},
		{name: "4.x sync_priority 0 excludes, higher priority wins",
			facts: SyncFacts{Compat4: true},
			mods: []fx{leadPrimary, syncOn, syncKey("pg1"), memberTags("pg2", map[string]any{"sync_priority": 0}),
				memberTags("pg3", map[string]any{"sync_priority": 5})},
			manage: true, record: true, waiting: true, guc: "pg3", picked: []string{"pg3"}},
		{name: "nofailover members come last",
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), memberTags("pg2", map[string]any{"nofailover": true})},
			manage: true, record: true, waiting: true, guc: "pg3", picked: []string{"pg3"}},
		{name: "the current sync standby is preferred over a further one",
			mods: []fx{leadPrimary, syncOn, syncKey("pg1", "pg3"), ssn("pg3"), row("pg3", "streaming", "sync", 900, 900),
				row("pg2", "streaming", "async", 1000, 1000)},
			manage: true, record: true, guc: "pg3", picked: []string{"pg3"}},
		{name: "a member not running is not picked",
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), setMember("pg2", func(m *cluster.Member) { m.State = "starting" })},
			manage: true, record: true, waiting: true, guc: "pg3", picked: []string{"pg3"}},
		{name: "an unknown application_name is not picked",
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), noRows, row("pg_basebackup", "streaming", "async", 1000, 1000)},
			manage: true, record: true, guc: ""},
		{name: "synchronous_node_count 2: both, N (a,b)",
			mods:   []fx{leadPrimary, syncOn, syncKey("pg1"), cfg(func(c *cluster.DynamicConfig) { c.SynchronousNodeCount = 2 })},
			manage: true, record: true, waiting: true, guc: "2 (pg2,pg3)", picked: []string{"pg2", "pg3"}},
		{name: "synchronous_node_count 2, both confirmed: key lists both sorted",
			facts: SyncFacts{SeenSet: true, SeenFor: "2 (pg3,pg2)", ConfirmSet: true, ConfirmFor: "2 (pg3,pg2)", ConfirmLSN: 900},
			mods: []fx{leadPrimary, syncOn, syncKey("pg1"), ssn("2 (pg3,pg2)"), cfg(func(c *cluster.DynamicConfig) { c.SynchronousNodeCount = 2 }),
				row("pg2", "streaming", "sync", 1000, 1000), row("pg3", "streaming", "sync", 900, 900)},
			manage: true, write: true, guc: "2 (pg2,pg3)", standby: str("pg2,pg3"), picked: []string{"pg2", "pg3"}},
		{name: "maximum_lag_on_syncnode drops a lagging candidate",
			mods: []fx{leadPrimary, syncOn, syncKey("pg1"), row("pg2", "streaming", "async", 100, 100),
				cfg(func(c *cluster.DynamicConfig) { c.SynchronousNodeCount = 2; c.MaximumLagOnSyncnode = 500 })},
			manage: true, record: true, waiting: true, guc: "pg3", picked: []string{"pg3"}},
		{name: "the sync key of a former leader is rewritten with us as leader and nothing promised",
			facts:  confirmed1000,
			mods:   []fx{leadPrimary, syncOn, syncKey("pg9", "pg2"), ssn("pg2"), row("pg2", "streaming", "sync", 1000, 1000)},
			manage: true, write: true, guc: "pg2", standby: str("pg2"), picked: []string{"pg2"}},
		{name: "application_name matches case-insensitively",
			facts: confirmed1000,
			mods: []fx{leadPrimary, syncOn, syncKey("pg1"), ssn("pg2"), noRows,
				row("PG2", "streaming", "sync", 1000, 1000)},
			manage: true, write: true, guc: "pg2", standby: str("pg2"), picked: []string{"pg2"}},
		{name: "not primary: nothing",
			mods: []fx{syncOn, syncKey("pg2", "pg1")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newObs(c.mods...)
			s := NextSync(o, c.facts)
			if s.NoteGUC && s.RecordLSN {
				t.Errorf("a GUC noted and recorded in the same cycle: %+v", s)
			}
			// record: the confirmation position is being (re)established (noted or recorded) this cycle.
			if s.Manage != c.manage || s.WriteSync != c.write || s.DeleteSync != c.del || (s.NoteGUC || s.RecordLSN) != c.record || s.Waiting != c.waiting {
				t.Fatalf("step %+v; want manage=%v write=%v delete=%v record=%v waiting=%v", s, c.manage, c.write, c.del, c.record, c.waiting)
			}
			if s.GUC != c.guc {
				t.Errorf("GUC %q, want %q", s.GUC, c.guc)
			}
			if !slices.Equal(s.Picked, c.picked) {
				t.Errorf("picked %v, want %v", s.Picked, c.picked)
			}
			if c.write {
				if s.Sync.Leader != "pg1" {
					t.Errorf("sync leader %q", s.Sync.Leader)
				}
				if (s.Sync.SyncStandby == nil) != (c.standby == nil) || s.Sync.SyncStandby != nil && *s.Sync.SyncStandby != *c.standby {
					t.Errorf("sync_standby %v, want %v", deref(s.Sync.SyncStandby), deref(c.standby))
				}
			}
			// The invariant: whatever the key is to promise is listed in the GUC in effect now.
			if s.WriteSync && s.Sync.SyncStandby != nil {
				for _, n := range s.Sync.Standbys() {
					if !containsFold(parseSSNMembers(o.PG.SyncStandbyNames), n) {
						t.Errorf("key promises %s, which the GUC in effect (%q) does not list", n, o.PG.SyncStandbyNames)
					}
				}
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

func TestMakeSyncPolls(t *testing.T) {
	o := newObs(leadPrimary, syncOn, syncKey("pg1"), ssn("pg2"), row("pg2", "streaming", "sync", 1000, 999))
	o.Sync = confirmed1000
	p := Make(o)
	if p.Action != ActionUpdateLock || !p.Sync.Manage || !p.Sync.Waiting {
		t.Fatalf("plan %+v", p)
	}
	if p.PollAfter != ShortPolls[ReasonSyncConfirm] || p.PollAfter == 0 {
		t.Errorf("PollAfter %v, want the sync_confirm short poll", p.PollAfter)
	}
	o.PG.Replication[0].ReplayLSN = 1000
	p = Make(o)
	if p.Sync.Waiting || p.PollAfter != 0 || !p.Sync.WriteSync {
		t.Errorf("confirmed: plan %+v", p)
	}
	// A standby that does not confirm within syncPollFor is left to the loop_wait tick.
	o.PG.Replication[0].ReplayLSN = 999
	o.Sync.WaitingSince = o.Now.Add(-syncPollFor(o.Config) - time.Second)
	if p := Make(o); !p.Sync.Unconfirmed || p.Sync.Waiting || p.PollAfter != 0 {
		t.Errorf("a long wait still polls: %+v", p)
	}
	o.Sync.WaitingSince = o.Now.Add(-time.Second)
	if p := Make(o); !p.Sync.Waiting || p.PollAfter == 0 {
		t.Errorf("a young wait does not poll: %+v", p)
	}
	// 4.x writes "quorum": 0 with the key.
	o4 := newObs(leadPrimary, syncOn)
	o4.Sync.Compat4 = true
	if p := Make(o4); !p.Sync.WriteSync || p.Sync.Sync.Quorum == nil || *p.Sync.Sync.Quorum != 0 {
		t.Errorf("4.x sync key %+v", p.Sync.Sync)
	}
	if p := Make(newObs(leadPrimary, syncOn)); p.Sync.Sync.Quorum != nil {
		t.Errorf("3.0.2 sync key carries quorum: %+v", p.Sync.Sync)
	}
	replica := newObs(syncOn)
	if p := Make(replica); !p.Sync.Empty() {
		t.Errorf("a replica plans a sync step: %+v", p.Sync)
	}
}

func TestFormatSSN(t *testing.T) {
	cases := []struct {
		picked, last    []string
		strict, compat4 bool
		want            string
	}{
		{nil, nil, false, false, ""},
		{nil, nil, true, false, "*"},
		{nil, []string{"b", "a"}, true, true, "2 (a,b)"},
		{nil, nil, true, true, SyncPlaceholder},
		{[]string{"pg2"}, nil, false, false, "pg2"},
		{[]string{"pg-test-2"}, nil, false, false, `"pg-test-2"`},
		{[]string{"b", "a-1"}, nil, false, false, `2 (b,"a-1")`},
		{[]string{"b", "a-1"}, nil, false, true, `2 ("a-1",b)`},
		{[]string{`we"ird`}, nil, false, false, `"we""ird"`},
	}
	for _, c := range cases {
		if got := FormatSSN(c.picked, c.strict, c.compat4, c.last); got != c.want {
			t.Errorf("FormatSSN(%v, strict=%v, 4.x=%v, last=%v) = %q, want %q", c.picked, c.strict, c.compat4, c.last, got, c.want)
		}
	}
}

func TestParseSSNMembers(t *testing.T) {
	cases := map[string][]string{
		"":               nil,
		"*":              {"*"},
		"pg2":            {"pg2"},
		` a , b `:        {"a", "b"},
		`"pg-test-2"`:    {"pg-test-2"},
		`2 (pg2,"pg-3")`: {"pg2", "pg-3"},
		`FIRST 2 (a, b)`: {"a", "b"},
		`ANY 1 (a,b,c)`:  {"a", "b", "c"},
		`"we""ird"`:      {`we"ird`},
		`a,`:             nil,
		`2 (,)`:          nil,
		`"unterminated`:  nil,
		`first`:          {"first"},
		`1 ("a",*)`:      {"a", "*"},
	}
	for in, want := range cases {
		if got := parseSSNMembers(in); !slices.Equal(got, want) {
			t.Errorf("parseSSNMembers(%q) = %q, want %q", in, got, want)
		}
	}
	// What FormatSSN writes parses back to the names.
	for _, names := range [][]string{{"pg2"}, {"pg-2", "x"}, {`q"q`, "b", "c"}} {
		if got := parseSSNMembers(FormatSSN(names, false, false, nil)); !slices.Equal(got, names) {
			t.Errorf("round trip of %q: %q", names, got)
		}
	}
}

// The confirmation takes three cycles once the GUC is in effect: note it,
// record the flush position a cycle later, publish when the standby replayed
// up to it.
func TestNextSyncNoteRecordConfirm(t *testing.T) {
	o := newObs(leadPrimary, syncOn, syncKey("pg1"), ssn("pg2"), row("pg2", "streaming", "sync", 1000, 1000))
	var f SyncFacts
	s := NextSync(o, f)
	if !s.NoteGUC || s.RecordLSN || len(s.Confirmed) != 0 || !s.Waiting {
		t.Fatalf("cycle 1: %+v", s)
	}
	f = SyncFacts{SeenSet: true, SeenFor: o.PG.SyncStandbyNames}
	o.PG.FlushLSN, o.PG.CurrentLSN = 1200, 1200 // commits went on
	s = NextSync(o, f)
	if s.NoteGUC || !s.RecordLSN || len(s.Confirmed) != 0 || !s.Waiting {
		t.Fatalf("cycle 2: %+v", s)
	}
	f.ConfirmSet, f.ConfirmFor, f.ConfirmLSN = true, o.PG.SyncStandbyNames, o.PG.FlushLSN
	s = NextSync(o, f)
	if len(s.Confirmed) != 0 || s.WriteSync || !s.Waiting {
		t.Fatalf("cycle 3, replay 1000 < recorded 1200: %+v", s)
	}
	o.PG.Replication[0].ReplayLSN = 1200
	s = NextSync(o, f)
	if !slices.Equal(s.Confirmed, []string{"pg2"}) || !s.WriteSync || s.Sync.SyncStandby == nil || *s.Sync.SyncStandby != "pg2" || s.Waiting {
		t.Fatalf("cycle 4, replayed: %+v", s)
	}
}
