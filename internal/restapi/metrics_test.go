package restapi

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func parseMetrics(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("metrics are not valid Prometheus text: %v\n%s", err, body)
	}
	return fams
}

func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
	m := f.GetMetric()[0]
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// Patroni 3.0.2's metric set and TYPEs (api.py do_GET_metrics).
var metrics302 = map[string]dto.MetricType{
	"patroni_version": dto.MetricType_GAUGE, "patroni_postgres_running": dto.MetricType_GAUGE,
	"patroni_postmaster_start_time": dto.MetricType_GAUGE, "patroni_master": dto.MetricType_GAUGE,
	"patroni_primary": dto.MetricType_GAUGE, "patroni_xlog_location": dto.MetricType_COUNTER,
	"patroni_standby_leader": dto.MetricType_GAUGE, "patroni_replica": dto.MetricType_GAUGE,
	"patroni_sync_standby": dto.MetricType_GAUGE, "patroni_xlog_received_location": dto.MetricType_COUNTER,
	"patroni_xlog_replayed_location": dto.MetricType_COUNTER, "patroni_xlog_replayed_timestamp": dto.MetricType_GAUGE,
	"patroni_xlog_paused": dto.MetricType_GAUGE, "patroni_postgres_server_version": dto.MetricType_GAUGE,
	"patroni_cluster_unlocked": dto.MetricType_GAUGE, "patroni_failsafe_mode_is_active": dto.MetricType_GAUGE,
	"patroni_postgres_timeline": dto.MetricType_COUNTER, "patroni_dcs_last_seen": dto.MetricType_GAUGE,
	"patroni_pending_restart": dto.MetricType_GAUGE, "patroni_is_paused": dto.MetricType_GAUGE,
}

func TestMetrics302(t *testing.T) {
	srv, _ := newTestServer(t, primaryLeader())
	rec := do(t, srv.Handler(), http.MethodGet, "/metrics", "")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	golden(t, "metrics_primary_302.golden", rec.Body.Bytes())
	fams := parseMetrics(t, rec.Body.Bytes())
	if len(fams) != len(metrics302) {
		t.Errorf("got %d families, want %d", len(fams), len(metrics302))
	}
	for name, typ := range metrics302 {
		f, ok := fams[name]
		if !ok {
			t.Errorf("missing %s", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s: type %v, want %v", name, f.GetType(), typ)
		}
		labels := f.GetMetric()[0].GetLabel()
		if len(labels) != 1 || labels[0].GetName() != "scope" || labels[0].GetValue() != "pg-test" {
			t.Errorf("%s: 3.0.2 labels must be {scope}: %v", name, labels)
		}
	}
	for name, want := range map[string]float64{
		"patroni_version": 30002, "patroni_master": 1, "patroni_primary": 1, "patroni_replica": 0,
		"patroni_xlog_location": testOptime + 64, "patroni_postgres_timeline": 3,
		"patroni_postmaster_start_time": 1724873966.352526, "patroni_dcs_last_seen": 1724873999,
		"patroni_postgres_server_version": 150008, "patroni_cluster_unlocked": 0,
	} {
		if got := metricValue(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if !strings.Contains(rec.Body.String(), "patroni_version{scope=\"pg-test\"} 030002\n") {
		t.Errorf("patroni_version must be the zero-padded semver")
	}
}

func TestMetrics4(t *testing.T) {
	s := replicaStreaming()
	s.Compat = cluster.Compat4
	s.Scope = `we"ird\scope`
	srv, _ := newTestServer(t, s)
	body := do(t, srv.Handler(), http.MethodGet, "/metrics", "").Body.Bytes()
	golden(t, "metrics_replica_4.golden", body)
	fams := parseMetrics(t, body)
	if _, has := fams["patroni_master"]; has {
		t.Errorf("patroni_master was removed in 4.0")
	}
	for _, name := range []string{"patroni_quorum_standby", "patroni_postgres_streaming",
		"patroni_postgres_in_archive_recovery", "patroni_postgres_state"} {
		if _, has := fams[name]; !has {
			t.Errorf("4.x metric %s missing", name)
		}
	}
	if fams["patroni_postgres_timeline"].GetType() != dto.MetricType_GAUGE {
		t.Errorf("patroni_postgres_timeline is a gauge since 4.1.4")
	}
	labels := fams["patroni_replica"].GetMetric()[0].GetLabel()
	names := []string{labels[0].GetName(), labels[1].GetName()}
	slices.Sort(names)
	if len(labels) != 2 || names[0] != "name" || names[1] != "scope" {
		t.Errorf("4.x labels must be {scope,name}: %v", labels)
	}
	for name, want := range map[string]float64{
		"patroni_replica": 1, "patroni_primary": 0, "patroni_postgres_streaming": 1,
		"patroni_xlog_received_location": testOptime, "patroni_xlog_replayed_location": testOptime - 100,
		"patroni_xlog_replayed_timestamp": 1724873999, "patroni_postgres_state": 5,
	} {
		if got := metricValue(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestMetricsStoppedAndDCSDown(t *testing.T) {
	srv, _ := newTestServer(t, stoppedNode())
	fams := parseMetrics(t, do(t, srv.Handler(), http.MethodGet, "/metrics", "").Body.Bytes())
	for name, want := range map[string]float64{"patroni_postgres_running": 0, "patroni_postmaster_start_time": 0,
		"patroni_postgres_server_version": 0, "patroni_postgres_timeline": 0, "patroni_replica": 1} {
		if got := metricValue(t, fams, name); got != want {
			t.Errorf("stopped %s = %v, want %v", name, got, want)
		}
	}
	srv, _ = newTestServer(t, pausedDCSDown())
	fams = parseMetrics(t, do(t, srv.Handler(), http.MethodGet, "/metrics", "").Body.Bytes())
	if metricValue(t, fams, "patroni_cluster_unlocked") != 1 || metricValue(t, fams, "patroni_is_paused") != 1 {
		t.Errorf("DCS down: cluster_unlocked and is_paused must be 1")
	}
}
