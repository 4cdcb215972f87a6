//go:build integration

package test

import (
	"net/http"
	"testing"
	"time"
)

// TestSwitchoverUnderLoadTenTimes measures planned switchovers under a steady
// insert load: ten switchovers back and forth (POST /switchover to the leader
// naming a candidate), logging for each the write outage (last acknowledged
// insert before it to the first one after it) and, at the end, the
// acknowledged rows missing on the final primary (must be none). Timings are
// logged, not asserted.
//
//	go test -tags integration -count=1 -run TestSwitchoverUnderLoadTenTimes -v ./test/
func TestSwitchoverUnderLoadTenTimes(t *testing.T) {
	c, p := bootCluster(t, Fast)
	w := startAckWriter(t, c, p)
	WaitFor(t, 10*time.Second, "some writes", func() bool { return w.acked() > 100 })

	const rounds = 10
	var outages, answers []time.Duration
	for i := 0; i < rounds; i++ {
		p = c.WaitPrimary(60*time.Second, nil)
		c.WaitStreaming(120*time.Second, p)
		cand := c.Others(p)[i%2]
		before := w.acked()
		WaitFor(t, 10*time.Second, "writes before the switchover", func() bool { return w.acked() > before+50 })

		start := time.Now()
		code, text := p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": cand.Name})
		answered := time.Now()
		if code != http.StatusOK {
			t.Fatalf("switchover %d %s -> %s: %d %q", i+1, p.Name, cand.Name, code, text)
		}
		w.waitAckAfter(t, 30*time.Second, answered)
		settled := time.Now().Add(500 * time.Millisecond)
		w.waitAckAfter(t, 30*time.Second, settled)
		gap := w.outage(start, settled)
		outages = append(outages, gap)
		answers = append(answers, answered.Sub(start))
		t.Logf("switchover %2d: %s -> %s: write outage %4.0f ms, API answered after %4.0f ms: %s",
			i+1, p.Name, cand.Name, ms(gap), ms(answered.Sub(start)), text)
		if leader := c.LeaderKey(); leader != cand.Name {
			t.Fatalf("leader key = %q after switching over to %s", leader, cand.Name)
		}
	}
	final := c.WaitPrimary(30*time.Second, nil)
	c.WaitHealthyReplicas(120*time.Second, final)
	acked := w.acked()
	lost := w.lost(t, final)
	t.Logf("%d planned switchovers under load: write outage p50 %.0f ms, max %.0f ms; API answer p50 %.0f ms, max %.0f ms; "+
		"%d rows acknowledged, %d lost", rounds, ms(percentile(outages, 50)), ms(percentile(outages, 100)),
		ms(percentile(answers, 50)), ms(percentile(answers, 100)), acked, len(lost))
	if len(lost) > 0 {
		t.Errorf("%d acknowledged rows lost in planned switchovers: %v", len(lost), lost[:min(10, len(lost))])
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
