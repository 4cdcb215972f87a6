package exporter

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// escapingCollectors adds label values the text format must escape and a
// histogram to the custom collectors.
const escapingCollectors = customCollectors + `
t_escape:
  query: |
    SELECT E'back\\slash "quoted"\nnewline' AS l, 1 AS v
  tags: [cluster]
  metrics:
    - l: { usage: LABEL }
    - v: { usage: GAUGE, description: "help with a back\\slash" }
`

// parseText parses a text-format scrape with expfmt's parser.
func parseText(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("expfmt cannot parse the scrape: %v\n%s", err, body)
	}
	return fams
}

// seriesOfFamily lists a family's series as text (labels and value), sorted.
func seriesOfFamily(mf *dto.MetricFamily) []string {
	var out []string
	for _, m := range mf.Metric {
		var b strings.Builder
		for _, l := range m.Label {
			b.WriteString(l.GetName() + "=" + l.GetValue() + ",")
		}
		b.WriteString(" ")
		b.WriteString(m.String())
		out = append(out, b.String())
	}
	sort.Strings(out)
	return out
}

// TestTextExpositionMatchesPromhttp scrapes /metrics (textSink) and then the
// same registry through promhttp within the TTLs: both parse with expfmt, with
// the same families, types, help texts and series, constant labels included;
// only the self and runtime metrics that move between two scrapes may differ.
// A client offering gzip gets the same text uncompressed, and promtool accepts it.
func TestTextExpositionMatchesPromhttp(t *testing.T) {
	pg := testenv.StartPostgres(t)
	execSQL(t, pg, "", "CREATE DATABASE app")
	for _, file := range []string{"", writeCollectors(t, escapingCollectors)} {
		name := "built-in set"
		if file != "" {
			name = "custom collectors"
		}
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			snap := fixedSnapshot()
			e := newTestExporter(t, pg, func(c *Config) {
				c.CollectorFile, c.Now = file, clock.Now
				c.ConstLabels = map[string]string{"cls": "pg-test", "zz_ins": `a"b`}
			}, func() *cluster.Snapshot { return snap })
			fast := scrapeText(t, e)
			rec := httptest.NewRecorder()
			promhttp.HandlerFor(e.Registry(), promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathMetrics, nil))
			slow := rec.Body.String()
			got, want := parseText(t, fast), parseText(t, slow)
			for n, w := range want {
				g := got[n]
				if g == nil {
					t.Errorf("%s: served by promhttp, missing from /metrics", n)
					continue
				}
				if g.GetType() != w.GetType() || g.GetHelp() != w.GetHelp() {
					t.Errorf("%s: type %v help %q, promhttp: type %v help %q", n, g.GetType(), g.GetHelp(), w.GetType(), w.GetHelp())
				}
				if strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_") || strings.HasPrefix(n, "pg_exporter_") {
					continue // move between two scrapes
				}
				if gs, ws := seriesOfFamily(g), seriesOfFamily(w); strings.Join(gs, "\n") != strings.Join(ws, "\n") {
					t.Errorf("%s: series differ:\n/metrics: %v\npromhttp: %v", n, gs, ws)
				}
			}
			for n := range got {
				if want[n] == nil {
					t.Errorf("%s: on /metrics, not served by promhttp", n)
				}
			}
			if !strings.Contains(fast, `cls="pg-test"`) || !strings.Contains(fast, `zz_ins="a\"b"`) {
				t.Errorf("constant labels missing or unescaped")
			}
			if file != "" {
				for _, s := range []string{`t_hist_x_bucket{cls="pg-test",odd="0",zz_ins="a\"b",le="+Inf"} 5`,
					`t_escape_v{cls="pg-test",l="back\\slash \"quoted\"\nnewline",zz_ins="a\"b"} 1`,
					`# HELP t_escape_v help with a back\\slash`} {
					if !strings.Contains(fast, s) {
						t.Errorf("/metrics lacks %s", s)
					}
				}
			}

			req := httptest.NewRequest(http.MethodGet, PathMetrics, nil)
			req.Header.Set("Accept-Encoding", "gzip")
			rec = httptest.NewRecorder()
			e.Handler().ServeHTTP(rec, req)
			if ce := rec.Header().Get("Content-Encoding"); ce != "" {
				t.Errorf("Content-Encoding %q, want none (identity)", ce)
			}
			parseText(t, rec.Body.String())
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
				t.Errorf("Content-Type %q", ct)
			}
			if promtool, err := exec.LookPath("promtool"); err == nil && file == "" {
				checkPromtool(t, promtool, fast)
			}
		})
	}
}

// TestMetricsProtobufFallback asks for protobuf: promhttp serves it from the
// registry, postgres metrics included.
func TestMetricsProtobufFallback(t *testing.T) {
	pg := testenv.StartPostgres(t)
	e := newTestExporter(t, pg, nil, nil)
	req := httptest.NewRequest(http.MethodGet, PathMetrics, nil)
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.Contains(ct, "protobuf") {
		t.Fatalf("Content-Type %q, want protobuf", ct)
	}
	dec := expfmt.NewDecoder(rec.Body, expfmt.NewFormat(expfmt.TypeProtoDelim))
	found := false
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		found = found || mf.GetName() == "pg_up"
	}
	if !found {
		t.Error("pg_up missing from the protobuf scrape")
	}
}
