package exporter

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// BenchmarkScrapeDefaultSet measures a full /metrics scrape of the default
// collector set: 10 databases (postgres with 200 tables and their 200 primary
// key indexes, 9 more with 5 tables each). "cold" expires every cache before
// each scrape, so every query runs; "cached" is a second Prometheus server
// scraping within the TTLs.
//
//	go test -run '^$' -bench ScrapeDefaultSet -benchtime 50x ./internal/exporter/
func BenchmarkScrapeDefaultSet(b *testing.B) {
	pg := testenv.StartPostgres(b)
	execSQL(b, pg, "", `DO $$ BEGIN
		FOR i IN 1..200 LOOP
			EXECUTE format('CREATE TABLE bench_%s (id int PRIMARY KEY, v text)', i);
			EXECUTE format('INSERT INTO bench_%s SELECT g, md5(g::text) FROM generate_series(1, 20) g', i);
		END LOOP; END $$`, "ANALYZE")
	for d := 1; d <= 9; d++ {
		db := fmt.Sprintf("bench_db%d", d)
		execSQL(b, pg, "", "CREATE DATABASE "+db)
		execSQL(b, pg, db, `DO $$ BEGIN FOR i IN 1..5 LOOP
			EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY)', i); END LOOP; END $$`)
	}
	for _, mode := range []string{"cold", "cached"} {
		b.Run(mode, func(b *testing.B) {
			clock := newFakeClock()
			e := newTestExporter(b, pg, func(c *Config) { c.Now = clock.Now }, nil)
			h := e.Handler()
			scrape := func() *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathMetrics, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("scrape: %d", rec.Code)
				}
				return rec
			}
			body := scrape().Body.String() // opens the connections, fills the caches
			size, series := len(body), 0
			for _, line := range strings.Split(body, "\n") {
				if line != "" && line[0] != '#' {
					series++
				}
			}
			b.ReportAllocs()
			start := time.Now()
			n := 0
			for b.Loop() {
				if mode == "cold" {
					clock.Advance(time.Hour)
				}
				scrape()
				n++
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(n), "ms/scrape")
			b.ReportMetric(float64(series), "series")
			b.ReportMetric(float64(size)/1024, "KiB/scrape")
			b.ReportMetric(rssMiB(b), "rss_MiB")
		})
	}
}

// rssMiB is this process's resident set size (VmRSS).
func rssMiB(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Logf("rss: %v", err)
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
