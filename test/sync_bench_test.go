//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// Benchmarks of synchronous replication, each run the same way on pgnoded and
// on Patroni 3.0.2 (the same harness, config template and measuring code: the
// Daemon is the only difference), so that `make bench-patroni` prints them
// side by side (tools/sidebyside). Figures are reported, never asserted.
//
//	go test -tags integration -run '^$' -bench '^Benchmark(Patroni)?(SyncFailoverNodeLoss|SyncSwitchoverUnderLoad|CommitLatency)$' -benchtime 1x ./test/

// BenchmarkSyncFailoverNodeLoss: node loss of the primary (daemon, then
// postmaster and backends) with synchronous_mode on, ttl 10/2/4, 3 nodes:
// kill -> leader key gone, key gone -> first acknowledged write on the new
// primary, kill -> write, and the acknowledged rows lost (the mode's promise: 0).
// PGNODED_BENCH_RUNS runs (default 3), each on a fresh cluster.
func BenchmarkSyncFailoverNodeLoss(b *testing.B) { benchSyncFailover(b, DaemonPgnoded) }

// BenchmarkPatroniSyncFailoverNodeLoss is BenchmarkSyncFailoverNodeLoss on Patroni 3.0.2.
func BenchmarkPatroniSyncFailoverNodeLoss(b *testing.B) { benchSyncFailover(b, DaemonPatroni) }

func benchSyncFailover(b *testing.B, d Daemon) {
	runs := envInt("PGNODED_BENCH_RUNS", 3)
	if d == DaemonPatroni {
		fmt.Fprintf(os.Stderr, "PATRONI VERSION %s\n", requirePatroni(b))
	}
	var lease, promote, total []float64
	var lost, acked, misses int
	for i := 0; i < runs; i++ {
		r := oneSyncNodeLoss(b, d, Fast)
		lost, acked = lost+r.lost, acked+r.acked
		if r.miss != "" {
			misses++
			b.Logf("%s run %d: no failover: %s", d, i+1, r.miss)
			continue
		}
		lease, promote, total = append(lease, r.lease), append(promote, r.promote), append(total, r.total)
		b.Logf("%s run %d: kill->key gone %.2fs, key gone->write %.3fs, kill->write %.2fs; %d of %d acknowledged rows lost",
			d, i+1, r.lease, r.promote, r.total, r.lost, r.acked)
	}
	reportSpread(b, "s_kill_to_lease_end", lease)
	reportSpread(b, "s_lease_end_to_write", promote)
	reportSpread(b, "s_kill_to_write", total)
	b.ReportMetric(float64(len(total)), "runs_measured")
	b.ReportMetric(float64(misses), "runs_without_failover")
	b.ReportMetric(float64(lost), "lost-rows")
	b.ReportMetric(float64(acked), "acked-rows")
}

// reportSpread reports the median of xs as unit and its extremes as unit_min
// and unit_max (nothing when xs is empty).
func reportSpread(b *testing.B, unit string, xs []float64) {
	if len(xs) == 0 {
		return
	}
	b.ReportMetric(median(xs), unit)
	b.ReportMetric(slices.Min(xs), unit+"_min")
	b.ReportMetric(slices.Max(xs), unit+"_max")
}

// syncNodeLoss is one run of benchSyncFailover.
type syncNodeLoss struct {
	lease, promote, total float64
	lost, acked           int
	miss                  string // why there was nothing to measure ("" when measured)
}

func oneSyncNodeLoss(b *testing.B, d Daemon, tm Timing) (r syncNodeLoss) {
	b.Helper()
	c, p, s := startSyncCluster(b, d, 3, tm, nodeconf.Sync{})
	defer c.Close() // before the next run starts; the logs stay until the benchmark ends
	w := StartWriter(b, c, p)
	if !pollFor(20*time.Second, func() bool { return w.Acked() > 200 }) {
		return syncNodeLoss{miss: "fewer than 200 writes on the primary within 20 s before the kill"}
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
		return syncNodeLoss{miss: fmt.Sprintf("leader key not gone within %ds of the kill", tm.TTL+30)}
	}
	var resumed time.Time
	if !pollFor(60*time.Second, func() bool {
		var ok bool
		resumed, ok = w.ResumedAfter(killedAt)
		return ok
	}) {
		w.Stop()
		c.DumpLogs(envInt("PGNODED_BENCH_LOG_BYTES", 3000))
		return syncNodeLoss{miss: "no write acknowledged within 60 s of the leader key going"}
	}
	np := c.WaitPrimary(30*time.Second, p)
	if np != s {
		b.Logf("the new primary is %s, not the synchronous standby %s", np.Name, s.Name)
	}
	lost := w.Lost(b, np)
	return syncNodeLoss{lease: goneAt.Sub(killedAt).Seconds(), promote: resumed.Sub(goneAt).Seconds(),
		total: resumed.Sub(killedAt).Seconds(), lost: len(lost), acked: w.Acked()}
}

// BenchmarkSyncSwitchoverUnderLoad: 4 x PGNODED_BENCH_RUNS planned switchovers
// (POST /switchover to the leader naming its synchronous standby) under the
// ack writer with synchronous_mode on, ttl 10/2/4: the write outage of each,
// the API's answer time, acknowledged and lost rows (metrics as
// BenchmarkSwitchoverUnderLoad's).
func BenchmarkSyncSwitchoverUnderLoad(b *testing.B) { benchSyncSwitchover(b, DaemonPgnoded) }

// BenchmarkPatroniSyncSwitchoverUnderLoad is BenchmarkSyncSwitchoverUnderLoad on Patroni 3.0.2.
func BenchmarkPatroniSyncSwitchoverUnderLoad(b *testing.B) { benchSyncSwitchover(b, DaemonPatroni) }

func benchSyncSwitchover(b *testing.B, d Daemon) {
	runs := envInt("PGNODED_BENCH_RUNS", 3)
	for i := 0; i < b.N; i++ {
		c, p, _ := startSyncCluster(b, d, 3, Fast, nodeconf.Sync{})
		r := switchoverRounds(b, c, p, 4*runs, func(p *Node) *Node {
			np, s := c.WaitSync(120 * time.Second)
			if np != p {
				b.Fatalf("primary %s, expected %s", np.Name, p.Name)
			}
			return s
		})
		c.Close()
		r.report(b)
	}
}

// BenchmarkCommitLatency: one client committing single-row inserts back to
// back on the primary of a 3-node cluster at ttl 10/2/4, with synchronous_mode
// on and off in turn on the same cluster (PATCH /config, no restart), for
// PGNODED_BENCH_COMMIT_ROUNDS rounds (default 3) of PGNODED_BENCH_COMMIT_SECONDS
// (default 5) per mode: the commit latency p50/p99 and commits per second of
// each mode (sub-benchmarks async and sync). Interleaving the modes on one
// cluster keeps the machine's drifting load out of the difference, which is
// what synchronous replication costs a commit.
func BenchmarkCommitLatency(b *testing.B) { benchCommitLatency(b, DaemonPgnoded) }

// BenchmarkPatroniCommitLatency is BenchmarkCommitLatency on Patroni 3.0.2.
func BenchmarkPatroniCommitLatency(b *testing.B) { benchCommitLatency(b, DaemonPatroni) }

func benchCommitLatency(b *testing.B, d Daemon) {
	secs := envInt("PGNODED_BENCH_COMMIT_SECONDS", 5)
	rounds := envInt("PGNODED_BENCH_COMMIT_ROUNDS", 3)
	c, p, _ := startSyncCluster(b, d, 3, Fast, nodeconf.Sync{})
	defer c.Close()
	lat := map[string][]time.Duration{}
	next := int64(0)
	for r := 0; r < rounds; r++ {
		for _, mode := range []string{"sync", "async"} {
			setSyncMode(b, c, p, mode == "sync")
			l := commitLatencies(b, p, time.Duration(secs)*time.Second, &next)
			lat[mode] = append(lat[mode], l...)
			b.Logf("%s round %d %s: %d commits in %ds, p50 %v, p99 %v", d, r+1, mode, len(l), secs, percentile(l, 50), percentile(l, 99))
		}
	}
	for _, mode := range []string{"async", "sync"} {
		b.Run(mode, func(b *testing.B) {
			l := lat[mode]
			b.ReportMetric(float64(percentile(l, 50).Microseconds()), "p50_us")
			b.ReportMetric(float64(percentile(l, 99).Microseconds()), "p99_us")
			b.ReportMetric(float64(len(l))/float64(secs*rounds), "commits/s")
			b.Logf("%s %s: %d commits in %d x %ds, p50 %v, p99 %v", d, mode, len(l), rounds, secs, percentile(l, 50), percentile(l, 99))
		})
	}
}

// setSyncMode turns synchronous_mode on or off through PATCH /config on the
// primary p and waits until it is in effect: /sync names p and a standby p
// reports synchronous, or /sync is gone and p's synchronous_standby_names is empty.
func setSyncMode(b *testing.B, c *Cluster, p *Node, on bool) {
	b.Helper()
	if code, text := p.Call(b, "PATCH", "/config", map[string]any{"synchronous_mode": on}); code != 200 {
		b.Fatalf("PATCH /config synchronous_mode=%v on %s: %d %s", on, p.Name, code, text)
	}
	if on {
		if np, _ := c.WaitSync(60 * time.Second); np != p {
			b.Fatalf("primary %s after turning synchronous_mode on, expected %s", np.Name, p.Name)
		}
		return
	}
	WaitFor(b, 60*time.Second, "synchronous_mode off in effect on "+p.Name, func() bool {
		_, has := c.SyncKey(context.Background())
		return !has && showSSN(p) == ""
	})
}

// commitLatencies commits single-row inserts on p back to back for d (ids
// after *last, which it advances) and returns each one's latency.
func commitLatencies(b *testing.B, p *Node, d time.Duration, last *int64) []time.Duration {
	b.Helper()
	ctx := context.Background()
	conn, err := p.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "create table if not exists bench_commits(id bigint primary key)"); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	end := time.Now().Add(d)
	for ; time.Now().Before(end); *last++ {
		id := *last + 1
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		_, err := conn.Exec(qctx, "insert into bench_commits values ($1)", id)
		cancel()
		if err != nil {
			b.Fatalf("commit %d on %s: %v", id, p.Name, err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}
