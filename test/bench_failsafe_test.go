//go:build integration

package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// BenchmarkFailsafeEtcdFrozen measures what an etcd outage costs the
// writers, failsafe_mode on and off, at Patroni's default timing (30/10/10)
// and the failure suite's (10/2/4): every etcd member is frozen (SIGSTOP)
// for 40 s while the ChaosWorkload inserts through /primary, then resumed.
// Each setting runs $PGNODED_BENCH_RUNS times (default 3) on a fresh
// namespace topology (3 etcd + 3 nodes). Printed, not asserted: the longest
// pause between acknowledged writes from the freeze until the cluster is
// whole again, the periods with two writable nodes and the acknowledged rows
// lost. About 20 minutes. PGNODED_BENCH_SECURE=1 gives every node
// restapi.authentication and HTTPS with client certificates from a private CA
// (the failsafe probes then authenticate as Patroni's daemon does);
// PGNODED_BENCH_TIMINGS=fast runs only ttl 10/2/4, PGNODED_BENCH_FAILSAFE=on
// only the lines with failsafe_mode on.
//
//	go test -tags integration -run '^$' -bench BenchmarkFailsafeEtcdFrozen -benchtime 1x -timeout 60m ./test/
func BenchmarkFailsafeEtcdFrozen(b *testing.B) {
	runs := envInt("PGNODED_BENCH_RUNS", 3)
	freeze := time.Duration(envInt("PGNODED_FAILSAFE_FREEZE", 40)) * time.Second
	secure := os.Getenv("PGNODED_BENCH_SECURE") == "1"
	timings := []Timing{{30, 10, 10}, {10, 2, 4}}
	if os.Getenv("PGNODED_BENCH_TIMINGS") == "fast" {
		timings = timings[1:]
	}
	modes := []bool{false, true}
	if os.Getenv("PGNODED_BENCH_FAILSAFE") == "on" {
		modes = modes[1:]
	}
	type line struct {
		opts    chaosOptions
		gaps    []time.Duration
		dual    int
		lost    int
		acked   int
		leaders []string
	}
	var lines []*line
	for _, timing := range timings {
		for _, fs := range modes {
			l := &line{opts: chaosOptions{Timing: timing, Failsafe: fs, Secure: secure}}
			lines = append(lines, l)
			name := strings.ReplaceAll(l.opts.String(), " ", "-")
			b.Run(strings.ReplaceAll(name, "/", "-"), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					for r := 0; r < runs; r++ {
						gap, res := failsafeFreezeRun(b, l.opts, freeze, uint64(r+1))
						l.gaps = append(l.gaps, gap)
						l.dual += len(res.Dual)
						l.lost += len(res.Lost)
						l.acked += res.Acked
						l.leaders = append(l.leaders, strings.Join(res.Leaders, " "))
					}
				}
				b.ReportMetric(percentile(l.gaps, 50).Seconds(), "gap-med-s")
				b.ReportMetric(percentile(l.gaps, 100).Seconds(), "gap-max-s")
				b.ReportMetric(float64(l.dual), "split-brain")
				b.ReportMetric(float64(l.lost), "lost-rows")
			})
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "etcd frozen (SIGSTOP of all 3 members) for %v, writer through /primary, %d runs per line, REST API authentication and TLS %v\n\n",
		freeze, runs, secure)
	fmt.Fprintf(&sb, "| ttl/loop_wait/retry_timeout | failsafe_mode | longest write outage: runs | median | two writable primaries | acknowledged rows lost |\n")
	fmt.Fprintf(&sb, "|---|---|---|---|---|---|\n")
	for _, l := range lines {
		var each []string
		for _, g := range l.gaps {
			each = append(each, fmt.Sprintf("%.2fs", g.Seconds()))
		}
		fmt.Fprintf(&sb, "| %d/%d/%d | %v | %s | %.2fs | %d | %d of %d |\n", l.opts.Timing.TTL, l.opts.Timing.LoopWait,
			l.opts.Timing.RetryTimeout, l.opts.Failsafe, strings.Join(each, ", "), percentile(l.gaps, 50).Seconds(), l.dual, l.lost, l.acked)
	}
	b.Logf("\n%s", sb.String())
	fmt.Fprintf(os.Stderr, "FAILSAFE TABLE\n%s", sb.String())
}

// failsafeFreezeRun boots a fresh topology with opts, freezes every etcd
// member for d, resumes them, waits until the cluster is whole, and returns
// the longest pause between acknowledged writes from the freeze on.
func failsafeFreezeRun(b *testing.B, opts chaosOptions, d time.Duration, seed uint64) (time.Duration, chaosResult) {
	var gap time.Duration
	var res chaosResult
	// A sub-benchmark gives the run its own cleanup scope (the topology goes at its end).
	b.Run(fmt.Sprintf("run%d", seed), func(b *testing.B) {
		e := newChaosEnv(b, "failsafe-bench", seed, opts)
		if opts.Failsafe {
			e.waitFailsafeKey()
		}
		f := e.fault("every etcd member frozen for %v (%s)", d, opts)
		restore := e.etcdOutage(true)
		time.Sleep(d) // the fault's length, not a synchronisation
		resumeAt := time.Now()
		restore()
		e.heal(f)
		e.w.WaitWrites(b, failoverTimeout, resumeAt)
		res = e.finish(opts.Failsafe)
		gap = e.writeGap(f.At, time.Now())
		b.Logf("%s: longest write outage %.2fs; leader key %s", opts, gap.Seconds(), strings.Join(res.Leaders, " "))
	})
	return gap, res
}
