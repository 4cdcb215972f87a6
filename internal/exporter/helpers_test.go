package exporter

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testLogger logs to the test output when -v is given.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestExporter builds an exporter on pg's postgres database; closed at test end.
func newTestExporter(t testing.TB, pg *testenv.PG, mod func(*Config), snap func() *cluster.Snapshot) *Exporter {
	t.Helper()
	cfg := Config{DSN: pg.DSN(""), Logger: testLogger(t), DefaultTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg, snap)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// scrapeText fetches /metrics through the handler.
func scrapeText(t testing.TB, e *Exporter) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathMetrics, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body.String())
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// execSQL runs statements on database db of pg.
func execSQL(t testing.TB, pg *testenv.PG, db string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatalf("connect %s: %v", db, err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// fakeClock is a clock tests move by hand, so cache expiry is deterministic.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// family is what a scrape produced for one metric name: its type and label sets.
type family struct {
	typ    dto.MetricType
	series []map[string]string
	values []float64
}

func gather(t testing.TB, g prometheus.Gatherer) map[string]*family {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*family{}
	for _, mf := range mfs {
		f := &family{typ: mf.GetType()}
		for _, m := range mf.Metric {
			ls := map[string]string{}
			for _, l := range m.Label {
				ls[l.GetName()] = l.GetValue()
			}
			f.series = append(f.series, ls)
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				f.values = append(f.values, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				f.values = append(f.values, m.GetGauge().GetValue())
			default:
				f.values = append(f.values, math.NaN())
			}
		}
		out[mf.GetName()] = f
	}
	return out
}

// labelNames lists the label names of a family's first series, sorted.
func (f *family) labelNames() string {
	if len(f.series) == 0 {
		return ""
	}
	var ns []string
	for k := range f.series[0] {
		ns = append(ns, k)
	}
	sort.Strings(ns)
	return strings.Join(ns, ",")
}

// has reports a series whose labels include all of want.
func (f *family) has(want map[string]string) bool {
	for _, s := range f.series {
		ok := true
		for k, v := range want {
			if s[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// value returns the value of the series whose labels include want.
func (f *family) value(want map[string]string) (float64, bool) {
	for i, s := range f.series {
		ok := true
		for k, v := range want {
			if s[k] != v {
				ok = false
			}
		}
		if ok {
			return f.values[i], true
		}
	}
	return 0, false
}
