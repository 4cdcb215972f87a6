package exporter

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// BenchmarkScrapeDefaultSet measures full /metrics scrapes against one server
// with 10 databases (postgres with 200 tables and their 200 primary key
// indexes, 9 more with 5 tables each) and pg_stat_statements loaded.
// "cold" expires every cache before each scrape, so every query runs
// (connections already open); "cached" is a second Prometheus server scraping
// within the TTLs; "first" is a new exporter's first scrape, connection setup
// included (what pg_exporter's first scrape after start costs), and
// "first-serial" the same with one query in flight at a time. "file-first" and
// "file-cached" do the same with a pg_exporter collector file, and
// "file-first-started" times the first scrape after what the daemon does
// before it (collector file loaded, scrape connections warmed), PG_EXPORTER_CONFIG
// (default /etc/pg_exporter.yml when present). With PG_EXPORTER_BIN too,
// "pg_exporter" starts that binary on the same server and file and reports its
// first scrape after start (first-ms/scrape) and the next one (cached-ms/scrape).
// Figures are reported, never asserted.
//
//	go test -run '^$' -bench ScrapeDefaultSet -benchtime 20x ./internal/exporter/
func BenchmarkScrapeDefaultSet(b *testing.B) {
	benchScrapeFixture(b, 10, 200, 5)
}

// BenchmarkScrapeDefaultSetSmall is BenchmarkScrapeDefaultSet on a small node:
// 3 databases (postgres with 20 tables, 2 more with 5 each), the size of the
// server pg_exporter was compared on.
func BenchmarkScrapeDefaultSetSmall(b *testing.B) {
	benchScrapeFixture(b, 3, 20, 5)
}

// benchScrapeFixture starts a server with dbs databases (tables tables in
// postgres, others in each other one) and runs the scrape sub-benchmarks.
func benchScrapeFixture(b *testing.B, dbs, tables, others int) {
	pg := testenv.StartPostgres(b, "shared_preload_libraries = 'pg_stat_statements'")
	execSQL(b, pg, "", "CREATE EXTENSION pg_stat_statements", fmt.Sprintf(`DO $$ BEGIN
		FOR i IN 1..%d LOOP
			EXECUTE format('CREATE TABLE bench_%%s (id int PRIMARY KEY, v text)', i);
			EXECUTE format('INSERT INTO bench_%%s SELECT g, md5(g::text) FROM generate_series(1, 20) g', i);
		END LOOP; END $$`, tables), "ANALYZE")
	for d := 1; d < dbs; d++ {
		db := fmt.Sprintf("bench_db%d", d)
		execSQL(b, pg, "", "CREATE DATABASE "+db)
		execSQL(b, pg, db, fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP
			EXECUTE format('CREATE TABLE t_%%s (id int PRIMARY KEY)', i); END LOOP; END $$`, others))
	}
	file := os.Getenv("PG_EXPORTER_CONFIG")
	if _, err := os.Stat("/etc/pg_exporter.yml"); file == "" && err == nil {
		file = "/etc/pg_exporter.yml"
	}
	for _, mode := range []string{"cold", "cached"} {
		b.Run(mode, func(b *testing.B) { benchScrapes(b, pg, "", mode) })
	}
	b.Run("first", func(b *testing.B) { benchFirstScrape(b, pg, "", 0, false) })
	b.Run("first-serial", func(b *testing.B) { benchFirstScrape(b, pg, "", 1, false) })
	if file == "" {
		b.Log("no pg_exporter collector file (PG_EXPORTER_CONFIG): file-* and pg_exporter-* skipped")
		return
	}
	b.Run("file-first", func(b *testing.B) { benchFirstScrape(b, pg, file, 0, false) })
	b.Run("file-first-started", func(b *testing.B) { benchFirstScrape(b, pg, file, 0, true) })
	b.Run("file-cached", func(b *testing.B) { benchScrapes(b, pg, file, "cached") })
	if bin := os.Getenv("PG_EXPORTER_BIN"); bin != "" {
		b.Run("pg_exporter", func(b *testing.B) { benchPgExporter(b, pg, bin, file) })
		b.Run("versus", func(b *testing.B) { benchVersus(b, pg, bin, file) })
	}
}

// benchVersus times, in each round and one right after the other, pg_exporter's
// first scrape after start and the next one (its main connection opened at
// start, as it does), then pgnoded's first scrape of a new exporter with no
// connection open at all (New, which loads the collector file, not timed, as
// pg_exporter loads its file before it listens) and the next one within the
// TTLs, with pg_exporter's file and with the built-in set; and the daemon's
// own first scrape after start with pg_exporter's file (after the warm-up the
// daemon runs once postgres is up, not timed). Rounds alternate
// which goes first, so that a change in the machine's load weighs on both; it
// logs min/median/max per row, the median ratios and the load average.
func benchVersus(b *testing.B, pg *testenv.PG, bin, file string) {
	rows := map[string][]float64{}
	load0 := loadAvg()
	round := 0
	for b.Loop() {
		runs := []func(){
			func() {
				first, next, _, cpu := pgExporterRound(b, pg, bin, file)
				rows["pg_exporter file cold"] = append(rows["pg_exporter file cold"], ms(first))
				rows["pg_exporter file cached"] = append(rows["pg_exporter file cached"], ms(next))
				rows["pg_exporter backends CPU"] = append(rows["pg_exporter backends CPU"], ms(cpu))
			},
			func() {
				first, next, cpu := pgnodedRound(b, pg, file, false)
				rows["pgnoded file cold"] = append(rows["pgnoded file cold"], ms(first))
				rows["pgnoded file cached"] = append(rows["pgnoded file cached"], ms(next))
				rows["pgnoded file backends CPU"] = append(rows["pgnoded file backends CPU"], ms(cpu))
			},
			func() {
				first, _, _ := pgnodedRound(b, pg, file, true)
				rows["pgnoded file after warm-up"] = append(rows["pgnoded file after warm-up"], ms(first))
			},
			func() {
				first, next, _ := pgnodedRound(b, pg, "", false)
				rows["pgnoded built-in cold"] = append(rows["pgnoded built-in cold"], ms(first))
				rows["pgnoded built-in cached"] = append(rows["pgnoded built-in cached"], ms(next))
			},
		}
		if round%2 == 1 {
			slices.Reverse(runs)
		}
		for _, run := range runs {
			run()
		}
		round++
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%s: %d rounds; load average %s at start, %s at end; %d CPUs\n", b.Name(), round, load0, loadAvg(), runtime.NumCPU())
	fmt.Fprintf(&out, "%-26s %9s %9s %9s\n", "ms", "min", "median", "max")
	names := []string{"pg_exporter file cold", "pgnoded file cold", "pgnoded built-in cold", "pgnoded file after warm-up",
		"pg_exporter file cached", "pgnoded file cached", "pgnoded built-in cached",
		"pg_exporter backends CPU", "pgnoded file backends CPU"}
	for _, name := range names {
		lo, med, hi := minMedMax(rows[name])
		fmt.Fprintf(&out, "%-26s %9.1f %9.1f %9.1f\n", name, lo, med, hi)
	}
	_, pgeCold, _ := minMedMax(rows["pg_exporter file cold"])
	_, pgeCached, _ := minMedMax(rows["pg_exporter file cached"])
	_, cold, _ := minMedMax(rows["pgnoded file cold"])
	_, cached, _ := minMedMax(rows["pgnoded file cached"])
	_, warmed, _ := minMedMax(rows["pgnoded file after warm-up"])
	fmt.Fprintf(&out, "median cold ratio pgnoded/pg_exporter (file): %.2f; after the daemon's warm-up: %.2f; cached: %.2f",
		cold/pgeCold, warmed/pgeCold, cached/pgeCached)
	_, pgeCPU, _ := minMedMax(rows["pg_exporter backends CPU"])
	_, cpu, _ := minMedMax(rows["pgnoded file backends CPU"])
	fmt.Fprintf(&out, "\nbackends CPU: postgres's own work for the cold and the cached scrape, which no exporter makes smaller; "+
		"spread over the %d CPUs it is at least %.1f ms (pg_exporter's backends) and %.1f ms (pgnoded's) of a cold scrape's time",
		runtime.NumCPU(), pgeCPU/float64(runtime.NumCPU()), cpu/float64(runtime.NumCPU()))
	fmt.Print(out.String() + "\n") // in full: a benchmark's b.Log is cut to a few lines without -v
	b.ReportMetric(pgeCold, "pg_exporter-cold-ms")
	b.ReportMetric(cold, "cold-ms")
	b.ReportMetric(cached, "cached-ms")
	b.ReportMetric(cold/pgeCold, "cold-ratio")
	b.ReportMetric(warmed, "after-warm-up-ms")
	b.ReportMetric(cpu, "backends-cpu-ms")
	b.ReportMetric(pgeCPU, "pg_exporter-backends-cpu-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// minMedMax is the least, the median and the greatest of v.
func minMedMax(v []float64) (float64, float64, float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[0], med, s[len(s)-1]
}

// loadAvg is the machine's 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// pgnodedRound times a new exporter's first scrape with no connection open
// (New not timed) and the next one within the TTLs, and returns the CPU time
// its postgres backends used for both (backendsCPU). With warmed, the
// exporter first does what the daemon does between start and the first
// scrape (warm: connections opened, each statement prepared and run once,
// not timed), so first is the daemon's first scrape after start.
func pgnodedRound(b *testing.B, pg *testenv.PG, file string, warmed bool) (first, next, cpu time.Duration) {
	e, err := New(Config{DSN: pg.DSN(""), Logger: testLogger(b), CollectorFile: file}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if warmed {
		if done, err := e.pg.warm(context.Background()); err != nil || !done {
			b.Fatalf("warm: %v (done %v)", err, done)
		}
	}
	h := e.Handler()
	start := time.Now()
	body := scrapeHandler(b, h)
	first = time.Since(start)
	if !strings.Contains(body, "\npg_up 1") {
		b.Fatalf("pgnoded's first scrape has no pg_up 1")
	}
	start = time.Now()
	scrapeHandler(b, h)
	next = time.Since(start)
	return first, next, backendsCPU(b, pg)
}

// scrapeHandler scrapes h once and fails on anything but 200.
func scrapeHandler(b *testing.B, h http.Handler) string {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathMetrics, nil))
	if rec.Code != http.StatusOK {
		b.Fatalf("scrape: %d", rec.Code)
	}
	return rec.Body.String()
}

func seriesOf(body string) int {
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if line != "" && line[0] != '#' {
			n++
		}
	}
	return n
}

// benchScrapes scrapes one running exporter repeatedly: "cold" expires the
// caches before each scrape, "cached" does not.
func benchScrapes(b *testing.B, pg *testenv.PG, file, mode string) {
	clock := newFakeClock()
	e := newTestExporter(b, pg, func(c *Config) { c.Now = clock.Now; c.CollectorFile = file }, nil)
	h := e.Handler()
	body := scrapeHandler(b, h) // opens the connections, fills the caches
	b.ReportAllocs()
	cpu0 := processCPU(b)
	start := time.Now()
	n := 0
	for b.Loop() {
		if mode == "cold" {
			clock.Advance(time.Hour)
		}
		scrapeHandler(b, h)
		n++
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(n), "ms/scrape")
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/1000/float64(n), "cpu-ms/scrape")
	b.ReportMetric(float64(seriesOf(body)), "series")
	b.ReportMetric(float64(len(body))/1024, "KiB/scrape")
	b.ReportMetric(rssMiB(b), "rss_MiB")
}

// benchFirstScrape times a new exporter's first scrape, connections included;
// concurrency 1 runs one query at a time (the exporter before concurrent scrapes).
// started leaves out what the daemon does before its first scrape, as
// pg_exporter does before its own (the pg_exporter row): loading the collector
// file (New) and Run's warm-up (pgCollector.warm: scrape connections opened,
// every applicable statement prepared and run once), whose own time is
// reported as warm-ms.
func benchFirstScrape(b *testing.B, pg *testenv.PG, file string, concurrency int, started bool) {
	var total, warm, load time.Duration
	n, series := 0, 0
	for b.Loop() {
		cfg := Config{DSN: pg.DSN(""), Logger: testLogger(b), CollectorFile: file, Concurrency: concurrency}
		start := time.Now()
		e, err := New(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		load += time.Since(start)
		start = time.Now()
		if started {
			wstart := time.Now()
			if done, err := e.pg.warm(context.Background()); err != nil || !done {
				b.Fatalf("warm: %v (done %v)", err, done)
			}
			warm += time.Since(wstart)
			start = time.Now()
		}
		body := scrapeHandler(b, e.Handler())
		total += time.Since(start)
		e.Close()
		series = seriesOf(body)
		n++
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/scrape")
	b.ReportMetric(float64(load.Microseconds())/1000/float64(n), "new-ms")
	b.ReportMetric(float64(series), "series")
	if started {
		b.ReportMetric(float64(warm.Microseconds())/1000/float64(n), "warm-ms")
	}
}

// benchPgExporter starts the pg_exporter binary at bin on pg with the same
// collector file and databases, and times its first scrape after start and the
// next one (within the TTLs), over loopback HTTP.
func benchPgExporter(b *testing.B, pg *testenv.PG, bin, file string) {
	var first, next time.Duration
	n, series := 0, 0
	for b.Loop() {
		d1, d2, s, _ := pgExporterRound(b, pg, bin, file)
		first += d1
		next += d2
		series = s
		n++
	}
	b.ReportMetric(float64(first.Microseconds())/1000/float64(n), "first-ms/scrape")
	b.ReportMetric(float64(next.Microseconds())/1000/float64(n), "cached-ms/scrape")
	b.ReportMetric(float64(series), "series")
}

// pgExporterRound starts pg_exporter, times its first scrape after start and
// the next one over loopback HTTP, reads the CPU time its postgres backends
// used (backendsCPU), and stops it.
func pgExporterRound(b *testing.B, pg *testenv.PG, bin, file string) (first, next time.Duration, series int, cpu time.Duration) {
	port := testenv.FreePort(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u := url.URL{Scheme: "postgres", User: url.User(pg.User), Path: "/postgres",
		RawQuery: url.Values{"host": {pg.SocketDir}, "port": {strconv.Itoa(pg.Port)}, "sslmode": {"disable"}}.Encode()}
	cmd := exec.CommandContext(ctx, bin, "--url="+u.String(), "--config="+file,
		"--exclude-database=template0,template1", fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--log.level=error")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", bin, err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/version")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not listen on %s", bin, base)
		}
		time.Sleep(5 * time.Millisecond)
	}
	get := func() (time.Duration, string) {
		start := time.Now()
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			b.Fatalf("pg_exporter scrape: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return time.Since(start), string(body)
	}
	first, body := get()
	next, _ = get()
	cpu = backendsCPU(b, pg)
	if !strings.Contains(body, "\npg_up 1") {
		b.Logf("pg_exporter's first scrape has no pg_up 1 (%d series): its time is not that of a full scrape", seriesOf(body))
	}
	return first, next, seriesOf(body), cpu
}

// backendsCPU is the CPU time used so far by pg's client backends (the
// postmaster's children running as pg.User: "postgres: USER DB ..."), from
// /proc/PID/schedstat, which counts in nanoseconds.
func backendsCPU(b *testing.B, pg *testenv.PG) time.Duration {
	pm, err := pg.PostmasterPID()
	if err != nil {
		b.Fatalf("backends CPU: %v", err)
	}
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pm, pm))
	if err != nil {
		b.Fatalf("backends CPU: %v", err)
	}
	var total time.Duration
	for _, pid := range strings.Fields(string(children)) {
		cmd, err := os.ReadFile("/proc/" + pid + "/cmdline")
		if err != nil || !strings.HasPrefix(string(cmd), "postgres: "+pg.User+" ") {
			continue // gone, or not a client backend
		}
		stat, err := os.ReadFile("/proc/" + pid + "/schedstat")
		if f := strings.Fields(string(stat)); err == nil && len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

// processCPU is the CPU time (user + system) this process has used: the
// exporter's own cost of a scrape, without the waits a loaded machine adds.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Logf("getrusage: %v", err)
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
