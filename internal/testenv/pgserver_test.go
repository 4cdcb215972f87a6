package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func queryBool(t *testing.T, dsn, sql string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var b bool
	if err := conn.QueryRow(ctx, sql).Scan(&b); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return b
}

func TestStartPostgresAndReplica(t *testing.T) {
	pg := StartPostgres(t, "log_min_messages = warning")
	if !queryBool(t, pg.DSN(""), "SELECT current_setting('server_version_num')::int >= 100000 AND NOT pg_is_in_recovery()") {
		t.Fatal("primary not a running primary")
	}
	r := pg.StartReplica(t)
	if !queryBool(t, r.DSN(""), "SELECT pg_is_in_recovery()") {
		t.Fatal("replica not in recovery")
	}
	deadline := time.Now().Add(30 * time.Second)
	for !queryBool(t, pg.DSN(""), "SELECT EXISTS (SELECT 1 FROM pg_stat_replication WHERE application_name = 'testenv_replica' AND state = 'streaming')") {
		if time.Now().After(deadline) {
			t.Fatal("replica never streamed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
