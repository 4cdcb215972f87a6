//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// outageMin is the shortest pause between two acknowledged writes counted as an outage.
const outageMin = 500 * time.Millisecond

// maxLagOnFailover is the clusters' maximum_lag_on_failover (bytes of WAL).
const maxLagOnFailover = 1 << 20

// chaosResult is one scenario's line in the table and its details.
type chaosResult struct {
	Name     string
	Settings string // ttl/loop_wait/retry_timeout and failsafe_mode
	Seed     uint64
	Clean    bool // a clean event
	Sync     bool // synchronous_mode was on
	Acked    int
	Lost     []ack
	WALRow   float64       // estimated WAL bytes per row
	Dual     []dualPeriod  // certain: two nodes writable (SQL) at once
	Maybe    []dualPeriod  // within the measurement's uncertainty
	RESTDup  []dualPeriod  // two nodes answering 200 on /primary at once (certain)
	VIP      *VIPReport    // nil without the VIP
	Outage   gap           // longest pause of the /primary writer
	VIPGap   gap           // longest pause of the VIP writer
	RESTGap  gap           // longest time no node answered 200 on /primary
	Faults   []*chaosFault // with Back filled in
	Back     []time.Duration
	Leaders  []string
	Notes    []string
	Err      string // the scenario did not finish (a t.Fatal)
}

// finish stops the workload and judges the scenario: safety (no two writable
// nodes at once) always, no lost acknowledged row when clean or when
// synchronous_mode is on (whatever the event: that is the mode's promise;
// asynchronous unclean events may lose up to maximum_lag_on_failover).
func (e *chaosEnv) finish(clean bool) chaosResult {
	e.t.Helper()
	final := e.waitHealthy(bootTimeout)
	e.w.WaitWrites(e.t, 30*time.Second, time.Now().Add(500*time.Millisecond))
	end := time.Now()
	sync := e.opts.Sync != nil
	r := chaosResult{Name: e.name, Settings: e.opts.String(), Seed: e.seed, Clean: clean, Sync: sync, Faults: e.faults, Notes: e.notes}
	lost, acked, err := e.w.LostOn(context.Background(), final)
	if err != nil {
		e.t.Fatalf("reading the rows on the final primary %s: %v", final.Name, err)
	}
	r.Lost, r.Acked, r.WALRow = lost, acked, e.walBytesPerRow(final)
	sql, rest, acks, leaders := e.w.rec.snapshot()
	r.Dual, r.Maybe = dualPeriods(writableRuns(sql))
	r.RESTDup, _ = dualPeriods(writableRuns(rest))
	r.Outage = longestGap(ackGaps(acks, "writer", e.w.start, end, outageMin))
	r.RESTGap = noPrimaryGap(rest, e.w.start, end)
	if e.vip != nil {
		rep := e.vip.Stop()
		r.VIP = &rep
		r.VIPGap = longestGap(ackGaps(acks, "vip", e.w.start, end, outageMin))
	}
	gaps := ackGaps(acks, "writer", e.w.start, end, outageMin)
	for i, f := range e.faults {
		next := end
		if i+1 < len(e.faults) {
			next = e.faults[i+1].At
		}
		r.Back = append(r.Back, writesBackAfter(gaps, f.At, next))
	}
	r.Leaders = leaderChanges(leaders)
	e.report(r)
	return r
}

// writesBackAfter is how long after `at` the /primary writer recovered from the
// first outage that ended after `at` and began before `next` (0: no outage).
func writesBackAfter(gaps []gap, at, next time.Time) time.Duration {
	for _, g := range gaps {
		if g.To.After(at) && g.From.Before(next) && !g.From.Before(at.Add(-outageMin)) {
			return g.To.Sub(at)
		}
	}
	return 0
}

// noLossAllowed: no acknowledged row may be lost in a clean event, nor with
// synchronous_mode on whatever the event (asynchronous unclean events may
// lose up to maximum_lag_on_failover).
func (r chaosResult) noLossAllowed() bool { return r.Clean || r.Sync }

// report logs the details and fails the test on a broken rule.
func (e *chaosEnv) report(r chaosResult) {
	t := e.t
	t.Logf("%s: %d acknowledged rows, %d lost (none may be lost: %v, synchronous_mode %v; ~%.0f B of WAL per row, maximum_lag_on_failover %d B)",
		r.Name, r.Acked, len(r.Lost), r.noLossAllowed(), r.Sync, r.WALRow, maxLagOnFailover)
	for i, a := range r.Lost {
		if i == 10 {
			t.Logf("  ... %d more", len(r.Lost)-10)
			break
		}
		t.Logf("  lost: id %d acknowledged by %s (%s) at %s", a.ID, a.Node, a.Source, a.Recv.Format("15:04:05.000"))
	}
	t.Logf("%s: longest write outage of the /primary-routed writer %v (from %s); of the VIP writer %v; no node answering 200 on /primary: %v (from %s)",
		r.Name, r.Outage.Len().Round(time.Millisecond), r.Outage.From.Format("15:04:05.000"), r.VIPGap.Len().Round(time.Millisecond),
		r.RESTGap.Len().Round(time.Millisecond), r.RESTGap.From.Format("15:04:05.000"))
	for i, f := range r.Faults {
		t.Logf("%s: fault %q: writes back %s after it; whole again %s", r.Name, f.What, fmtBack(r.Back[i]), f.wholeText())
	}
	t.Logf("%s: leader key: %s", r.Name, strings.Join(r.Leaders, " "))
	t.Logf("%s: two writable nodes: %d certain, %d possible within the sampling uncertainty; two 200s on /primary: %d",
		r.Name, len(r.Dual), len(r.Maybe), len(r.RESTDup))
	for _, d := range r.Maybe {
		t.Logf("  possible: %s", d)
	}
	if r.VIP != nil {
		t.Logf("%s: VIP checker: %s", r.Name, r.VIP)
	}
	for _, d := range r.Dual {
		t.Errorf("SPLIT BRAIN: %s", d)
	}
	if r.noLossAllowed() && len(r.Lost) > 0 {
		why := "in a clean event"
		if r.Sync {
			why = "with synchronous_mode on"
		}
		t.Errorf("%d acknowledged rows lost %s (first: id %d from %s on %s)",
			len(r.Lost), why, r.Lost[0].ID, r.Lost[0].Source, r.Lost[0].Node)
	}
	for _, d := range r.RESTDup {
		t.Errorf("two nodes answered 200 on /primary at once (HAProxy would send writes to both): %s", d)
	}
	if r.VIP != nil && len(r.VIP.Dual) > 0 {
		t.Errorf("the VIP was live on two nodes in %d rounds", len(r.VIP.Dual))
	}
}

func fmtBack(d time.Duration) string {
	if d == 0 {
		return "no outage"
	}
	return fmt.Sprintf("+%.1fs", d.Seconds())
}

// healedOrAt is when the fault was removed, or injected if it was not removed.
func (f *chaosFault) healedOrAt() time.Time {
	if f.HealedAt.IsZero() {
		return f.At
	}
	return f.HealedAt
}

// wholeText says when the cluster was whole again, after the fault's removal.
func (f *chaosFault) wholeText() string {
	if f.HealedAt.IsZero() {
		return fmtSince(f.Healthy, f.At) + " after the fault"
	}
	return fmtSince(f.Healthy, f.HealedAt) + " after heal"
}

func fmtSince(t, from time.Time) string {
	if t.IsZero() {
		return "n/a"
	}
	return fmt.Sprintf("+%.1fs", t.Sub(from).Seconds())
}

// lostCell is the table's lost-rows cell.
func (r chaosResult) lostCell() string {
	if r.Err != "" && r.Acked == 0 {
		return "n/a"
	}
	s := fmt.Sprintf("%d/%d", len(r.Lost), r.Acked)
	if len(r.Lost) > 0 && r.Sync {
		s += " (sync: none allowed)"
	} else if len(r.Lost) > 0 {
		if r.WALRow > 0 && float64(len(r.Lost))*r.WALRow <= maxLagOnFailover {
			s += " (≤lag bound)"
		} else if r.WALRow > 0 {
			s += " (>lag bound)"
		}
	}
	return s
}

// recoveryCell summarises the faults' recoveries.
func (r chaosResult) recoveryCell() string {
	if len(r.Faults) == 1 {
		f := r.Faults[0]
		return fmt.Sprintf("writes %s; whole %s", fmtBack(r.Back[0]), f.wholeText())
	}
	var back, whole []float64
	for i, f := range r.Faults {
		if r.Back[i] > 0 {
			back = append(back, r.Back[i].Seconds())
		}
		if !f.Healthy.IsZero() {
			whole = append(whole, f.Healthy.Sub(f.healedOrAt()).Seconds())
		}
	}
	return fmt.Sprintf("%d faults; writes back %s (%d outages); whole after heal %s", len(r.Faults), medMax(back), len(back), medMax(whole))
}

func medMax(xs []float64) string {
	if len(xs) == 0 {
		return "n/a"
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return fmt.Sprintf("med +%.1fs max +%.1fs", s[len(s)/2], s[len(s)-1])
}

// chaosTable renders the results as a markdown table.
func chaosTableText(results []chaosResult, mode string, seed uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pgnoded failure suite (%s), seed %d, 3 etcd + 3 nodes in network namespaces; settings: ttl/loop_wait/retry_timeout, failsafe_mode\n",
		mode, seed)
	fmt.Fprintf(&b, "Lost: acknowledged rows missing on the final primary. Split-brain: periods with two writable nodes, certain (possible within the sampling uncertainty).\n")
	fmt.Fprintf(&b, "Outage: longest pause of the writer routed by /primary (no node answering 200 on /primary; writer through the VIP).\n")
	fmt.Fprintf(&b, "Recovery: first write after the fault's outage, measured from the fault; cluster whole again (one primary, every other node a healthy replica streaming from it), measured from the heal.\n\n")
	fmt.Fprintf(&b, "| scenario | settings | lost rows (lost/acked) | split-brain periods (possible) | longest outage | recovery | result |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		res := "ok"
		if r.Err != "" {
			res = "FAIL: " + r.Err
		}
		split := fmt.Sprintf("%d (%d)", len(r.Dual), len(r.Maybe))
		if r.Err != "" && r.Acked == 0 {
			split = "n/a"
		}
		rec := "n/a"
		if len(r.Faults) > 0 && len(r.Back) == len(r.Faults) {
			rec = r.recoveryCell()
		}
		out := fmt.Sprintf("%.1fs (/primary %.1fs", r.Outage.Len().Seconds(), r.RESTGap.Len().Seconds())
		if r.VIP != nil {
			out += fmt.Sprintf(", VIP %.1fs", r.VIPGap.Len().Seconds())
		}
		out += ")"
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Name, r.Settings, r.lostCell(), split, out, rec, res)
	}
	return b.String()
}

// printChaosTable logs the table and writes it to stderr.
func printChaosTable(t interface{ Logf(string, ...any) }, results []chaosResult, mode string, seed uint64) {
	s := chaosTableText(results, mode, seed)
	t.Logf("\n%s", s)
	fmt.Fprintf(os.Stderr, "\n%s\n", s)
}
