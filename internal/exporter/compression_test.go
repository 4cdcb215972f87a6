package exporter

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMetricsUncompressed: /metrics answers identity even to a client offering
// gzip and zstd (why: metricsHandler), in the text format and through the
// promhttp fallback (protobuf).
func TestMetricsUncompressed(t *testing.T) {
	e, err := New(Config{DSN: deadDSN(t), Logger: testLogger(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, accept := range []string{"", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"} {
		req := httptest.NewRequest(http.MethodGet, PathMetrics, nil)
		req.Header.Set("Accept-Encoding", "gzip, zstd, deflate")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		e.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s (Accept %q) = %d", PathMetrics, accept, rec.Code)
		}
		if ce := rec.Header().Get("Content-Encoding"); ce != "" {
			t.Errorf("Accept %q: Content-Encoding = %q, want none", accept, ce)
		}
		if accept != "" {
			continue
		}
		b, _ := io.ReadAll(rec.Body)
		if !strings.Contains(string(b), "pg_up 0") {
			t.Errorf("body is not the plain text exposition:\n%.300s", b)
		}
	}
}
