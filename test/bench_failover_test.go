//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Timings compared by the failover benchmark: pgnoded's fastest sound setting,
// the failure suite's, and Patroni's defaults.
var benchTimings = []Timing{{TTL: 3, LoopWait: 1, RetryTimeout: 1}, Fast, {TTL: 30, LoopWait: 10, RetryTimeout: 10}}

// BenchmarkFailoverNodeLoss kills the primary's pgnoded and postmaster (a node
// loss) and measures: kill -> leader key gone (the lease ran out), leader key
// gone -> first acknowledged write on the new primary, and kill -> writes.
// PGNODED_BENCH_RUNS sets the runs per timing (default 3); PGNODED_BENCH_TTLS
// picks timings by ttl (e.g. "3,10").
//
//	go test -tags integration -run '^$' -bench FailoverNodeLoss -benchtime 1x ./test/
func BenchmarkFailoverNodeLoss(b *testing.B) {
	runs := envInt("PGNODED_BENCH_RUNS", 3)
	for _, tm := range selectTimings() {
		b.Run(fmt.Sprintf("ttl%d_loop%d_retry%d", tm.TTL, tm.LoopWait, tm.RetryTimeout), func(b *testing.B) {
			var lease, promote, total []float64
			for i := 0; i < runs; i++ {
				l, p, tot := oneNodeLoss(b, tm)
				lease, promote, total = append(lease, l), append(promote, p), append(total, tot)
				b.Logf("run %d: kill->key gone %.2fs, key gone->write %.3fs, kill->write %.2fs", i+1, l, p, tot)
			}
			b.ReportMetric(median(lease), "s_kill_to_lease_end")
			b.ReportMetric(median(promote), "s_lease_end_to_write")
			b.ReportMetric(median(total), "s_kill_to_write")
			fmt.Fprintf(os.Stderr, "FAILOVER ttl=%d/%d/%d runs=%d kill->lease-end %s | lease-end->write %s | kill->write %s\n",
				tm.TTL, tm.LoopWait, tm.RetryTimeout, runs, minMedMax(lease), minMedMax(promote), minMedMax(total))
		})
	}
}

func oneNodeLoss(b *testing.B, tm Timing) (leaseEnd, toWrite, total float64) {
	b.Helper()
	c := StartCluster(b, 3, tm)
	p := c.WaitPrimary(bootTimeout, nil)
	c.WaitHealthyReplicas(bootTimeout, p)
	w := StartWriter(b, c, p)
	WaitFor(b, 10*time.Second, "some writes", func() bool { return w.Acked() > 20 })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gone := watchLeaderGone(ctx, b, c)
	// The node dies: supervisor first (so it cannot restart postgres), then the
	// postmaster. The node is lost when its postgres stops answering.
	p.KillPgnoded()
	killPostgresTree(p)
	killedAt := time.Now()
	var goneAt time.Time
	select {
	case goneAt = <-gone:
	case <-time.After(time.Duration(tm.TTL)*time.Second + 30*time.Second):
		b.Fatalf("leader key never expired")
	}
	resumed := w.WaitWritesResume(b, 60*time.Second, killedAt)
	w.Stop()
	return goneAt.Sub(killedAt).Seconds(), resumed.Sub(goneAt).Seconds(), resumed.Sub(killedAt).Seconds()
}

// watchLeaderGone watches c's leader key and returns when etcd has
// registered the watch (so a kill right after it is seen); the channel gets
// the time the key is deleted. The watch ends with ctx.
func watchLeaderGone(ctx context.Context, tb testing.TB, c *Cluster) <-chan time.Time {
	tb.Helper()
	wch := c.Etcd.Client().Watch(ctx, "/itest/"+c.Scope+"/leader", clientv3.WithCreatedNotify())
	select {
	case resp := <-wch:
		if !resp.Created {
			tb.Fatalf("watch on the leader key not created: %v", resp.Err())
		}
	case <-time.After(30 * time.Second):
		tb.Fatalf("watch on the leader key not created within 30 s")
	}
	gone := make(chan time.Time, 1)
	go func() { // ends with ctx
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					gone <- time.Now()
					return
				}
			}
		}
	}()
	return gone
}

func selectTimings() []Timing {
	want := os.Getenv("PGNODED_BENCH_TTLS")
	if want == "" {
		return benchTimings
	}
	var out []Timing
	for _, tm := range benchTimings {
		for _, s := range strings.Split(want, ",") {
			if strings.TrimSpace(s) == strconv.Itoa(tm.TTL) {
				out = append(out, tm)
			}
		}
	}
	return out
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func minMedMax(xs []float64) string {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("min %.2fs med %.2fs max %.2fs", s[0], s[len(s)/2], s[len(s)-1])
}

// killPostgresTree kills the postmaster and every backend at once (a node loss;
// SIGKILL of the postmaster alone leaves backends committing for a moment).
func killPostgresTree(n *Node) {
	pm := n.PostmasterPID()
	if pm <= 0 {
		return
	}
	_ = syscall.Kill(pm, syscall.SIGSTOP) // no new children while we kill
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Field 4 of /proc/<pid>/stat is the parent pid (after the parenthesised comm).
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			var state string
			var ppid int
			fmt.Sscanf(string(stat[i+2:]), "%s %d", &state, &ppid)
			if ppid == pm {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = syscall.Kill(pm, syscall.SIGKILL)
}

// BenchmarkBootstrapThreeNodes measures the time from starting three pgnoded
// processes on empty data directories to one primary and two streaming
// replicas, at Patroni's default timing (ttl 30/10/10, Pigsty's) and at the
// failure tests' (10/2/4): no step of the bootstrap waits for a loop_wait.
//
//	go test -tags integration -run '^$' -bench BootstrapThreeNodes -benchtime 1x ./test/
func BenchmarkBootstrapThreeNodes(b *testing.B) {
	runs := envInt("PGNODED_BENCH_RUNS", 3)
	for _, timing := range []Timing{{TTL: 30, LoopWait: 10, RetryTimeout: 10}, Fast} {
		var secs []float64
		for i := 0; i < runs; i++ {
			start := time.Now()
			c := StartCluster(b, 3, timing)
			p := c.WaitPrimary(bootTimeout, nil)
			primaryAt := time.Since(start)
			c.WaitHealthyReplicas(bootTimeout, p)
			secs = append(secs, time.Since(start).Seconds())
			b.Logf("ttl %d/%d/%d run %d: primary after %.2fs, all healthy after %.2fs", timing.TTL, timing.LoopWait,
				timing.RetryTimeout, i+1, primaryAt.Seconds(), secs[len(secs)-1])
			for _, nd := range c.Nodes {
				nd.destroy() // one cluster at a time on the shared machine
			}
		}
		b.ReportMetric(median(secs), fmt.Sprintf("s_to_healthy_ttl%d", timing.TTL))
		fmt.Fprintf(os.Stderr, "BOOTSTRAP 3 nodes ttl=%d/%d/%d runs=%d to healthy: %s\n", timing.TTL, timing.LoopWait,
			timing.RetryTimeout, runs, minMedMax(secs))
	}
}
