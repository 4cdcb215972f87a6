package main

import "fmt"

// Benchmark names of the synchronous replication rows (test/sync_bench_test.go):
// the same code runs both sides, only the daemon differs.
const (
	pgSyncFailover   = "BenchmarkSyncFailoverNodeLoss"
	ptSyncFailover   = "BenchmarkPatroniSyncFailoverNodeLoss"
	pgSyncSwitchover = "BenchmarkSyncSwitchoverUnderLoad"
	ptSyncSwitchover = "BenchmarkPatroniSyncSwitchoverUnderLoad"
	pgCommit         = "BenchmarkCommitLatency"
	ptCommit         = "BenchmarkPatroniCommitLatency"
)

// spreadCell is "med s (min–max, n=k)" from the unit, unit_min and unit_max
// metrics and runs_measured of a one-line benchmark; "—" when absent.
func spreadCell(res *results, bench, unit string) string {
	m := res.Metrics[bench]
	if len(m[unit]) == 0 {
		if misses := m["runs_without_failover"]; len(misses) > 0 && misses[0] > 0 {
			return fmt.Sprintf("**no failover** in %.0f runs", misses[0])
		}
		return notMeasured
	}
	cell := fmt.Sprintf("%.2f s", m[unit][0])
	if n := m["runs_measured"]; len(n) > 0 && n[0] > 1 && len(m[unit+"_min"]) > 0 && len(m[unit+"_max"]) > 0 {
		cell = fmt.Sprintf("%.2f s (%.2f–%.2f, n=%.0f)", m[unit][0], m[unit+"_min"][0], m[unit+"_max"][0], n[0])
	}
	if misses := m["runs_without_failover"]; len(misses) > 0 && misses[0] > 0 {
		cell += fmt.Sprintf("; %.0f runs without a failover", misses[0])
	}
	return cell
}

// lostCell is "lost of acked" of a benchmark reporting lost-rows and acked-rows,
// summed over its result lines.
func lostCell(res *results, bench string) string {
	m := res.Metrics[bench]
	if len(m["lost-rows"]) == 0 || len(m["acked-rows"]) == 0 {
		return notMeasured
	}
	return fmt.Sprintf("%.0f of %.0f", sum(m["lost-rows"]), sum(m["acked-rows"]))
}

// overheadCell is the sync-minus-async difference of a latency metric (µs) in ms.
func overheadCell(res *results, bench, unit string) string {
	a, s := res.Metrics[bench+"/async"][unit], res.Metrics[bench+"/sync"][unit]
	if len(a) == 0 || len(s) == 0 {
		return notMeasured
	}
	return fmt.Sprintf("%+.2f ms", (median(s)-median(a))*1e-3)
}

func syncRows(res *results) []row {
	const fo = "synchronous_mode on; ttl 10/2/4; 3 nodes, 1 etcd, loopback; one writer"
	const so = "synchronous_mode on; ttl 10/2/4; 3 nodes, 1 etcd, loopback; one writer, 2 ms between inserts; to the sync standby"
	const cl = "one client, single-row insert commits back to back; sync and async in turn on one cluster (PATCH /config), 3 rounds x 5 s each; ttl 10/2/4; 3 nodes, 1 etcd, loopback"
	pgO, pgL, pgA := switchoverCells(res, pgSyncSwitchover)
	ptO, ptL, ptA := switchoverCells(res, ptSyncSwitchover)
	lat := func(what, mode, unit string) row {
		return row{what, cl, metricCell(res, pgCommit+"/"+mode, unit, 1e-3, "%.2f", " ms"),
			metricCell(res, ptCommit+"/"+mode, unit, 1e-3, "%.2f", " ms")}
	}
	return []row{
		{"sync mode node loss: kill → leader key gone (lease end)", fo, spreadCell(res, pgSyncFailover, "s_kill_to_lease_end"), spreadCell(res, ptSyncFailover, "s_kill_to_lease_end")},
		{"sync mode node loss: leader key gone → first write", fo, spreadCell(res, pgSyncFailover, "s_lease_end_to_write"), spreadCell(res, ptSyncFailover, "s_lease_end_to_write")},
		{"sync mode node loss: kill → first acknowledged write", fo, spreadCell(res, pgSyncFailover, "s_kill_to_write"), spreadCell(res, ptSyncFailover, "s_kill_to_write")},
		{"sync mode node loss: acknowledged rows lost", fo, lostCell(res, pgSyncFailover), lostCell(res, ptSyncFailover)},
		{"sync mode switchover under load: write outage", so, pgO, ptO},
		{"sync mode switchover: acknowledged rows lost", so, pgL, ptL},
		{"sync mode switchover: POST /switchover answered after (median)", so, pgA, ptA},
		lat("commit latency p50, asynchronous", "async", "p50_us"),
		lat("commit latency p50, synchronous_mode on", "sync", "p50_us"),
		{"commit latency p50: synchronous overhead", cl, overheadCell(res, pgCommit, "p50_us"), overheadCell(res, ptCommit, "p50_us")},
		lat("commit latency p99, asynchronous", "async", "p99_us"),
		lat("commit latency p99, synchronous_mode on", "sync", "p99_us"),
		{"commit latency p99: synchronous overhead", cl, overheadCell(res, pgCommit, "p99_us"), overheadCell(res, ptCommit, "p99_us")},
	}
}
