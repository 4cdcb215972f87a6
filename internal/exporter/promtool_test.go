package exporter

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// promtool's advice accepted for pg_exporter-compatible names (pg_*; the rule is
// in docs/exporter-collectors.md, "Metric names"): counters keep pg_exporter's
// names without _total, and pg_exporter's *_count names (pg_activity_count,
// pg_downstream_count, pg_exporter_*_count, ...) keep their suffix because rules
// and dashboards query them. pgnoded_* metrics, and everything else, must be clean.
var acceptedCompatAdvice = []string{
	`counter metrics should have "_total" suffix`,
	`non-histogram and non-summary metrics should not have "_count" suffix`,
}

// TestPromtoolCheckMetrics lints a real scrape (default set, HA snapshot) with
// promtool from Debian's prometheus package.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("skipping: promtool not installed (apt-get install -y prometheus; then systemctl stop prometheus)")
	}
	pg := testenv.StartPostgres(t, "wal_level = logical")
	execSQL(t, pg, "", "CREATE DATABASE app",
		"CREATE TABLE t1(id int PRIMARY KEY)", "INSERT INTO t1 SELECT generate_series(1, 10)",
		"SELECT pg_create_physical_replication_slot('pg_test_2', true)",
		"SELECT pg_create_logical_replication_slot('logical_1', 'test_decoding')")
	snap := fixedSnapshot()
	e := newTestExporter(t, pg, nil, func() *cluster.Snapshot { return snap })
	text := scrapeText(t, e)
	for _, want := range []string{"pg_slot_retained_bytes{", "pgnoded_role{", "pg_table_tbl_scan{"} {
		if !strings.Contains(text, want) {
			t.Fatalf("scrape lacks %s", want)
		}
	}

	checkPromtool(t, promtool, text)
}

// checkPromtool lints a scrape with promtool check metrics: only the advice
// accepted for pg_exporter's names (acceptedCompatAdvice) may remain.
func checkPromtool(t *testing.T, promtool, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run() // exit status 3 when there are lint findings

	accepted := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		name, msg, _ := strings.Cut(line, " ")
		ok := strings.HasPrefix(name, "pg_") && !strings.HasPrefix(name, "pgnoded_")
		if ok {
			ok = false
			for _, a := range acceptedCompatAdvice {
				ok = ok || msg == a
			}
		}
		if !ok {
			t.Errorf("promtool: %s", line)
			continue
		}
		accepted++
	}
	if runErr != nil && accepted == 0 && !t.Failed() {
		t.Fatalf("promtool failed without findings: %v: %s", runErr, out.String())
	}
	t.Logf("promtool: %d accepted compatibility findings (pg_exporter names), no others", accepted)
}
