package exporter

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPrimaryReplicaAndPromotion scrapes a streaming pair: the replica branches
// (pg_replica_only is fatal, so it must work on a standby), the primary's view
// of its standby, and pg_in_recovery flipping to 0 after a promotion.
func TestPrimaryReplicaAndPromotion(t *testing.T) {
	primary := testenv.StartPostgres(t)
	execSQL(t, primary, "", "SELECT pg_create_physical_replication_slot('testenv_replica')")
	replica := primary.StartReplica(t, "primary_slot_name = 'testenv_replica'", "hot_standby_feedback = on")
	pe := newTestExporter(t, primary, nil, nil)
	re := newTestExporter(t, replica, nil, nil)

	streaming := map[string]string{"appname": "testenv_replica"}
	waitFor(t, "the primary to report its streaming standby", 30*time.Second, func() bool {
		f := gather(t, pe.Registry())
		v, ok := f["pg_downstream_count"].value(map[string]string{"state": "streaming"})
		return ok && v == 1 && f["pg_repl_replay_diff"] != nil && f["pg_repl_replay_diff"].has(streaming)
	})
	pf := gather(t, pe.Registry())
	for _, name := range []string{"pg_repl_lsn", "pg_repl_replay_lag", "pg_repl_sync_state", "pg_repl_state", "pg_repl_sent_diff"} {
		if f := pf[name]; f == nil || f.labelNames() != "address,appname,pid,usename" || !f.has(streaming) {
			t.Errorf("%s missing or wrong labels", name)
		}
	}
	if v, _ := pf["pg_repl_sync_state"].value(streaming); v != 0 {
		t.Errorf("pg_repl_sync_state = %v, want 0 (async)", v)
	}
	if v, _ := pf["pg_slot_active"].value(map[string]string{"slot_name": "testenv_replica", "slot_type": "physical"}); v != 1 {
		t.Errorf("pg_slot_active = %v", v)
	}
	if pf["pg_slot_retained_bytes"].labelNames() != "datname,plugin,slot_name,slot_type" {
		t.Errorf("pg_slot labels: %s", pf["pg_slot_retained_bytes"].labelNames())
	}

	rf := gather(t, re.Registry())
	for name, want := range map[string]float64{"pg_up": 1, "pg_in_recovery": 1, "pg_is_in_recovery": 1, "pg_timeline_id": 1} {
		if f := rf[name]; f == nil || f.values[0] != want {
			t.Errorf("replica %s = %v, want %v", name, f, want)
		}
	}
	for _, name := range []string{"pg_receive_lsn", "pg_replay_lsn", "pg_lag", "pg_last_replay_time",
		"pg_recv_flush_lsn", "pg_recv_flush_tli", "pg_recv_state", "pg_db_confl_confl_lock"} {
		if rf[name] == nil {
			t.Errorf("replica lacks %s", name)
		}
	}
	if l := rf["pg_recv_flush_tli"].labelNames(); l != "sender_host,sender_port,slot_name" {
		t.Errorf("pg_recv labels: %s", l)
	}
	if !rf["pg_recv_flush_tli"].has(map[string]string{"slot_name": "testenv_replica"}) {
		t.Error("pg_recv slot_name label")
	}
	if rf["pg_repl_lsn"] != nil {
		t.Error("replica reports pg_repl_lsn without a standby of its own")
	}
	// pg_exporter serves the primary-only LSNs on a replica too, as NaN.
	for _, name := range []string{"pg_insert_lsn", "pg_write_lsn", "pg_flush_lsn"} {
		if f := rf[name]; f == nil || !math.IsNaN(f.values[0]) {
			t.Errorf("replica %s = %v, want NaN", name, f)
		}
	}
	succ := rf["pgnoded_exporter_collector_success"]
	for i, s := range succ.series {
		if succ.values[i] != 1 {
			t.Errorf("collector %s failed on the replica", s["query"])
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, replica.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_promote(true, 30)"); err != nil {
		t.Fatalf("promote: %v", err)
	}
	rf = gather(t, re.Registry())
	for name, want := range map[string]float64{"pg_up": 1, "pg_in_recovery": 0, "pg_is_in_recovery": 0, "pg_timeline_id": 2} {
		if f := rf[name]; f == nil || f.values[0] != want {
			t.Errorf("after promotion %s = %v, want %v", name, f, want)
		}
	}
	if rf["pg_recv_flush_lsn"] != nil || rf["pg_insert_lsn"] == nil || math.IsNaN(rf["pg_insert_lsn"].values[0]) {
		t.Error("after promotion the replica branches are still planned")
	}
}
