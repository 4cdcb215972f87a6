package cluster

import (
	"encoding/json"
	"testing"
)

func TestParseDynamicConfigLenientAndDefaults(t *testing.T) {
	c, err := ParseDynamicConfig([]byte(`{"ttl":"20","loop_wait":5,"failsafe_mode":"on","pause":"yes",
		"master_start_timeout":60,"postgresql":{"use_pg_rewind":"true","use_slots":false,
		"parameters":{"max_connections":200},"pg_hba":["host all all 0.0.0.0/0 md5"]},"custom":{"x":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.TTL != 20 || c.LoopWait != 5 || c.RetryTimeout != DefaultRetryTimeout {
		t.Errorf("timing = %d/%d/%d", c.TTL, c.LoopWait, c.RetryTimeout)
	}
	if !c.FailsafeMode || !c.Pause || !c.UsePgRewind || c.UseSlots {
		t.Errorf("booleans parsed wrong: %+v", c)
	}
	if c.PrimaryStartTimeout != 60 {
		t.Errorf("legacy master_start_timeout not honoured: %d", c.PrimaryStartTimeout)
	}
	if c.MaximumLagOnFailover != DefaultMaximumLagOnFailover {
		t.Errorf("maximum_lag_on_failover default = %d", c.MaximumLagOnFailover)
	}
	if c.Parameters["max_connections"] != float64(200) || len(c.PgHBA) != 1 {
		t.Errorf("postgresql section: %v %v", c.Parameters, c.PgHBA)
	}
	if _, ok := c.Raw["custom"]; !ok {
		t.Errorf("unknown keys must be kept in Raw for a lossless round trip")
	}
}

func TestParseDynamicConfigRejects(t *testing.T) {
	for _, in := range []string{`[]`, `{"ttl":"abc"}`, `{"pause":"maybe"}`, `not json`} {
		if _, err := ParseDynamicConfig([]byte(in)); err == nil {
			t.Errorf("%s: expected an error", in)
		}
	}
}

func TestHistoryEntryJSON(t *testing.T) {
	var h []HistoryEntry
	if err := json.Unmarshal([]byte(`[[1,25165984,"no recovery target specified","2024-08-28T19:39:26+00:00","pg-1"],[2,33554592,"x"]]`), &h); err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Timeline != 1 || h[0].LSN != 25165984 || h[0].NewLeader != "pg-1" || h[1].Reason != "x" {
		t.Fatalf("parsed %+v", h)
	}
	out, _ := json.Marshal(h[:1])
	if string(out) != `[[1,25165984,"no recovery target specified","2024-08-28T19:39:26+00:00","pg-1"]]` {
		t.Errorf("marshal = %s", out)
	}
	v := View{History: h}
	if v.Timeline() != 3 {
		t.Errorf("cluster timeline = %d, want last entry + 1 = 3", v.Timeline())
	}
}

func TestWALPositionAndCompat(t *testing.T) {
	primary := PGObservation{CurrentLSN: 100, FlushLSN: 90}
	replica := PGObservation{InRecovery: true, ReceivedLSN: 80, ReplayedLSN: 70}
	if primary.WALPosition() != 100 || replica.WALPosition() != 80 {
		t.Errorf("WALPosition: %d %d", primary.WALPosition(), replica.WALPosition())
	}
	if Compat302.RoleName(RolePrimary) != "master" || Compat4.RoleName(RolePrimary) != "primary" || Compat302.RoleName(RoleReplica) != "replica" {
		t.Errorf("role spelling per compat level is wrong")
	}
}
