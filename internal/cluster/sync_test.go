package cluster

import (
	"slices"
	"testing"
)

func TestSyncStateListsByCompat(t *testing.T) {
	s := func(leader, standbys string) *SyncState { return &SyncState{Leader: leader, SyncStandby: &standbys} }
	cases := []struct {
		name      string
		sync      *SyncState
		member    string
		v302, v4x bool
	}{
		{"nil key", nil, "pg2", false, false},
		{"no sync_standby", &SyncState{Leader: "pg1"}, "pg2", false, false},
		{"one standby", s("pg1", "pg2"), "pg2", true, true},
		{"several, spaces", s("pg1", " pg2 , pg3,"), "pg3", true, true},
		{"not listed", s("pg1", "pg2,pg3"), "pg4", false, false},
		{"the leader is not a standby", s("pg1", "pg2"), "pg1", false, false},
		{"case differs: 4.x ignores case", s("pg1", "PG2"), "pg2", false, true},
		{"no leader: 4.x counts nobody", s("", "pg2"), "pg2", true, false},
		{"empty list", s("pg1", ""), "pg2", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.sync.Lists(c.member, Compat302); got != c.v302 {
				t.Errorf("3.0.2: Lists(%q) = %v, want %v", c.member, got, c.v302)
			}
			if got := c.sync.Lists(c.member, Compat4); got != c.v4x {
				t.Errorf("4.x: Lists(%q) = %v, want %v", c.member, got, c.v4x)
			}
		})
	}
	sb := " a,, b ,c "
	if got := (&SyncState{SyncStandby: &sb}).Standbys(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Standbys = %q", got)
	}
}

func TestParseDynamicConfigSynchronousMode(t *testing.T) {
	cases := []struct {
		in           string
		mode, quorum bool
		err          bool
	}{
		{`{}`, false, false, false},
		{`{"synchronous_mode": true}`, true, false, false},
		{`{"synchronous_mode": "on"}`, true, false, false},
		{`{"synchronous_mode": "off"}`, false, false, false},
		{`{"synchronous_mode": "quorum"}`, true, true, false},
		{`{"synchronous_mode": " Quorum "}`, true, true, false},
		{`{"synchronous_mode": "sometimes"}`, false, false, true},
	}
	for _, c := range cases {
		got, err := ParseDynamicConfig([]byte(c.in))
		if (err != nil) != c.err {
			t.Errorf("%s: err %v, want error %v", c.in, err, c.err)
		}
		if got.SynchronousMode != c.mode || got.SynchronousQuorum != c.quorum {
			t.Errorf("%s: mode %v quorum %v, want %v %v", c.in, got.SynchronousMode, got.SynchronousQuorum, c.mode, c.quorum)
		}
	}
}

func TestBuildDocQuorumRole(t *testing.T) {
	v := docView()
	v.Config = &DynamicConfig{}
	in := func(n string) bool { return n == "pg2" || n == "pg3" }
	for _, c := range []struct {
		quorum bool
		want   string
	}{{false, "sync_standby"}, {true, "quorum_standby"}} {
		doc := BuildDoc(v, DocOptions{IsSync: in, Quorum: c.quorum})
		for _, m := range doc.Members {
			want := map[string]string{"pg1": "leader", "pg2": c.want, "pg3": c.want, "pg4": "replica"}[m.Name]
			if m.Role != want {
				t.Errorf("quorum %v: %s role %s, want %s", c.quorum, m.Name, m.Role, want)
			}
		}
	}
}
