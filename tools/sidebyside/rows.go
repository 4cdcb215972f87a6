package main

import (
	"fmt"
	"slices"
)

// Benchmark names of the two sides (go test -bench names without the -N suffix).
const (
	pgSwitchover = "BenchmarkSwitchoverUnderLoad"
	ptSwitchover = "BenchmarkPatroniSwitchoverUnderLoad"
	pgREST       = "BenchmarkPgnodedRESTPrimary"
	ptREST       = "BenchmarkPatroniRESTPrimary"
	pgRESTInProc = "BenchmarkOptionsPrimary/closed-loop"
	pgFootprint  = "BenchmarkFootprint"
	ptFootprint  = "BenchmarkPatroniFootprint"
	idlePair     = "BenchmarkIdlePair"
	notMeasured  = "—"
)

// metricCell is "median (min–max, n=k)" of one metric over its result lines,
// scaled, formatted with format, the unit suffix after the median; "—" when absent.
func metricCell(res *results, bench, unit string, scale float64, format, suffix string) string {
	vals := res.Metrics[bench][unit]
	if len(vals) == 0 {
		return notMeasured
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	f := func(v float64) string { return fmt.Sprintf(format, v*scale) }
	if len(s) == 1 {
		return f(s[0]) + suffix
	}
	return fmt.Sprintf("%s%s (%s–%s, n=%d)", f(s[len(s)/2]), suffix, f(s[0]), f(s[len(s)-1]), len(s))
}

// switchoverCells summarises one side's switchover benchmark: the outage over
// every switchover, rows lost of acknowledged, and the API's answer time.
func switchoverCells(res *results, bench string) (outage, lost, answer string) {
	m := res.Metrics[bench]
	if len(m["outage-med-ms"]) == 0 {
		return notMeasured, notMeasured, notMeasured
	}
	outage = fmt.Sprintf("%.0f ms (%.0f–%.0f, n=%.0f switchovers)", median(m["outage-med-ms"]),
		slices.Min(m["outage-min-ms"]), slices.Max(m["outage-max-ms"]), sum(m["switchovers"]))
	lost = lostCell(res, bench)
	answer = fmt.Sprintf("%.0f ms", median(m["answer-med-ms"]))
	return outage, lost, answer
}

func switchoverRows(res *results) []row {
	const set = "ttl 10/2/4; 3 nodes, 1 etcd, loopback; one writer, 2 ms between inserts"
	pgO, pgL, pgA := switchoverCells(res, pgSwitchover)
	ptO, ptL, ptA := switchoverCells(res, ptSwitchover)
	return []row{
		{"planned switchover under load (POST /switchover): write outage", set, pgO, ptO},
		{"planned switchover: acknowledged rows lost", set, pgL, ptL},
		{"planned switchover: POST /switchover answered after (median)", set, pgA, ptA},
	}
}

func restRows(res *results) []row {
	const set = "OPTIONS /primary to the primary's REST API; 50 clients, closed loop, 10 s; ttl 10/2/4"
	const inproc = "internal/restapi in-process server, fake DCS view, 50 keep-alive clients, closed loop"
	r := func(what, unit string, scale float64, format, suffix string) row {
		return row{what, set, metricCell(res, pgREST, unit, scale, format, suffix), metricCell(res, ptREST, unit, scale, format, suffix)}
	}
	return []row{
		r("REST API: req/s", "req/s", 1, "%.0f", ""),
		r("REST API: p50 latency", "p50_us", 1e-3, "%.2f", " ms"),
		r("REST API: p99 latency", "p99_us", 1e-3, "%.2f", " ms"),
		r("REST API: max latency", "max_us", 1e-3, "%.1f", " ms"),
		r("REST API: new TCP connections per request", "dials/req", 1, "%.3f", ""),
		r("REST API: failed requests (5 s timeout, reset) per run", "errors", 1, "%.0f", ""),
		{"REST API server alone: req/s (pgnoded only)", inproc, metricCell(res, pgRESTInProc, "req/s", 1, "%.0f", ""), notMeasured},
		{"REST API server alone: p99 latency (pgnoded only)", inproc, metricCell(res, pgRESTInProc, "p99_us", 1e-3, "%.2f", " ms"), notMeasured},
	}
}

func footprintRows(res *results) []row {
	const idle = "ttl 10/2/4; after 60 s idle"
	const pair = "ttl 10/2/4; a pgnoded and a Patroni cluster on the machine at once, one window (BenchmarkIdlePair)"
	const load = "ttl 10/2/4; 50 OPTIONS /primary per s per node (new connection each) + GET /metrics every 5 s, 20 s"
	r := func(what, set, unit, format, suffix string) row {
		return row{what, set, metricCell(res, pgFootprint, unit, 1, format, suffix), metricCell(res, ptFootprint, unit, 1, format, suffix)}
	}
	return []row{
		r("footprint: RSS idle (max of 3 nodes)", idle, "idle-rss-max-MiB", "%.1f", " MiB"),
		r("footprint: CPU idle (mean of 3 nodes, % of one core)", idle, "idle-cpu-%", "%.2f", " %"),
		{"footprint: CPU idle (mean of 3 nodes), cpu-s/min", idle, metricCell(res, pgFootprint, "idle-cpu-%", 0.6, "%.3f", " cpu-s/min"),
			metricCell(res, ptFootprint, "idle-cpu-%", 0.6, "%.3f", " cpu-s/min")},
		r("footprint: RSS under checks + scrapes (max of 3)", load, "load-rss-max-MiB", "%.1f", " MiB"),
		r("footprint: PSS under checks + scrapes (max of 3)", load, "load-pss-max-MiB", "%.1f", " MiB"),
		r("footprint: CPU under checks + scrapes (mean of 3)", load, "load-cpu-%", "%.2f", " %"),
		{"idle CPU, both clusters idling at once (mean of 3 nodes), cpu-s/min", pair,
			metricCell(res, idlePair, "pgnoded-cpu-s/min", 1, "%.3f", " cpu-s/min"), metricCell(res, idlePair, "patroni-cpu-s/min", 1, "%.3f", " cpu-s/min")},
		{"idle CPU, both at once: pgnoded ÷ Patroni", pair, metricCell(res, idlePair, "ratio", 1, "%.2f", "×"), notMeasured},
		{"footprint: second process per node (pgnoded's fence guard) RSS", idle,
			metricCell(res, pgFootprint, "guard-rss-max-MiB", 1, "%.1f", " MiB"), "none"},
	}
}

// sum of xs.
func sum(xs []float64) float64 {
	var s float64
	for _, v := range xs {
		s += v
	}
	return s
}

// median of xs (the upper one of an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
