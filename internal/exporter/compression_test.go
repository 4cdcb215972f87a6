package exporter

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMetricsUncompressed: /metrics answers identity even to a client offering
// gzip and zstd, so no compressor (~0.8 MiB for gzip) is held between scrapes.
func TestMetricsUncompressed(t *testing.T) {
	e, err := New(Config{DSN: deadDSN(t), Logger: testLogger(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	req := httptest.NewRequest(http.MethodGet, PathMetrics, nil)
	req.Header.Set("Accept-Encoding", "gzip, zstd, deflate")
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d", PathMetrics, rec.Code)
	}
	if ce := rec.Header().Get("Content-Encoding"); ce != "" {
		t.Errorf("Content-Encoding = %q, want none", ce)
	}
	b, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(b), "pg_up 0") {
		t.Errorf("body is not the plain text exposition:\n%.300s", b)
	}
}
