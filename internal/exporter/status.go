package exporter

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Status is what pgnoded reports about its exporter, on :9630 and on the REST
// API's /metrics (which stays up when :9630 cannot be bound): whether the port
// is served and whether a fallback collector set is in use. Safe for concurrent use.
type Status struct {
	up       atomic.Bool
	fallback atomic.Bool
}

// Names and help of the two gauges (Prometheus naming: no unit, 0/1 values).
const (
	metricExporterUp       = "pgnoded_exporter_up"
	helpExporterUp         = "Whether the exporter's port is bound and served (1) or not (0, retried every few seconds)."
	metricConfigFallback   = "pgnoded_exporter_config_fallback"
	helpConfigFallback     = "Whether the collector file could not be loaded and a fallback set is served (1): the built-in set at start, the previous set after a failed reload."
	statusMetricTextPrefix = "# HELP "
)

var (
	descExporterServing = prometheus.NewDesc(metricExporterUp, helpExporterUp, nil, nil)
	descConfigFallback  = prometheus.NewDesc(metricConfigFallback, helpConfigFallback, nil, nil)
)

// Up reports whether the exporter's port is bound and served.
func (s *Status) Up() bool { return s.up.Load() }

// Fallback reports whether a fallback collector set is served.
func (s *Status) Fallback() bool { return s.fallback.Load() }

func (s *Status) setUp(v bool)       { s.up.Store(v) }
func (s *Status) setFallback(v bool) { s.fallback.Store(v) }

// AppendMetrics appends both gauges to b in the Prometheus text format.
func (s *Status) AppendMetrics(b []byte) []byte {
	add := func(name, help string, v bool) {
		b = append(b, statusMetricTextPrefix+name+" "+help+"\n# TYPE "+name+" gauge\n"+name+" "...)
		if v {
			b = append(b, "1\n"...)
		} else {
			b = append(b, "0\n"...)
		}
	}
	add(metricExporterUp, helpExporterUp, s.Up())
	add(metricConfigFallback, helpConfigFallback, s.Fallback())
	return b
}

// statusCollector serves the same gauges on :9630.
type statusCollector struct{ s *Status }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descExporterServing
	ch <- descConfigFallback
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- gauge(descExporterServing, b2f(c.s.Up()))
	ch <- gauge(descConfigFallback, b2f(c.s.Fallback()))
}
