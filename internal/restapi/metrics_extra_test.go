package restapi

import (
	"net/http"
	"strconv"
	"testing"
)

// ExtraMetrics appends pgnoded's own gauges after Patroni's, in one valid document.
func TestMetricsExtra(t *testing.T) {
	up := 0
	srv, _ := newTestServer(t, primaryLeader(), func(c *Config) {
		c.ExtraMetrics = func(b []byte) []byte {
			return append(b, "# HELP pgnoded_exporter_up h\n# TYPE pgnoded_exporter_up gauge\npgnoded_exporter_up "+strconv.Itoa(up)+"\n"...)
		}
	})
	for _, want := range []int{0, 1} {
		up = want
		rec := do(t, srv.Handler(), http.MethodGet, "/metrics", "")
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
			t.Fatalf("GET /metrics: %d, Content-Length %s for %d bytes", rec.Code, rec.Header().Get("Content-Length"), rec.Body.Len())
		}
		fams := parseMetrics(t, rec.Body.Bytes())
		if v := metricValue(t, fams, "pgnoded_exporter_up"); v != float64(want) {
			t.Errorf("pgnoded_exporter_up = %v, want %d", v, want)
		}
		if metricValue(t, fams, "patroni_primary") != 1 {
			t.Error("Patroni's metrics lost")
		}
	}
}
