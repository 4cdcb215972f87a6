package dcs

import (
	"reflect"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func view(kv map[string]string) cluster.View {
	entries := map[string]entry{}
	rev := int64(10)
	for k, v := range kv {
		rev++
		entries[k] = entry{value: []byte(v), modRev: rev}
	}
	return buildView(entries)
}

func TestParseFailover(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		want      cluster.Failover
	}{
		{"json", `{"leader":"pg1","member":"pg2","scheduled_at":"2024-01-01T00:00:00+00:00"}`,
			cluster.Failover{Leader: "pg1", Member: "pg2", ScheduledAt: "2024-01-01T00:00:00+00:00"}},
		{"cleared", `{}`, cluster.Failover{}},
		{"legacy leader:candidate", `pg1:pg2`, cluster.Failover{Leader: "pg1", Member: "pg2"}},
		{"legacy candidate only", ` :pg2`, cluster.Failover{Member: "pg2"}},
		{"legacy leader only", `pg1`, cluster.Failover{Leader: "pg1"}},
		{"json not an object", `42`, cluster.Failover{}},
		{"empty", ``, cluster.Failover{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := view(map[string]string{"failover": tc.raw})
			if v.Failover == nil {
				t.Fatal("failover missing")
			}
			got := *v.Failover
			got.ModRevision = 0
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		kv   map[string]string
		want *cluster.StatusKey
	}{
		{"object", map[string]string{"status": `{"optime":123,"slots":{"pg2":100},"retain_slots":["pg2"]}`},
			&cluster.StatusKey{Optime: 123, Slots: map[string]int64{"pg2": 100}}},
		{"bare integer (legacy)", map[string]string{"status": `4567`}, &cluster.StatusKey{Optime: 4567}},
		{"unparsable is empty", map[string]string{"status": `{nope`}, &cluster.StatusKey{}},
		{"optime/leader when status absent", map[string]string{"optime/leader": "999"}, &cluster.StatusKey{Optime: 999}},
		{"status wins over optime/leader", map[string]string{"status": `{"optime":5}`, "optime/leader": "999"},
			&cluster.StatusKey{Optime: 5}},
		{"absent", map[string]string{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := view(tc.kv).Status; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseMembers(t *testing.T) {
	v := view(map[string]string{
		"members/pg1":       `{"conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"running","role":"master","version":"3.0.2","xlog_location":100,"timeline":2,"tags":{"clonefrom":true}}`,
		"members/pg2":       `not json`,
		"members/pg3":       `postgres://replicator@10.0.0.3:5432/postgres?application_name=http://10.0.0.3:8008/patroni`,
		"members/pg4":       `{"api_url":"http://x/patroni","timeline":"oops"}`,
		"members/pg1/extra": `{"state":"ignored"}`,
		"members/":          `{}`,
	})
	if len(v.Members) != 4 {
		t.Fatalf("members = %v, want pg1..pg4 only", v.Members)
	}
	pg1 := v.Members["pg1"]
	if pg1.Name != "pg1" || pg1.Role != "master" || pg1.XLogLocation == nil || *pg1.XLogLocation != 100 ||
		pg1.Timeline != 2 || pg1.Tags["clonefrom"] != true || pg1.ModRevision == 0 {
		t.Errorf("pg1 = %+v", pg1)
	}
	if pg2 := v.Members["pg2"]; pg2.Name != "pg2" || pg2.APIURL != "" || pg2.State != "" {
		t.Errorf("unparsable member should be present and empty: %+v", pg2)
	}
	if pg3 := v.Members["pg3"]; pg3.ConnURL != "postgres://replicator@10.0.0.3:5432/postgres" || pg3.APIURL != "http://10.0.0.3:8008/patroni" {
		t.Errorf("legacy member = %+v", pg3)
	}
	if pg4 := v.Members["pg4"]; pg4.APIURL != "http://x/patroni" {
		t.Errorf("a wrong-typed field should keep the rest: %+v", pg4)
	}
}

func TestParseHistoryRoundTrip(t *testing.T) {
	h := []cluster.HistoryEntry{
		{Timeline: 1, LSN: 25165984, Reason: "no recovery target specified", Timestamp: "2024-05-01T10:00:00.123456+00:00", NewLeader: "pg2"},
		{Timeline: 2, LSN: 50331808, Reason: "no recovery target specified", Timestamp: "2024-05-02T10:00:00+00:00", NewLeader: "pg1"},
	}
	raw, err := EncodeValue(h)
	if err != nil {
		t.Fatal(err)
	}
	want := `[[1,25165984,"no recovery target specified","2024-05-01T10:00:00.123456+00:00","pg2"],[2,50331808,"no recovery target specified","2024-05-02T10:00:00+00:00","pg1"]]`
	if string(raw) != want {
		t.Fatalf("encoded %s\nwant    %s", raw, want)
	}
	v := view(map[string]string{"history": string(raw)})
	if !reflect.DeepEqual(v.History, h) {
		t.Errorf("round trip = %+v", v.History)
	}
	if v.Timeline() != 3 {
		t.Errorf("timeline = %d, want 3", v.Timeline())
	}
	// Patroni 3.0.2 also wrote 3- and 4-element entries; a non-array entry is skipped.
	v = view(map[string]string{"history": `[[1,100,"no recovery target specified"],"junk",[2,200,"x","ts"]]`})
	if len(v.History) != 2 || v.History[0].LSN != 100 || v.History[1].Timestamp != "ts" {
		t.Errorf("legacy history = %+v", v.History)
	}
	if v := view(map[string]string{"history": `{`}); v.History != nil {
		t.Errorf("unparsable history = %+v, want nil", v.History)
	}
}

func TestParseOtherKeys(t *testing.T) {
	v := view(map[string]string{
		"leader":     "pg1",
		"initialize": "",
		"config":     `{"ttl":"20","loop_wait":5,"failsafe_mode":"on","postgresql":{"use_pg_rewind":true}}`,
		"sync":       `{"leader":"pg1","sync_standby":"pg2"}`,
		"failsafe":   `{"pg1":"http://a/patroni","pg2":"http://b/patroni"}`,
	})
	if v.Leader == nil || v.Leader.Name != "pg1" {
		t.Errorf("leader = %+v", v.Leader)
	}
	if v.Initialize == nil || *v.Initialize != "" {
		t.Errorf("initialize = %v, want present and empty", v.Initialize)
	}
	if v.Config == nil || v.Config.TTL != 20 || v.Config.LoopWait != 5 || !v.Config.FailsafeMode || !v.Config.UsePgRewind || v.ConfigRev == 0 {
		t.Errorf("config = %+v rev %d", v.Config, v.ConfigRev)
	}
	if v.Sync == nil || v.Sync.Leader != "pg1" || v.Sync.SyncStandby == nil || *v.Sync.SyncStandby != "pg2" {
		t.Errorf("sync = %+v", v.Sync)
	}
	if !reflect.DeepEqual(v.Failsafe, map[string]string{"pg1": "http://a/patroni", "pg2": "http://b/patroni"}) {
		t.Errorf("failsafe = %v", v.Failsafe)
	}

	v = view(map[string]string{"config": `[1,2]`, "failsafe": `oops`, "sync": `{"leader":null,"sync_standby":null}`})
	if v.Config != nil || string(v.ConfigRaw) != `[1,2]` {
		t.Errorf("non-object config should give nil Config and keep ConfigRaw: %+v %s", v.Config, v.ConfigRaw)
	}
	if v.Failsafe != nil {
		t.Errorf("unparsable failsafe = %v, want nil", v.Failsafe)
	}
	if v.Sync == nil || v.Sync.Leader != "" || v.Sync.SyncStandby != nil {
		t.Errorf("empty sync = %+v", v.Sync)
	}
	if v.Leader != nil || v.Initialize != nil || v.Status != nil || v.Failover != nil {
		t.Errorf("absent keys should be nil: %+v", v)
	}
}

func TestCacheVersions(t *testing.T) {
	c := newCache()
	if !c.put("leader", entry{value: []byte("pg1"), modRev: 5, lease: 1}) {
		t.Error("leader create should be significant")
	}
	if c.put("leader", entry{value: []byte("pg1"), modRev: 5, lease: 1}) {
		t.Error("re-delivered version should be a no-op")
	}
	// Own re-create at 9 applied before the watch delivers the expiry at 7.
	c.put("leader", entry{value: []byte("pg1"), modRev: 9, lease: 2})
	if c.del("leader", 7) || c.entries["leader"].modRev != 9 {
		t.Error("an older delete must not remove a newer version")
	}
	// Own delete at 12 applied before the watch delivers a put at 10.
	c.del("leader", 12)
	if c.put("leader", entry{value: []byte("pg2"), modRev: 10}) {
		t.Error("an older put must not resurrect a deleted key")
	}
	c.prune(12)
	if !c.put("leader", entry{value: []byte("pg2"), modRev: 13}) {
		t.Error("a newer put after the delete should apply")
	}
	if c.put("members/pg1", entry{value: []byte("{}"), modRev: 14}) != true ||
		c.put("members/pg1", entry{value: []byte(`{"a":1}`), modRev: 15}) != false {
		t.Error("members are significant only when they join or leave")
	}
	// A full read at 14 keeps our newer write at 15 and drops keys it does not list.
	c.put("config", entry{value: []byte("{}"), modRev: 3})
	c.replace(map[string]entry{"members/pg1": {value: []byte("{}"), modRev: 14}}, 14)
	if c.entries["members/pg1"].modRev != 15 {
		t.Error("replace lost a newer own write")
	}
	if _, ok := c.entries["config"]; ok {
		t.Error("replace kept a key the read did not list")
	}
}
