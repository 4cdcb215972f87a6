//go:build integration

package test

import (
	"net/http"
	"testing"
	"time"
)

// TestSwitchoverUnderLoadTenTimes runs ten planned switchovers under a
// steady insert load, back and forth (POST /switchover to the leader naming a
// candidate), logging each one's write outage (last acknowledged insert
// before it to the first one after it). Asserted: every switchover lands on
// its candidate and no acknowledged row is lost. Timings are logged, not
// asserted; BenchmarkSwitchoverUnderLoad reports them for make bench.
//
//	go test -tags integration -count=1 -run TestSwitchoverUnderLoadTenTimes -v ./test/
func TestSwitchoverUnderLoadTenTimes(t *testing.T) {
	r := runSwitchovers(t, 10)
	if len(r.lost) > 0 {
		t.Errorf("%d acknowledged rows lost in planned switchovers: %v", len(r.lost), r.lost[:min(10, len(r.lost))])
	}
}

// BenchmarkSwitchoverUnderLoad measures the write outage of planned
// switchovers under load: 4 x $PGNODED_BENCH_RUNS (default 3) switchovers on
// one cluster, ttl 10/2/4. Reported: outage min/median/max in ms, the API's
// answer time, switchovers, acknowledged and lost rows.
//
//	go test -tags integration -run '^$' -bench BenchmarkSwitchoverUnderLoad -benchtime 1x ./test/
func BenchmarkSwitchoverUnderLoad(b *testing.B) {
	runs := envInt("PGNODED_BENCH_RUNS", 3)
	for i := 0; i < b.N; i++ {
		r := runSwitchovers(b, 4*runs)
		r.report(b)
	}
}

// switchoverRun is what runSwitchovers measured.
type switchoverRun struct {
	outages, answers []time.Duration
	acked            int
	lost             []int64
}

// runSwitchovers boots a cluster and runs switchoverRounds on it.
func runSwitchovers(tb testing.TB, rounds int) switchoverRun {
	c, p := bootCluster(tb, Fast)
	return switchoverRounds(tb, c, p, rounds, func(p *Node) *Node { c.WaitStreaming(120*time.Second, p); return nil })
}

// report reports the run's outages (min, median, max in ms), the API's
// median answer time, the switchovers, acknowledged and lost rows.
func (r switchoverRun) report(b *testing.B) {
	b.ReportMetric(ms(percentile(r.outages, 0)), "outage-min-ms")
	b.ReportMetric(ms(percentile(r.outages, 50)), "outage-med-ms")
	b.ReportMetric(ms(percentile(r.outages, 100)), "outage-max-ms")
	b.ReportMetric(ms(percentile(r.answers, 50)), "answer-med-ms")
	b.ReportMetric(float64(len(r.outages)), "switchovers")
	b.ReportMetric(float64(r.acked), "acked-rows")
	b.ReportMetric(float64(len(r.lost)), "lost-rows")
}

// switchoverRounds starts the writer on a booted cluster (primary p) and
// switches over `rounds` times after ready says every replica streams from the
// primary, to the candidate ready names (nil: the two others in turn); it
// fails tb if a switchover is refused or lands elsewhere. Shared by pgnoded's
// and Patroni's benchmarks, asynchronous and synchronous.
func switchoverRounds(tb testing.TB, c *Cluster, p *Node, rounds int, ready func(p *Node) (candidate *Node)) switchoverRun {
	w := startAckWriter(tb, c, p)
	WaitFor(tb, 10*time.Second, "some writes", func() bool { return w.Acked() > 100 })
	var r switchoverRun
	for i := 0; i < rounds; i++ {
		p = c.WaitPrimary(60*time.Second, nil)
		cand := ready(p)
		if cand == nil {
			cand = c.Others(p)[i%2]
		}
		before := w.Acked()
		WaitFor(tb, 10*time.Second, "writes before the switchover", func() bool { return w.Acked() > before+50 })

		start := time.Now()
		code, text := p.Call(tb, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": cand.Name})
		answered := time.Now()
		if code != http.StatusOK {
			tb.Fatalf("switchover %d %s -> %s: %d %q", i+1, p.Name, cand.Name, code, text)
		}
		w.WaitAckAfter(tb, 30*time.Second, answered)
		settled := time.Now().Add(500 * time.Millisecond)
		w.WaitAckAfter(tb, 30*time.Second, settled)
		gap := w.Outage(start, settled)
		r.outages = append(r.outages, gap)
		r.answers = append(r.answers, answered.Sub(start))
		tb.Logf("switchover %2d: %s -> %s: write outage %4.0f ms, API answered after %4.0f ms: %s",
			i+1, p.Name, cand.Name, ms(gap), ms(answered.Sub(start)), text)
		if leader := c.LeaderKey(); leader != cand.Name {
			tb.Fatalf("leader key = %q after switching over to %s", leader, cand.Name)
		}
	}
	final := c.WaitPrimary(30*time.Second, nil)
	c.WaitHealthyReplicas(120*time.Second, final)
	r.acked = w.Acked()
	r.lost = w.Lost(tb, final)
	tb.Logf("%d planned switchovers under load: write outage p50 %.0f ms, max %.0f ms; API answer p50 %.0f ms, max %.0f ms; "+
		"%d rows acknowledged, %d lost", rounds, ms(percentile(r.outages, 50)), ms(percentile(r.outages, 100)),
		ms(percentile(r.answers, 50)), ms(percentile(r.answers, 100)), r.acked, len(r.lost))
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
