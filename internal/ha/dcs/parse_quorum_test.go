package dcs

import "testing"

func TestParseSyncQuorum(t *testing.T) {
	for _, c := range []struct {
		value string
		want  int
	}{
		{`{"leader":"pg1","sync_standby":"pg2,pg3","quorum":1}`, 1},
		{`{"leader":"pg1","sync_standby":"pg2","quorum":"2"}`, 2},
		{`{"leader":"pg1","sync_standby":"pg2"}`, 0},
		{`{"leader":null,"sync_standby":"pg2","quorum":1}`, 0}, // Patroni: quorum only with a leader
		{`{"leader":"pg1","quorum":"x"}`, 0},
	} {
		v := view(map[string]string{"sync": c.value})
		got := 0
		if v.Sync != nil && v.Sync.Quorum != nil {
			got = *v.Sync.Quorum
		}
		if v.Sync == nil || got != c.want {
			t.Errorf("%s: sync %+v, want quorum %d", c.value, v.Sync, c.want)
		}
	}
}
