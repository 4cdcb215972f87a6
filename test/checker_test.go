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
