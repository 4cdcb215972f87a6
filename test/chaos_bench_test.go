//go:build integration

package test

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// BenchmarkFailoverPostgresCrash kills the primary's postgres (postmaster and
// every backend, SIGKILL) while its pgnoded keeps running, and measures the
// time from the kill to the first acknowledged write through /primary, and
// whether pgnoded restarted postgres in place or failed over.
// PGNODED_BENCH_RUNS sets the runs (default 3).
//
//	go test -tags integration -run '^$' -bench FailoverPostgresCrash -benchtime 1x ./test/
func BenchmarkFailoverPostgresCrash(b *testing.B) {
	runs := envInt("PGNODED_BENCH_RUNS", 3)
	tm := Fast
	var secs []float64
	inPlace := 0
	for i := 0; i < runs; i++ {
		// A sub-benchmark per run, so that each cluster is removed before the next starts.
		b.Run(fmt.Sprintf("run%d", i+1), func(b *testing.B) {
			c := StartCluster(b, 3, tm)
			p := c.WaitPrimary(bootTimeout, nil)
			c.WaitHealthyReplicas(bootTimeout, p)
			w := StartWriter(b, c, p)
			WaitFor(b, 10*time.Second, "some writes", func() bool { return w.Acked() > 20 })
			errs := writerErrors(w)
			killPostgresTree(p)
			killed := time.Now()
			// An insert in flight during the kill may still be acknowledged:
			// writes are back at the first acknowledgement after a failure.
			var failed time.Time
			WaitFor(b, 10*time.Second, "the writer to fail", func() bool {
				failed = time.Now()
				return writerErrors(w) > errs
			})
			resumed := w.WaitWritesResume(b, 120*time.Second, failed)
			np := c.WaitPrimary(60*time.Second, nil)
			w.Stop()
			how := "failed over to " + np.Name
			if np == p {
				how = "restarted in place"
				inPlace++
			}
			secs = append(secs, resumed.Sub(killed).Seconds())
			b.ReportMetric(secs[len(secs)-1], "s_kill_to_write")
			b.Logf("kill -> write %.2fs (%s)", secs[len(secs)-1], how)
		})
	}
	// A failed run (its sub-benchmark reports why) is left out of the figures.
	fmt.Fprintf(os.Stderr, "PGCRASH ttl=%d/%d/%d runs=%d kill->write %s | in place %d/%d\n",
		tm.TTL, tm.LoopWait, tm.RetryTimeout, len(secs), minMedMax(secs), inPlace, len(secs))
}

// writerErrors is how many failed attempts w has counted.
func writerErrors(w *Writer) int {
	return w.Errors()
}
