package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `### CMD: go test -tags integration -bench X ./test/
PATRONI VERSION patroni 3.0.2
FAILOVER ttl=3/1/1 runs=3 kill->lease-end min 2.10s med 2.50s max 3.00s | lease-end->write min 0.10s med 0.20s max 0.30s | kill->write min 2.30s med 2.70s max 3.20s
FAILOVER ttl=10/2/4 runs=3 kill->lease-end min 8.10s med 8.50s max 9.00s | lease-end->write min 0.10s med 0.20s max 0.30s | kill->write min 8.30s med 8.70s max 9.20s
BenchmarkFailoverNodeLoss/ttl10_loop2_retry4-2   1   9 ns/op   8.5 s_kill_to_lease_end
PATRONI FAILOVER ttl=3/1/1 runs=3 failed=3 limit=93s (no write (a), b; c) kill->lease-end n/a | lease-end->write n/a | kill->write n/a
PATRONI FAILOVER ttl=10/2/4 runs=3 failed=1 limit=100s (no write) kill->lease-end min 8.00s med 8.80s max 9.10s | lease-end->write min 0.15s med 0.20s max 0.25s | kill->write min 8.20s med 9.00s max 9.30s
BenchmarkSwitchoverUnderLoad-2   1   9 ns/op   1000 acked-rows   40 answer-med-ms   0 lost-rows   230 outage-max-ms   150 outage-med-ms   120 outage-min-ms   12 switchovers
BenchmarkPatroniSwitchoverUnderLoad-2   1   9 ns/op   5760 acked-rows   2057 answer-med-ms   0 lost-rows   1358 outage-max-ms   1324 outage-med-ms   1272 outage-min-ms   12 switchovers
BenchmarkPgnodedRESTPrimary-2   1   9 ns/op   0.0003 dials/req   0 errors   14792 max_us   712.0 p50_us   3715 p99_us   64331 req/s
BenchmarkPgnodedRESTPrimary-2   1   9 ns/op   0.0003 dials/req   0 errors   14792 max_us   712.0 p50_us   2715 p99_us   60000 req/s
BenchmarkPgnodedRESTPrimary-2   1   9 ns/op   0.0003 dials/req   0 errors   14792 max_us   712.0 p50_us   4715 p99_us   70000 req/s
BenchmarkPatroniRESTPrimary-2   1   9 ns/op   1.009 dials/req   0 errors   2687098 max_us   6652 p50_us   1014456 p99_us   1414 req/s
BenchmarkOptionsPrimary/closed-loop-2   108246  10048 ns/op  6625 max_us  439.0 p50_us  2086 p99_us  99518 req/s
BenchmarkFootprint-2   1   9 ns/op   12.5 idle-rss-max-MiB   0.30 idle-cpu-%   6.1 guard-rss-max-MiB
BenchmarkPatroniFootprint-2   1   9 ns/op   44.37 idle-rss-max-MiB   0.1166 idle-cpu-%
BenchmarkIdlePair-2   1   240011052655 ns/op   0.06760 patroni-cpu-s/min   0.02895 pgnoded-cpu-s/min   0.4283 ratio
BenchmarkSyncFailoverNodeLoss-2   1   9 ns/op   0 acked-rows   0 lost-rows   3 runs_measured   0 runs_without_failover   8.4 s_kill_to_lease_end   8.1 s_kill_to_lease_end_min   9.0 s_kill_to_lease_end_max   0.2 s_lease_end_to_write   0.1 s_lease_end_to_write_min   0.3 s_lease_end_to_write_max   8.6 s_kill_to_write   8.3 s_kill_to_write_min   9.1 s_kill_to_write_max
BenchmarkPatroniSyncFailoverNodeLoss-2   1   9 ns/op   2400 acked-rows   0 lost-rows   1 runs_measured   0 runs_without_failover   9.5 s_kill_to_write   9.5 s_kill_to_write_min   9.5 s_kill_to_write_max
BenchmarkCommitLatency/async-2   1   9 ns/op   900 commits/s   1100 p50_us   2500 p99_us
BenchmarkCommitLatency/sync-2   1   9 ns/op   500 commits/s   1900 p50_us   4000 p99_us
BenchmarkPatroniCommitLatency/async-2   1   9 ns/op   880 commits/s   1150 p50_us   2600 p99_us
### FAILED (exit 1): go test -bench Y ./test/
`

func TestTable(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeTable(&b, res, "test machine")
	out := b.String()
	for _, want := range []string{
		"pgnoded vs patroni 3.0.2, side by side",
		"machine: test machine",
		"  go test -tags integration -bench X ./test/",
		"| measurement | settings | pgnoded | patroni 3.0.2 |",
		"| node loss: kill → first acknowledged write | ttl/loop_wait/retry_timeout 3/1/1; 3 nodes, 1 etcd, loopback | 2.70 s (2.30–3.20, n=3) | **no failover within 93 s** (0 of 3 runs) |",
		"| node loss: kill → leader key gone (lease end) | ttl/loop_wait/retry_timeout 10/2/4; 3 nodes, 1 etcd, loopback | 8.50 s (8.10–9.00, n=3) | 8.80 s (8.00–9.10, n=2); 1 of 3 runs: no failover within 100 s |",
		"| 150 ms (120–230, n=12 switchovers) | 1324 ms (1272–1358, n=12 switchovers) |",
		"| planned switchover: acknowledged rows lost | ttl 10/2/4; 3 nodes, 1 etcd, loopback; one writer, 2 ms between inserts | 0 of 1000 | 0 of 5760 |",
		"| 64331 (60000–70000, n=3) | 1414 |",
		"| 3.71 ms (2.71–4.71, n=3) | 1014.46 ms |",
		"| 0.000 (0.000–0.000, n=3) | 1.009 |",
		"REST API server alone: req/s (pgnoded only) | internal/restapi in-process server, fake DCS view, 50 keep-alive clients, closed loop | 99518 | — |",
		"| footprint: RSS idle (max of 3 nodes) | ttl 10/2/4; after 60 s idle | 12.5 MiB | 44.4 MiB |",
		"| 0.30 % | 0.12 % |",
		"| 6.1 MiB | none |",
		"| 0.029 cpu-s/min | 0.068 cpu-s/min |",
		"| idle CPU, both at once: pgnoded ÷ Patroni | ttl 10/2/4; a pgnoded and a Patroni cluster on the machine at once, one window (BenchmarkIdlePair) | 0.43× | — |",
		"| footprint: RSS under checks + scrapes (max of 3) |",
		"FAILED (exit 1): go test -bench Y ./test/",
		"Patroni at ttl 3/1/1, runs without a failover: no write (a), b; c",
		"| sync mode node loss: kill → first acknowledged write | synchronous_mode on; ttl 10/2/4; 3 nodes, 1 etcd, loopback; one writer | 8.60 s (8.30–9.10, n=3) | 9.50 s |",
		"| sync mode node loss: acknowledged rows lost | synchronous_mode on; ttl 10/2/4; 3 nodes, 1 etcd, loopback; one writer | 0 of 0 | 0 of 2400 |",
		"| sync mode switchover under load: write outage | synchronous_mode on; ttl 10/2/4; 3 nodes, 1 etcd, loopback; one writer, 2 ms between inserts; to the sync standby | — | — |",
		"| commit latency p50, synchronous_mode on | one client, single-row insert commits back to back; sync and async in turn on one cluster (PATCH /config), 3 rounds x 5 s each; ttl 10/2/4; 3 nodes, 1 etcd, loopback | 1.90 ms | — |",
		"| commit latency p50: synchronous overhead | one client, single-row insert commits back to back; sync and async in turn on one cluster (PATCH /config), 3 rounds x 5 s each; ttl 10/2/4; 3 nodes, 1 etcd, loopback | +0.80 ms | — |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if got := res.failover["patroni"]["3/1/1"].Why; got != "no write (a), b; c" {
		t.Errorf("failover reason = %q", got)
	}
}

func TestMissingSide(t *testing.T) {
	res, err := parse(strings.NewReader("FAILOVER ttl=30/10/10 runs=1 kill->lease-end min 30.00s med 30.00s max 30.00s | lease-end->write min 0.10s med 0.10s max 0.10s | kill->write min 30.10s med 30.10s max 30.10s\n"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeTable(&b, res, "m")
	if !strings.Contains(b.String(), "| 30.10 s | — (not run or failed) |") {
		t.Errorf("want a dash for the missing Patroni side:\n%s", b.String())
	}
}
