//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Benchmarks of a real Patroni 3.0.2 cluster (`make bench-patroni`), each mirroring a
// pgnoded benchmark with the same settings, the same measurement code where
// it takes a *Cluster/*Node, and the same metric names, so that
// `make bench-patroni` can print them side by side (tools/sidebyside).
//
//	go test -tags integration -run '^$' -bench BenchmarkPatroni -benchtime 1x ./test/

// BenchmarkPatroniFailoverNodeLoss mirrors BenchmarkFailoverNodeLoss: SIGKILL
// of the primary's Patroni, then of its postmaster and backends; kill -> leader
// key gone, leader key gone -> first acknowledged write, kill -> write. A run
// without a failover within ttl+30 s (key) + 60 s (writes) is reported as such
// (runs_without_failover), not as a failure. PGNODED_BENCH_RUNS and
// PGNODED_BENCH_TTLS as for pgnoded.
func BenchmarkPatroniFailoverNodeLoss(b *testing.B) {
	runs := envInt("PGNODED_BENCH_RUNS", 3)
	fmt.Fprintf(os.Stderr, "PATRONI VERSION %s\n", requirePatroni(b))
	for _, tm := range selectTimings() {
		b.Run(fmt.Sprintf("ttl%d_loop%d_retry%d", tm.TTL, tm.LoopWait, tm.RetryTimeout), func(b *testing.B) {
			var lease, promote, total []float64
			var misses []string
			limit := tm.TTL + 30 + 60
			for i := 0; i < runs; i++ {
				l, p, tot, miss := onePatroniNodeLoss(b, tm)
				if miss != "" {
					misses = append(misses, miss)
					b.Logf("run %d: no failover: %s", i+1, miss)
					continue
				}
				lease, promote, total = append(lease, l), append(promote, p), append(total, tot)
				b.Logf("run %d: kill->key gone %.2fs, key gone->write %.3fs, kill->write %.2fs", i+1, l, p, tot)
			}
			if len(total) > 0 {
				b.ReportMetric(median(lease), "s_kill_to_lease_end")
				b.ReportMetric(median(promote), "s_lease_end_to_write")
				b.ReportMetric(median(total), "s_kill_to_write")
			}
			b.ReportMetric(float64(len(misses)), "runs_without_failover")
			why := ""
			if len(misses) > 0 {
				why = " (" + strings.Join(misses, "; ") + ")"
			}
			fmt.Fprintf(os.Stderr, "PATRONI FAILOVER ttl=%d/%d/%d runs=%d failed=%d limit=%ds%s kill->lease-end %s | lease-end->write %s | kill->write %s\n",
				tm.TTL, tm.LoopWait, tm.RetryTimeout, runs, len(misses), limit, why, minMedMax(lease), minMedMax(promote), minMedMax(total))
		})
	}
}

// onePatroniNodeLoss is oneNodeLoss (bench_failover_test.go) on a Patroni
// cluster; miss says why there was nothing to measure ("" when measured).
func onePatroniNodeLoss(b *testing.B, tm Timing) (leaseEnd, toWrite, total float64, miss string) {
	b.Helper()
	c := StartPatroniCluster(b, 3, tm)
	defer c.Close() // before the next run starts; the logs stay until the benchmark ends
	p := c.WaitUp(bootTimeout)
	if p == nil {
		c.DumpLogs(envInt("PGNODED_BENCH_LOG_BYTES", 3000))
		return 0, 0, 0, fmt.Sprintf("cluster not up with 1 primary + 2 streaming replicas within %v", bootTimeout)
	}
	w := StartWriter(b, c, p)
	if !pollFor(10*time.Second, func() bool { return w.Acked() > 20 }) {
		c.DumpLogs(envInt("PGNODED_BENCH_LOG_BYTES", 3000))
		return 0, 0, 0, "no writes on the primary before the kill"
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gone := watchLeaderGone(ctx, b, c)
	p.NodeLoss()
	killedAt := time.Now()
	var goneAt time.Time
	select {
	case goneAt = <-gone:
	case <-time.After(time.Duration(tm.TTL)*time.Second + 30*time.Second):
		w.Stop()
		c.DumpLogs(envInt("PGNODED_BENCH_LOG_BYTES", 3000))
		return 0, 0, 0, fmt.Sprintf("leader key not gone within %ds of the kill", tm.TTL+30)
	}
	var resumed time.Time
	if !pollFor(60*time.Second, func() bool {
		resumed = w.LastAck()
		return resumed.After(killedAt)
	}) {
		w.Stop()
		c.DumpLogs(envInt("PGNODED_BENCH_LOG_BYTES", 3000))
		dcsErrs := 0
		for _, o := range c.Others(p) {
			dcsErrs += o.LogCount("Error communicating with DCS")
		}
		return 0, 0, 0, fmt.Sprintf("no write acknowledged within 60 s of the leader key going, survivors logged %d x Error communicating with DCS", dcsErrs)
	}
	w.Stop()
	return goneAt.Sub(killedAt).Seconds(), resumed.Sub(goneAt).Seconds(), resumed.Sub(killedAt).Seconds(), ""
}

// BenchmarkPatroniSwitchoverUnderLoad mirrors BenchmarkSwitchoverUnderLoad:
// 4 x $PGNODED_BENCH_RUNS switchovers (POST /switchover to the leader naming a
// candidate, alternating) on one cluster at ttl 10/2/4 under the ack writer.
func BenchmarkPatroniSwitchoverUnderLoad(b *testing.B) {
	runs := envInt("PGNODED_BENCH_RUNS", 3)
	for i := 0; i < b.N; i++ {
		r := runPatroniSwitchovers(b, 4*runs)
		r.report(b)
	}
}

// runPatroniSwitchovers runs switchoverRounds (ops_switchover_test.go) on a
// Patroni cluster. One difference: "replicas streaming" is read from the
// primary's pg_stat_replication, since Patroni 3.0.2's /replica ignores replication_state.
func runPatroniSwitchovers(tb testing.TB, rounds int) switchoverRun {
	pc := StartPatroniCluster(tb, 3, Fast)
	c := pc
	p := pc.WaitUp(bootTimeout)
	if p == nil {
		tb.Fatalf("patroni cluster not up within %v", bootTimeout)
	}
	return switchoverRounds(tb, c, p, rounds, func(p *Node) *Node {
		WaitFor(tb, 120*time.Second, "all replicas streaming", func() bool { return StreamingReplicas(p) == len(c.Nodes)-1 })
		return nil
	})
}

// optionsPrimary is the request of internal/restapi's BenchmarkOptionsPrimary.
const optionsPrimary = "OPTIONS /primary HTTP/1.1\r\nHost: bench\r\n\r\n"

// BenchmarkPatroniRESTPrimary: OPTIONS /primary on the primary's Patroni REST
// API, 50 keep-alive clients, closed loop, $PGNODED_BENCH_REST_SECONDS (10 s).
func BenchmarkPatroniRESTPrimary(b *testing.B) {
	pc := StartPatroniCluster(b, 3, Fast)
	p := pc.WaitUp(bootTimeout)
	if p == nil {
		b.Fatalf("patroni cluster not up within %v", bootTimeout)
	}
	for range b.N {
		r := restLoad(context.Background(), fmt.Sprintf("127.0.0.1:%d", p.APIPort), optionsPrimary, restClients, restLoadSeconds())
		reportRESTLoad(b, "patroni OPTIONS /primary", r)
	}
}

// BenchmarkPgnodedRESTPrimary is BenchmarkPatroniRESTPrimary against a real
// pgnoded cluster node (same generator, same duration): the like-for-like
// counterpart of internal/restapi's in-process BenchmarkOptionsPrimary.
func BenchmarkPgnodedRESTPrimary(b *testing.B) {
	_, p := bootCluster(b, Fast)
	for range b.N {
		r := restLoad(context.Background(), fmt.Sprintf("127.0.0.1:%d", p.APIPort), optionsPrimary, restClients, restLoadSeconds())
		reportRESTLoad(b, "pgnoded OPTIONS /primary", r)
	}
}
