package exporter

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// sleepingCollector reports how many exporter queries were running when it
// started (itself included), then sleeps, so overlapping runs see each other.
func sleepingCollector(branch string, cluster bool) string {
	tags := "[]"
	if cluster {
		tags = "[cluster]"
	}
	return fmt.Sprintf(`
%s:
  query: |
    SELECT (SELECT count(*) FROM pg_stat_activity
             WHERE application_name = 'pgnoded_exporter' AND state = 'active') AS active,
           pg_sleep(0.3) IS NULL AS slept
  tags: %s
  timeout: 5
  metrics:
    - active: { usage: GAUGE, description: exporter queries running when this one started }
    - slept:  { usage: DISCARD }
`, branch, tags)
}

// TestScrapeConcurrencyBounds scrapes four databases with collectors that sleep:
// queries overlap (the scrape is concurrent), but never more than Concurrency
// run at once, and the exporter never holds more connections than PoolSize on
// the main database plus one per other database.
func TestScrapeConcurrencyBounds(t *testing.T) {
	pg := testenv.StartPostgres(t)
	for i := 1; i <= 3; i++ {
		execSQL(t, pg, "", fmt.Sprintf("CREATE DATABASE d%d", i))
	}
	var file strings.Builder
	for i := range 5 {
		file.WriteString(sleepingCollector(fmt.Sprintf("c%d", i), true))
	}
	for i := range 2 {
		file.WriteString(sleepingCollector(fmt.Sprintf("p%d", i), false))
	}
	path := writeCollectors(t, file.String())
	const concurrency, poolSize = 3, 3
	e := newTestExporter(t, pg, func(c *Config) {
		c.CollectorFile = path
		c.Concurrency = concurrency
		c.PoolSize = poolSize
	}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	watcher, err := pgx.Connect(ctx, pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(ctx)
	maxConns := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var n int
			if err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE application_name = 'pgnoded_exporter'`).Scan(&n); err == nil {
				maxConns = max(maxConns, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	fams := gather(t, e.Registry())
	elapsed := time.Since(start)
	cancel()
	<-done

	peak := 0.0
	runs := 0
	for name, f := range fams {
		if !strings.HasSuffix(name, "_active") {
			continue
		}
		for _, v := range f.values {
			peak = max(peak, v)
			runs++
		}
	}
	if want := 5 + 2*4; runs != want {
		t.Fatalf("%d collector runs, want %d", runs, want)
	}
	if peak > concurrency {
		t.Errorf("%v exporter queries ran at once, Concurrency is %d", peak, concurrency)
	}
	if peak < 2 {
		t.Errorf("queries never overlapped (peak %v): the scrape ran serially", peak)
	}
	if limit := poolSize + 3; maxConns > limit {
		t.Errorf("exporter held %d connections, want at most %d (pool %d + one per other database)", maxConns, limit, poolSize)
	}
	t.Logf("13 sleeps of 0.3 s in %v; peak %v queries at once, %d connections", elapsed.Round(time.Millisecond), peak, maxConns)
}
