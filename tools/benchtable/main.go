// Command benchtable prints `make bench`'s table: it reads the raw output of
// the benchmark runs (go test -bench result lines, the summary lines the
// integration benchmarks print to stderr, and the Makefile's "### CMD:"
// markers) and writes one markdown table of min/median/max with the settings
// used, headed by the machine it ran on and the commands. It measures
// nothing itself and asserts nothing.
//
//	go run ./tools/benchtable bin/bench.out
package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/tools/internal/benchraw"
)

func main() {
	benchraw.Main("benchtable", func(in io.Reader, out io.Writer) error {
		res, err := parse(in)
		if err != nil {
			return err
		}
		writeTable(out, res, benchraw.Machine())
		return nil
	})
}

// row is one line of the table.
type row struct {
	what, min, med, max, runs, settings string
}

// writeTable renders the table.
func writeTable(w io.Writer, res *results, host string) {
	fmt.Fprintf(w, "pgnoded benchmarks, %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "machine: %s\n", host)
	fmt.Fprintf(w, "command: make bench, which ran:\n")
	for _, c := range res.Commands {
		fmt.Fprintf(w, "  %s\n", c)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measurement | min | median | max | runs | settings |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rows(res) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.what, r.min, r.med, r.max, r.runs, r.settings)
	}
	for _, f := range res.Failed {
		fmt.Fprintf(w, "\n%s", f)
	}
	if len(res.Failed) > 0 {
		fmt.Fprintln(w)
	}
}

const loopbackSettings = "loopback, 1 etcd, 3 nodes"

// rows lists the known measurements in a fixed order, then every other
// benchmark metric found (e.g. a switchover benchmark added later).
func rows(res *results) []row {
	var out []row
	used := map[string]bool{}
	for _, b := range res.bootstrap {
		timing := b.Timing
		if timing == "" {
			timing = "10/2/4"
		}
		out = append(out, secRow("bootstrap: empty dirs → 1 primary + 2 healthy replicas", b.Time, loopbackSettings+", ttl "+timing))
	}
	used["BenchmarkBootstrapThreeNodes"] = true
	for _, f := range res.failover {
		out = append(out, secRow("unplanned failover, node loss (pgnoded+postgres SIGKILL): kill → first write", f.KillToWrite,
			fmt.Sprintf("%s, ttl/loop_wait/retry %s; of which kill → leader key expired med %.2fs", loopbackSettings, f.Timing, f.KillToLease.Med)))
	}
	markPrefix(res, used, "BenchmarkFailoverNodeLoss")
	for _, p := range res.pgcrash {
		out = append(out, secRow("postgres crash on the primary (postmaster+backends SIGKILL): kill → first write", p.KillToWrite,
			fmt.Sprintf("%s, ttl/loop_wait/retry %s; restarted in place %s", loopbackSettings, p.Timing, p.InPlace)))
	}
	markPrefix(res, used, "BenchmarkFailoverPostgresCrash")
	out = append(out, switchoverRow(res))
	used["BenchmarkSwitchoverUnderLoad"] = true
	rest := "50 keep-alive clients over loopback"
	out = append(out,
		metricRow(res, used, "BenchmarkOptionsPrimary/closed-loop", "req/s", "REST API OPTIONS /primary, closed loop: req/s", 1, "%.0f", rest),
		metricRow(res, used, "BenchmarkOptionsPrimary/closed-loop", "p99_us", "REST API OPTIONS /primary, closed loop: p99", 1e-3, "%.2f ms", rest),
		metricRow(res, used, "BenchmarkOptionsPrimary/paced-34k", "p99_us", "REST API OPTIONS /primary at 34k req/s offered: p99", 1e-3, "%.2f ms", rest+", paced"),
		metricRow(res, used, "BenchmarkGetPatroni/closed-loop", "req/s", "REST API GET /patroni, closed loop: req/s", 1, "%.0f", rest),
		metricRow(res, used, "BenchmarkGetPatroni/closed-loop", "p99_us", "REST API GET /patroni, closed loop: p99", 1e-3, "%.2f ms", rest),
		metricRow(res, used, "BenchmarkGetPatroni/paced-34k", "p99_us", "REST API GET /patroni at 34k req/s offered: p99", 1e-3, "%.2f ms", rest+", paced"),
		metricRow(res, used, "BenchmarkBaselineNetHTTP/closed-loop", "req/s", "(floor: bare net/http server, closed loop: req/s)", 1, "%.0f", rest),
		metricRow(res, used, "BenchmarkBaselineNetHTTP/paced-34k", "p99_us", "(floor: bare net/http server at 34k req/s offered: p99)", 1e-3, "%.2f ms", rest+", paced"),
		metricRow(res, used, "BenchmarkHandlerOptionsPrimary", "ns/op", "REST API handler alone, OPTIONS /primary", 1, "%.0f ns", "in process, no network"),
		metricRow(res, used, "BenchmarkHandlerGetPatroni", "ns/op", "REST API handler alone, GET /patroni", 1, "%.0f ns", "in process, no network"),
		metricRow(res, used, "BenchmarkScrapeDefaultSet/cold", "ms/scrape", "metrics scrape, default collectors, cold caches", 1, "%.1f ms", "10 databases, 245 tables"+seriesNote(res, "BenchmarkScrapeDefaultSet/cold")),
		metricRow(res, used, "BenchmarkScrapeDefaultSet/cached", "ms/scrape", "metrics scrape, default collectors, cached", 1, "%.1f ms", "second scraper within the TTLs"),
		metricRow(res, used, "BenchmarkScrapeDefaultSet/first", "ms/scrape", "metrics scrape, default collectors, first after start", 1, "%.1f ms", "connection setup included, queries concurrent"),
		metricRow(res, used, "BenchmarkScrapeDefaultSet/first-serial", "ms/scrape", "metrics scrape, default collectors, first after start, serial", 1, "%.1f ms", "one query at a time (for comparison)"),
		metricRow(res, used, "BenchmarkScrapeDefaultSet/file-first", "ms/scrape", "metrics scrape, pg_exporter's collector file, first after start", 1, "%.1f ms", "PG_EXPORTER_CONFIG"+seriesNote(res, "BenchmarkScrapeDefaultSet/file-first")),
		metricRow(res, used, "BenchmarkScrapeDefaultSet/file-cached", "ms/scrape", "metrics scrape, pg_exporter's collector file, cached", 1, "%.1f ms", "second scraper within the TTLs"),
		metricRow(res, used, "BenchmarkScrapeDefaultSet/pg_exporter", "first-ms/scrape", "pg_exporter binary, same file: first scrape after start", 1, "%.1f ms", "PG_EXPORTER_BIN"+seriesNote(res, "BenchmarkScrapeDefaultSet/pg_exporter")),
		metricRow(res, used, "BenchmarkScrapeDefaultSet/pg_exporter", "cached-ms/scrape", "pg_exporter binary, same file: next scrape", 1, "%.1f ms", "within its TTLs"),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/cached", "ms/scrape", "small node (3 databases): scrape, default collectors, cached", 1, "%.1f ms", "second scraper within the TTLs"+seriesNote(res, "BenchmarkScrapeDefaultSetSmall/cached")),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/first", "ms/scrape", "small node: scrape, default collectors, first after start", 1, "%.1f ms", "connection setup included"),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/first-serial", "ms/scrape", "small node: scrape, default collectors, first after start, serial", 1, "%.1f ms", "one query at a time (for comparison)"),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/file-first", "ms/scrape", "small node: scrape, pg_exporter's file, first after start", 1, "%.1f ms", "PG_EXPORTER_CONFIG"),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/file-cached", "ms/scrape", "small node: scrape, pg_exporter's file, cached", 1, "%.1f ms", "second scraper within the TTLs"),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/pg_exporter", "first-ms/scrape", "small node: pg_exporter binary, first scrape after start", 1, "%.1f ms", "PG_EXPORTER_BIN"),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/pg_exporter", "cached-ms/scrape", "small node: pg_exporter binary, next scrape", 1, "%.1f ms", "within its TTLs"),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/versus", "pg_exporter-cold-ms", "small node, same rounds: pg_exporter's first scrape (median)", 1, "%.1f ms", "its main connection opened at start"),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/versus", "cold-ms", "small node, same rounds: pgnoded's first scrape, no connection open (median)", 1, "%.1f ms", "pg_exporter's file; New not timed"),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/versus", "cold-ratio", "small node, same rounds: cold ratio pgnoded/pg_exporter (median)", 1, "%.2f", "target 0.5"),
		metricRow(res, used, "BenchmarkScrapeDefaultSetSmall/versus", "cached-ms", "small node, same rounds: pgnoded's next scrape (median)", 1, "%.1f ms", "within the TTLs; target 10 ms"),
		metricRow(res, used, "BenchmarkFootprint", "idle-rss-max-MiB", "footprint: pgnoded RSS idle (max of 3 nodes)", 1, "%.1f MiB", loopbackSettings+", 60 s idle"),
		metricRow(res, used, "BenchmarkFootprint", "load-rss-max-MiB", "footprint: pgnoded RSS under checks+scrapes (max of 3)", 1, "%.1f MiB", "50 OPTIONS /primary per s per node + a scrape every 5 s, 20 s"),
		metricRow(res, used, "BenchmarkFootprint", "idle-cpu-%", "footprint: pgnoded CPU idle (mean of 3 nodes)", 1, "%.2f %%", "60 s idle"),
		metricRow(res, used, "BenchmarkFootprint", "idle-cpu-%", "footprint: pgnoded CPU idle (mean of 3 nodes), cpu-s/min", 0.6, "%.3f cpu-s/min", "60 s idle; target ≤ 0.1"),
		metricRow(res, used, "BenchmarkFootprint", "load-cpu-%", "footprint: pgnoded CPU under checks+scrapes (mean of 3)", 1, "%.2f %%", "50 checks/s per node"),
		metricRow(res, used, "BenchmarkFootprint", "guard-rss-max-MiB", "footprint: fence guard RSS (max of 3)", 1, "%.1f MiB", "the second process per node"),
	)
	// The other results of the benchmarks above are details of the same runs (raw output).
	for _, prefix := range []string{"BenchmarkOptionsPrimary", "BenchmarkGetPatroni", "BenchmarkBaselineNetHTTP",
		"BenchmarkHandler", "BenchmarkScrapeDefaultSet", "BenchmarkFootprint"} {
		markPrefix(res, used, prefix)
	}
	for _, name := range res.Order {
		if used[name] {
			continue
		}
		units := make([]string, 0, len(res.Metrics[name]))
		for u := range res.Metrics[name] {
			if u != "ns/op" && u != "B/op" && u != "allocs/op" {
				units = append(units, u)
			}
		}
		slices.Sort(units)
		for _, u := range units {
			out = append(out, metricRow(res, used, name, u, strings.TrimPrefix(name, "Benchmark")+": "+u, 1, "%.4g", ""))
		}
	}
	var kept []row
	for _, r := range out {
		if r.what != "" {
			kept = append(kept, r)
		}
	}
	return kept
}

// switchoverRow summarises BenchmarkSwitchoverUnderLoad: the outage's
// min/median/max over every switchover of every result line.
func switchoverRow(res *results) row {
	m := res.Metrics["BenchmarkSwitchoverUnderLoad"]
	if len(m["outage-med-ms"]) == 0 {
		return row{what: "planned switchover under load: write outage", min: "—", med: "—", max: "—", runs: "—",
			settings: "BenchmarkSwitchoverUnderLoad did not report"}
	}
	sum := func(unit string) float64 {
		var s float64
		for _, v := range m[unit] {
			s += v
		}
		return s
	}
	return row{what: "planned switchover under load (POST /switchover): write outage",
		min: fmt.Sprintf("%.0f ms", slices.Min(m["outage-min-ms"])), med: fmt.Sprintf("%.0f ms", median(m["outage-med-ms"])),
		max: fmt.Sprintf("%.0f ms", slices.Max(m["outage-max-ms"])), runs: fmt.Sprintf("%.0f", sum("switchovers")),
		settings: fmt.Sprintf("%s, ttl 10/2/4, one writer; %.0f rows acknowledged, %.0f lost; API answered med %.0f ms",
			loopbackSettings, sum("acked-rows"), sum("lost-rows"), median(m["answer-med-ms"]))}
}

// median of xs (the upper one of an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func secRow(what string, s spread, settings string) row {
	return row{what: what, min: fmt.Sprintf("%.2f s", s.Min), med: fmt.Sprintf("%.2f s", s.Med), max: fmt.Sprintf("%.2f s", s.Max),
		runs: fmt.Sprint(s.Runs), settings: settings}
}

// metricRow summarises one metric of one benchmark over its result lines ("" what when absent).
func metricRow(res *results, used map[string]bool, name, unit, what string, scale float64, format, settings string) row {
	vals := res.Metrics[name][unit]
	if len(vals) == 0 {
		return row{}
	}
	used[name] = true
	s := slices.Clone(vals)
	slices.Sort(s)
	f := func(v float64) string { return fmt.Sprintf(format, v*scale) }
	return row{what: what, min: f(s[0]), med: f(s[len(s)/2]), max: f(s[len(s)-1]), runs: fmt.Sprint(len(s)), settings: settings}
}

func seriesNote(res *results, name string) string {
	if v := res.Metrics[name]["series"]; len(v) > 0 {
		return fmt.Sprintf(", %.0f series", v[0])
	}
	return ""
}

func markPrefix(res *results, used map[string]bool, prefix string) {
	for _, n := range res.Order {
		if strings.HasPrefix(n, prefix) {
			used[n] = true
		}
	}
}
