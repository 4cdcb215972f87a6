package plan

import (
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func qkey(leader string, quorum int, voters ...string) *cluster.SyncState {
	k := QuorumKey(leader, voters, quorum)
	return &k
}

func TestParseSSN(t *testing.T) {
	cases := []struct {
		in   string
		want ssnRule
	}{
		{"", ssnRule{}},
		{"a", ssnRule{Num: 1, Names: []string{"a"}}},
		{"a, b", ssnRule{Num: 1, Names: []string{"a", "b"}}},
		{"2 (a,b)", ssnRule{Num: 2, Names: []string{"a", "b"}}},
		{"FIRST 2 (a,b,c)", ssnRule{Num: 2, Names: []string{"a", "b", "c"}}},
		{`ANY 2 (a,"B c",d)`, ssnRule{Num: 2, Names: []string{"a", "B c", "d"}, Any: true}},
		{"any 1 (a)", ssnRule{Num: 1, Names: []string{"a"}, Any: true}},
		{"*", ssnRule{Unknown: true}},
		{"ANY 2 (a,", ssnRule{Unknown: true}},
	}
	for _, c := range cases {
		got := parseSSN(c.in)
		if got.Num != c.want.Num || got.Any != c.want.Any || got.Unknown != c.want.Unknown ||
			strings.Join(got.Names, "|") != strings.Join(c.want.Names, "|") {
			t.Errorf("parseSSN(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestQuorumNeed(t *testing.T) {
	cases := []struct {
		voters []string
		ssn    string
		want   int
	}{
		{nil, "", 0},
		{[]string{"a"}, "", 1}, // async commits: no voter is known to hold them
		{[]string{"a", "b", "c"}, "ANY 2 (a,b,c)", 1}, // |S| - n
		{[]string{"a", "b", "c"}, "ANY 1 (a,b,c)", 2}, // any one of three
		{[]string{"a", "b"}, "ANY 2 (a,b,d)", 1},      // one holder may be d
		{[]string{"a", "b"}, "ANY 2 (a,b)", 0},        // both hold it
		{[]string{"a", "b", "c"}, "ANY 1 (a)", 2},     // only a is sure
		{[]string{"a", "b", "c"}, "ANY 3 (a,b)", 0},   // nothing can be acknowledged
		{[]string{"a", "b"}, "*", 2},                  // unknown holders
		{[]string{"a", "b", "c"}, "FIRST 2 (a,b)", 1}, // c never holds
		{[]string{"A", "b"}, "ANY 2 (a,B)", 0},        // names compare without case
		{[]string{"a"}, "ANY 2 (a," + SyncPlaceholder + ")", 0},
	}
	for _, c := range cases {
		if got := quorumNeed(c.voters, parseSSN(c.ssn)); got != c.want {
			t.Errorf("quorumNeed(%v, %q) = %d, want %d", c.voters, c.ssn, got, c.want)
		}
	}
}

func TestFormatQuorumSSN(t *testing.T) {
	if got := FormatQuorumSSN([]string{"c", "a-1", "b"}, 2); got != `ANY 2 ("a-1",b,c)` {
		t.Errorf("got %q", got)
	}
	if got := FormatQuorumSSN([]string{"a"}, 1); got != "ANY 1 (a)" {
		t.Errorf("got %q", got)
	}
	if got := FormatQuorumSSN(nil, 1); got != "" {
		t.Errorf("got %q", got)
	}
}

// TestNextQuorum is one cycle from a given state: the key written first (if
// any) and the GUC asked for.
func TestNextQuorum(t *testing.T) {
	cases := []struct {
		name      string
		alive     []string // standbys streaming (a, b, c, d exist)
		eff       string   // synchronous_standby_names in effect
		key       *cluster.SyncState
		confirmed bool // the GUC in effect was recorded and every alive standby replayed past it
		count     int  // synchronous_node_count (default 2)
		strict    bool
		on        bool // synchronous_mode: on instead of quorum
		wantKey   *cluster.SyncState
		wantGUC   string
	}{
		{name: "no key: publish the leader, list all", alive: []string{"a", "b", "c"},
			wantKey: qkey("pg1", 0), wantGUC: "ANY 2 (a,b,c)"},
		{name: "listed, not yet confirmed: wait", alive: []string{"a", "b", "c"}, eff: "ANY 2 (a,b,c)", key: qkey("pg1", 0),
			wantGUC: "ANY 2 (a,b,c)"},
		{name: "listed and confirmed: publish voters, quorum |S|-n", alive: []string{"a", "b", "c"}, eff: "ANY 2 (a,b,c)",
			key: qkey("pg1", 0), confirmed: true, wantKey: qkey("pg1", 1, "a", "b", "c"), wantGUC: "ANY 2 (a,b,c)"},
		{name: "steady: nothing", alive: []string{"a", "b", "c"}, eff: "ANY 2 (a,b,c)", key: qkey("pg1", 1, "a", "b", "c"),
			confirmed: true, wantGUC: "ANY 2 (a,b,c)"},
		{name: "a standby dies: GUC first (the key stays safe)", alive: []string{"a", "b"}, eff: "ANY 2 (a,b,c)",
			key: qkey("pg1", 1, "a", "b", "c"), confirmed: true, wantGUC: "ANY 2 (a,b)"},
		{name: "then the key follows once confirmed", alive: []string{"a", "b"}, eff: "ANY 2 (a,b)",
			key: qkey("pg1", 1, "a", "b", "c"), confirmed: true, wantKey: qkey("pg1", 0, "a", "b"), wantGUC: "ANY 2 (a,b)"},
		{name: "a standby joins: quorum raised first, then the GUC", alive: []string{"a", "b", "d"}, eff: "ANY 2 (a,b)",
			key: qkey("pg1", 0, "a", "b"), confirmed: true, wantKey: qkey("pg1", 1, "a", "b"), wantGUC: "ANY 2 (a,b,d)"},
		{name: "node count 2 -> 1: quorum raised first", alive: []string{"a", "b", "c"}, eff: "ANY 2 (a,b,c)", count: 1,
			key: qkey("pg1", 1, "a", "b", "c"), confirmed: true, wantKey: qkey("pg1", 2, "a", "b", "c"), wantGUC: "ANY 1 (a,b,c)"},
		{name: "node count 1 -> 2: GUC first", alive: []string{"a", "b", "c"}, eff: "ANY 1 (a,b,c)",
			key: qkey("pg1", 2, "a", "b", "c"), confirmed: true, wantGUC: "ANY 2 (a,b,c)"},
		{name: "node count 1 -> 2 confirmed: quorum lowered", alive: []string{"a", "b", "c"}, eff: "ANY 2 (a,b,c)",
			key: qkey("pg1", 2, "a", "b", "c"), confirmed: true, wantKey: qkey("pg1", 1, "a", "b", "c"), wantGUC: "ANY 2 (a,b,c)"},
		{name: "strict, too few: commits wait on the voters, key kept", alive: []string{"a"}, eff: "ANY 2 (a,b,c)", strict: true,
			key: qkey("pg1", 1, "a", "b", "c"), confirmed: true, wantGUC: "ANY 2 (a,b,c)"},
		{name: "strict, nobody ever listed: placeholder", strict: true, key: qkey("pg1", 0),
			wantGUC: "ANY 2 (" + SyncPlaceholder + ")"},
		{name: "non-strict, too few: key made safe first, fewer acknowledgements", alive: []string{"a"}, eff: "ANY 2 (a,b,c)",
			key: qkey("pg1", 1, "a", "b", "c"), confirmed: true, wantKey: qkey("pg1", 0), wantGUC: "ANY 1 (a)"},
		{name: "non-strict, none left: no voters, asynchronous", eff: "ANY 2 (a,b,c)",
			key: qkey("pg1", 1, "a", "b", "c"), confirmed: true, wantKey: qkey("pg1", 0), wantGUC: ""},
		{name: "strict off -> on with the placeholder: listed again", alive: []string{"a", "b"}, eff: "ANY 2 (" + SyncPlaceholder + ")",
			key: qkey("pg1", 0), confirmed: true, wantGUC: "ANY 2 (a,b)"},
		{name: "mode on -> quorum: quorum raised before ANY", alive: []string{"a", "b", "c"}, eff: "2 (a,b)",
			key: qkey("pg1", 0, "a", "b"), confirmed: true, wantKey: qkey("pg1", 1, "a", "b"), wantGUC: "ANY 2 (a,b,c)"},
		{name: "mode quorum -> on: the key narrowed before FIRST", alive: []string{"a", "b", "c"}, eff: "ANY 2 (a,b,c)", on: true,
			key: qkey("pg1", 1, "a", "b", "c"), confirmed: true, wantKey: qkey("pg1", 0), wantGUC: "2 (a,b)"},
		{name: "key of a former leader: replaced by ours (confirmed standbys)", alive: []string{"a", "b", "c"}, eff: "ANY 2 (a,b,c)",
			key: qkey("pg0", 1, "a", "b", "pg1"), confirmed: true, wantKey: qkey("pg1", 1, "a", "b", "c"), wantGUC: "ANY 2 (a,b,c)"},
		{name: "key of a former leader, nothing confirmed: ours without voters", alive: []string{"a", "b", "c"}, eff: "ANY 2 (a,b,c)",
			key: qkey("pg0", 1, "a", "b", "pg1"), wantKey: qkey("pg1", 0), wantGUC: "ANY 2 (a,b,c)"},
		{name: "an invalid key (quorum >= voters) is not trusted", alive: []string{"a", "b"}, eff: "ANY 2 (a,b)",
			key: qkey("pg1", 2, "a", "b"), wantKey: qkey("pg1", 0), wantGUC: "ANY 2 (a,b)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newSyncWorld(1, 4)
			for _, n := range w.names {
				w.alive[n] = false
			}
			for _, n := range c.alive {
				w.alive[n], w.pos[n] = true, w.lsn
			}
			w.eff, w.asked, w.askedSet = c.eff, c.eff, true
			w.key = c.key
			if c.count > 0 {
				w.cfg.SynchronousNodeCount = c.count
			}
			w.cfg.SynchronousModeStrict = c.strict
			w.cfg.SynchronousQuorum = !c.on
			w.facts = SyncFacts{Compat4: true, SeenSet: true, SeenFor: c.eff}
			if c.confirmed {
				w.facts.ConfirmSet, w.facts.ConfirmFor, w.facts.ConfirmLSN = true, c.eff, w.lsn
			}
			if c.key == nil {
				w.facts = SyncFacts{Compat4: true}
			}
			st := w.cycle(t)
			switch {
			case c.wantKey == nil && st.WriteSync:
				t.Errorf("wrote %s, want no write", keyString(&st.Sync))
			case c.wantKey != nil && !st.WriteSync:
				t.Errorf("no write, want %s", keyString(c.wantKey))
			case c.wantKey != nil && keyString(&st.Sync) != keyString(c.wantKey):
				t.Errorf("wrote %s, want %s", keyString(&st.Sync), keyString(c.wantKey))
			}
			if st.GUC != c.wantGUC {
				t.Errorf("GUC %q, want %q", st.GUC, c.wantGUC)
			}
		})
	}
}
