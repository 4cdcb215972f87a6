//go:build integration

package test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// SplitBrainChecker samples pg_is_in_recovery() on every node many times a
// second and reports every moment at which two nodes were writable at once.
type SplitBrainChecker struct {
	c      *Cluster
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	intervals map[string][]interval // per node: runs of consecutive writable samples
	open      map[string]*interval
	samples   int
}

type interval struct{ from, to time.Time }

// StartSplitBrainChecker begins sampling; Stop returns the findings.
func StartSplitBrainChecker(t testing.TB, c *Cluster) *SplitBrainChecker {
	ctx, cancel := context.WithCancel(context.Background())
	s := &SplitBrainChecker{c: c, cancel: cancel, intervals: map[string][]interval{}, open: map[string]*interval{}}
	for _, n := range c.Nodes {
		s.wg.Add(1)
		go func(n *Node) {
			defer s.wg.Done()
			s.sample(ctx, n)
		}(n)
	}
	t.Cleanup(func() { s.cancel(); s.wg.Wait() })
	return s
}

func (s *SplitBrainChecker) sample(ctx context.Context, n *Node) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	everyTick(ctx, 20*time.Millisecond, func() {
		writable := false
		if conn == nil {
			conn, _ = n.Conn(ctx)
		}
		if conn != nil {
			qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			var rec bool
			err := conn.QueryRow(qctx, "select pg_is_in_recovery()").Scan(&rec)
			cancel()
			if err != nil {
				conn.Close(context.Background())
				conn = nil
			} else {
				writable = !rec
			}
		}
		s.record(n.Name, writable, time.Now())
	})
	s.record(n.Name, false, time.Now())
}

func (s *SplitBrainChecker) record(node string, writable bool, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	if writable {
		if iv := s.open[node]; iv != nil {
			iv.to = at
		} else {
			s.open[node] = &interval{from: at, to: at}
		}
		return
	}
	if iv := s.open[node]; iv != nil {
		s.intervals[node] = append(s.intervals[node], *iv)
		delete(s.open, node)
	}
}

// Overlap is a period during which two nodes were both sampled writable.
type Overlap struct {
	A, B     string
	From, To time.Time
}

func (o Overlap) String() string {
	return fmt.Sprintf("%s and %s both writable from %s for %v", o.A, o.B, o.From.Format("15:04:05.000"), o.To.Sub(o.From))
}

// Stop ends sampling and returns every overlap found.
func (s *SplitBrainChecker) Stop() []Overlap {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for node, iv := range s.open {
		s.intervals[node] = append(s.intervals[node], *iv)
	}
	s.open = map[string]*interval{}
	var names []string
	for n := range s.intervals {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Overlap
	for i := 0; i < len(names); i++ {
		for j := i + 1; j < len(names); j++ {
			for _, a := range s.intervals[names[i]] {
				for _, b := range s.intervals[names[j]] {
					from, to := later(a.from, b.from), earlier(a.to, b.to)
					if !to.Before(from) {
						out = append(out, Overlap{A: names[i], B: names[j], From: from, To: to})
					}
				}
			}
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Writer inserts rows with unique ids through whichever node answers /primary,
// recording every acknowledged commit and the longest gap between two of them.
type Writer struct {
	c      *Cluster
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	acked      []int64
	lastAck    time.Time
	lastSent   time.Time // when the last acknowledged insert was sent
	longestGap time.Duration
	gapStart   time.Time
	errors     int
}

// StartWriter creates the table on the current primary and starts inserting.
func StartWriter(t testing.TB, c *Cluster, p *Node) *Writer {
	t.Helper()
	ctx := context.Background()
	if err := createWritesTable(ctx, p.Name, p.Conn, "itest_writes"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &Writer{c: c, cancel: cancel, done: make(chan struct{}), lastAck: time.Now()}
	go w.run(wctx, p)
	t.Cleanup(w.Stop)
	return w
}

func (w *Writer) run(ctx context.Context, target *Node) {
	defer close(w.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	var id int64
	for ctx.Err() == nil {
		if conn == nil {
			if target == nil {
				target = w.c.Primary()
			}
			if target != nil {
				conn, _ = target.Conn(ctx)
			}
			if conn == nil {
				target = nil
				w.fail()
				sleepCtx(ctx, 20*time.Millisecond)
				continue
			}
		}
		id++
		sent := time.Now()
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := conn.Exec(qctx, "insert into itest_writes(id) values ($1)", id)
		cancel()
		if err != nil {
			conn.Close(context.Background())
			conn, target = nil, nil
			w.fail()
			continue
		}
		w.ack(id, sent)
		sleepCtx(ctx, 5*time.Millisecond)
	}
}

func (w *Writer) ack(id int64, sent time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.lastSent = sent
	if gap := now.Sub(w.lastAck); gap > w.longestGap {
		w.longestGap = gap
		w.gapStart = w.lastAck
	}
	w.lastAck = now
	w.acked = append(w.acked, id)
}

func (w *Writer) fail() {
	w.mu.Lock()
	w.errors++
	w.mu.Unlock()
}

// Stop ends the workload (idempotent).
func (w *Writer) Stop() {
	w.cancel()
	<-w.done
}

// LongestGap is the longest time between two acknowledged writes.
func (w *Writer) LongestGap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.longestGap
}

// Acked returns how many writes were acknowledged.
func (w *Writer) Acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// Lost returns the acknowledged ids missing on node p.
func (w *Writer) Lost(t testing.TB, p *Node) []int64 {
	t.Helper()
	w.Stop()
	present, err := presentIDs(context.Background(), p.Name, p.Conn, "itest_writes")
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return missingIDs(w.acked, present)
}

// WaitWritesResume waits until a write is acknowledged after `after`.
func (w *Writer) WaitWritesResume(t testing.TB, timeout time.Duration, after time.Time) time.Time {
	t.Helper()
	var at time.Time
	WaitFor(t, timeout, "writes to resume", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		// Sent after `after`, not only answered after it: an insert in
		// flight at a kill is answered by the old primary just after it.
		if w.lastSent.After(after) {
			at = w.lastAck
			return true
		}
		return false
	})
	return at
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
