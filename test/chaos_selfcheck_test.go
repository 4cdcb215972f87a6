//go:build integration

package test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChaosAnalysis checks the checker's arithmetic on made-up observations.
func TestChaosAnalysis(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	obs := func(node string, sentMS, recvMS int, s obsState) observation {
		return observation{Node: node, Sent: at(sentMS), Recv: at(recvMS), State: s}
	}
	// a: writable 0..100, read-only at 120; b: writable from 110 to 310 (no
	// overlap with a); c: writable 200..300 while b still is (a certain
	// overlap: the sure spans are b 112..310 and c 200..300).
	list := []observation{
		obs("a", 0, 2, obsWritable), obs("a", 50, 52, obsWritable), obs("a", 100, 102, obsWritable),
		obs("a", 120, 122, obsReadOnly),
		obs("b", 110, 112, obsWritable), obs("b", 150, 152, obsWritable), obs("b", 290, 292, obsWritable),
		obs("b", 310, 312, obsWritable), obs("b", 400, 402, obsReadOnly),
		obs("c", 198, 200, obsWritable), obs("c", 300, 302, obsWritable), obs("c", 350, 352, obsUnknown),
	}
	runs := writableRuns(list)
	if len(runs["a"]) != 1 || len(runs["b"]) != 1 || len(runs["c"]) != 1 {
		t.Fatalf("runs = %+v", runs)
	}
	certain, possible := dualPeriods(runs)
	if len(certain) != 1 || certain[0].A != "b" || certain[0].B != "c" ||
		!certain[0].From.Equal(at(200)) || !certain[0].To.Equal(at(300)) {
		t.Errorf("certain = %v, want b and c from +200ms to +300ms", certain)
	}
	if len(possible) != 0 {
		t.Errorf("possible = %v, want none (a and b do not overlap)", possible)
	}
	// Two looks in flight at once (no sure span): only a possible overlap.
	_, possible = dualPeriods(writableRuns([]observation{
		obs("x", 0, 100, obsWritable), obs("x", 10, 90, obsWritable),
		obs("y", 50, 60, obsWritable),
	}))
	if len(possible) != 1 {
		t.Errorf("possible = %v, want one", possible)
	}

	acks := []ack{{Source: "writer", Recv: at(100)}, {Source: "writer", Recv: at(200)}, {Source: "writer", Recv: at(1500)},
		{Source: "vip", Recv: at(1000)}}
	gaps := ackGaps(acks, "writer", at(0), at(1600), 500*time.Millisecond)
	if len(gaps) != 1 || !gaps[0].From.Equal(at(200)) || !gaps[0].To.Equal(at(1500)) {
		t.Errorf("gaps = %+v, want one from +200ms to +1500ms", gaps)
	}
	if d := writesBackAfter(gaps, at(250), at(1600)); d != 1250*time.Millisecond {
		t.Errorf("writes back after %v, want 1.25s", d)
	}

	rest := []observation{
		obs("a", 0, 1, obsWritable), obs("b", 0, 1, obsReadOnly),
		obs("a", 100, 101, obsUnknown), obs("b", 100, 101, obsReadOnly),
		obs("a", 200, 201, obsUnknown), obs("b", 700, 701, obsWritable),
	}
	if g := noPrimaryGap(rest, at(0), at(1000)); !g.From.Equal(at(101)) || !g.To.Equal(at(701)) {
		t.Errorf("no-primary gap = %+v, want +101ms..+701ms", g)
	}

	leaders := []leaderSample{{At: at(0), Value: "a", OK: true}, {At: at(100), OK: false}, {At: at(200), Value: "b", OK: true}}
	if !leaderAround(leaders, at(150), "b") || !leaderAround(leaders, at(150), "a") || leaderAround(leaders, at(250), "a") {
		t.Errorf("leaderAround is wrong")
	}
}

// TestChaosCheckerSeesRoguePromotion proves the instrument end to end: a
// replica is promoted behind pgnoded's back (SQL pg_promote()), which is a
// real split brain. The checker must see two writable nodes, and pgnoded must
// demote the node that holds no leader key. With PGNODED_CHAOS=full the
// rogue must also rejoin as a streaming replica.
func TestChaosCheckerSeesRoguePromotion(t *testing.T) {
	requireChaosFull(t)
	e := newChaosEnv(t, "rogue-promotion", chaosSeed(), chaosOptions{})
	p := e.waitPrimary(30*time.Second, nil)
	r := e.pick(e.c.Others(p))
	ctx := context.Background()
	conn, err := r.Conn(ctx)
	if err != nil {
		t.Fatalf("connect to replica %s: %v", r.Name, err)
	}
	f := e.fault("pg_promote() on the replica %s, behind pgnoded's back", r.Name)
	_, err = conn.Exec(ctx, "select pg_promote(true, 30)")
	conn.Close(ctx)
	if err != nil {
		t.Fatalf("pg_promote on %s: %v", r.Name, err)
	}
	WaitFor(t, 30*time.Second, "the probe to write on the rogue "+r.Name, func() bool {
		_, _, acks, _ := e.w.rec.snapshot()
		for _, a := range acks {
			if a.Node == r.Name && a.Recv.After(f.At) {
				return true
			}
		}
		return false
	})
	e.heal(f)
	// pgnoded must demote the node that holds no leader key.
	WaitFor(t, 60*time.Second, "the rogue "+r.Name+" to be read-only again, "+p.Name+" the only primary", func() bool {
		return e.primary() == p && !r.Writable(ctx)
	})
	demotedAt := time.Now()
	sql, _, _, _ := e.w.rec.snapshot()
	certain, _ := dualPeriods(writableRuns(sql))
	var lastRogue time.Time
	for _, o := range writableAfter(sql, r.Name, f.At) {
		lastRogue = later(lastRogue, o.Recv)
	}
	t.Logf("rogue %s last seen writable %.2fs after pg_promote(), read-only again after %.2fs; the checker saw %d certain periods of two writable nodes",
		r.Name, lastRogue.Sub(f.At).Seconds(), demotedAt.Sub(f.At).Seconds(), len(certain))
	for _, d := range certain {
		t.Logf("  %s", d)
	}
	if len(certain) == 0 {
		t.Errorf("the checker missed a real split brain (rogue promotion of %s)", r.Name)
	}
	np := p
	// The full suite also requires the rogue to rejoin: a streaming replica of
	// the leader again (its timeline forked from the leader's: pg_rewind).
	if os.Getenv("PGNODED_CHAOS") == "full" {
		deadline := time.Now().Add(90 * time.Second)
		for e.healthy() == nil && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if e.healthy() == nil {
			t.Errorf("the rogue %s never streams from the leader %s again (90 s after it was demoted); its postgres log says:\n%s",
				r.Name, p.Name, pgLogLines(filepath.Join(r.Dir, "data", "log", "postgres.log"), 8))
		} else {
			t.Logf("the rogue %s streams from %s again %.1fs after it was demoted", r.Name, p.Name, time.Since(demotedAt).Seconds())
		}
	}
	lost, acked, err := e.w.LostOn(ctx, np)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d acknowledged rows, %d lost (written on the rogue %s and discarded when it rejoined)", acked, len(lost), r.Name)
}

// pgLogLines returns the last n FATAL, PANIC or LOG lines of a postgres log (or why it cannot).
func pgLogLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "FATAL:") || strings.Contains(l, "PANIC:") || strings.Contains(l, "LOG:") {
			out = append(out, "  "+l)
		}
	}
	return strings.Join(out[max(0, len(out)-n):], "\n")
}
