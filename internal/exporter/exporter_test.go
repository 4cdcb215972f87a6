package exporter

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// deadDSN points at a port nothing listens on.
func deadDSN(t testing.TB) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=2", testenv.FreePort(t))
}

func getPath(t testing.TB, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "dsn is required") {
		t.Errorf("empty DSN: %v", err)
	}
	if err := (Config{DSN: "postgres://x@/db?bad_option=%zz"}).Validate(); err == nil {
		t.Error("unparsable DSN accepted")
	}
	if err := (Config{DSN: "host=/tmp", PoolSize: -1}).Validate(); err == nil {
		t.Error("negative pool size accepted")
	}
	if err := (Config{DSN: "host=/tmp", ScrapeTimeout: -time.Second}).Validate(); err == nil {
		t.Error("negative timeout accepted")
	}
	d := Config{DSN: "host=/tmp"}.withDefaults()
	if d.Listen != ":9630" || d.PoolSize != DefaultPoolSize || d.Concurrency != DefaultConcurrency || len(d.ExcludeDatabases) != 2 || d.Now == nil || d.Logger == nil {
		t.Errorf("defaults: %+v", d)
	}
	if err := (Config{DSN: "host=/tmp", MetricsPath: "metrics"}).Validate(); err == nil {
		t.Error("relative metrics path accepted")
	}
	if err := (Config{DSN: "host=/tmp", ConstLabels: map[string]string{"bad-name": "x"}}).Validate(); err == nil {
		t.Error("invalid constant label name accepted")
	}
}

func TestPostgresDown(t *testing.T) {
	e, err := New(Config{DSN: deadDSN(t), Logger: testLogger(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	code, body := getPath(t, e.Handler(), PathUp)
	if code != http.StatusServiceUnavailable || body != "down\n" {
		t.Errorf("/up = %d %q, want 503 down", code, body)
	}
	fams := gather(t, e.Registry())
	if v := fams["pg_up"].values[0]; v != 0 {
		t.Errorf("pg_up = %v", v)
	}
	for _, absent := range []string{"pg_in_recovery", "pg_version", "pg_db_xact_commit"} {
		if fams[absent] != nil {
			t.Errorf("%s reported while postgres never answered", absent)
		}
	}
	if fams["pg_exporter_up"] == nil || fams["go_goroutines"] == nil {
		t.Error("self metrics missing while postgres is down")
	}
}

func TestUpEndpoint(t *testing.T) {
	pg := testenv.StartPostgres(t)
	e := newTestExporter(t, pg, nil, nil)
	code, body := getPath(t, e.Handler(), PathUp)
	if code != http.StatusOK || body != "primary\n" {
		t.Errorf("/up = %d %q, want 200 primary", code, body)
	}
	// HEAD works too (HAProxy-style checks).
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodHead, PathUp, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("HEAD /up = %d", rec.Code)
	}
	if code, _ := getPath(t, e.Handler(), "/nope"); code != http.StatusNotFound {
		t.Errorf("unknown path = %d", code)
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	snap := fixedSnapshot()
	e, err := New(Config{Listen: addr, DSN: deadDSN(t), Logger: testLogger(t)},
		func() *cluster.Snapshot { return snap })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + PathMetrics)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /metrics: %d", resp.StatusCode)
			}
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"pg_up 0", "pgnoded_role{role=\"primary\"} 1", "pg_exporter_up 1", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := client.Get("http://" + addr + PathUp); err == nil {
		t.Error("still serving after shutdown")
	}
}
