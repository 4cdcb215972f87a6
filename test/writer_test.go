//go:build integration

package test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Writer is the suite's one acknowledged-write workload: it inserts unique ids
// into a table through a target it picks again only when its connection
// breaks (as a pooled client does), and records every acknowledged insert
// with its send and arrival times, so that lost writes and write outages can
// be measured afterwards. StartWriter writes through the node answering
// /primary; the failure suite's ChaosWorkload runs its writers with their own
// target and insert (chaos_workload_test.go).
type Writer struct {
	opts   writerOptions
	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}
	stop   sync.Once

	mu     sync.Mutex
	acks   []ack
	errors int
}

// connectFunc opens a connection to one target.
type connectFunc func(ctx context.Context) (*pgx.Conn, error)

// writerOptions configure a Writer.
type writerOptions struct {
	// Table receives the ids (id bigint primary key).
	Table string
	// FirstID: the ids are FirstID+1, FirstID+2, ...
	FirstID int64
	// Target names whom to connect to next (nil: nobody yet).
	Target func() connectFunc
	// Insert commits id on conn (nil: a plain insert into Table with a 1 s timeout).
	Insert func(ctx context.Context, conn *pgx.Conn, id int64) error
	// Pause follows an acknowledged insert, Retry a failed connect,
	// AfterError a failed insert (after which the target is picked again).
	Pause, Retry, AfterError time.Duration
}

func newWriter(opts writerOptions) *Writer {
	return &Writer{opts: opts, start: time.Now(), done: make(chan struct{})}
}

// StartWriter creates the table on the current primary p and starts inserting
// through p, then through whichever node answers /primary.
func StartWriter(t testing.TB, c *Cluster, p *Node) *Writer {
	t.Helper()
	return startNodeWriter(t, p, "itest_writes", 5*time.Millisecond, 20*time.Millisecond, c.Primary)
}

// startNodeWriter creates table on p and runs a Writer that connects to p
// first and then to whichever node pick names, pausing `pause` after each ack.
func startNodeWriter(t testing.TB, p *Node, table string, pause, retry time.Duration, pick func() *Node) *Writer {
	t.Helper()
	ctx := context.Background()
	if err := createWritesTable(ctx, p.Name, p.Conn, table); err != nil {
		t.Fatal(err)
	}
	first := p
	w := newWriter(writerOptions{Table: table, Pause: pause, Retry: retry, Target: func() connectFunc {
		n := first
		if first = nil; n == nil {
			n = pick()
		}
		if n == nil {
			return nil
		}
		return n.Conn
	}})
	wctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	go w.run(wctx)
	t.Cleanup(w.Stop)
	return w
}

// run inserts until ctx ends.
func (w *Writer) run(ctx context.Context) {
	defer close(w.done)
	var conn *pgx.Conn
	defer func() { closeConn(conn) }()
	insert := w.opts.Insert
	if insert == nil {
		insert = func(ctx context.Context, conn *pgx.Conn, id int64) error {
			qctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := conn.Exec(qctx, "insert into "+w.opts.Table+"(id) values ($1)", id)
			return err
		}
	}
	id := w.opts.FirstID
	for ctx.Err() == nil {
		if conn == nil {
			if connect := w.opts.Target(); connect != nil {
				conn, _ = connect(ctx)
			}
			if conn == nil {
				w.fail()
				sleepCtx(ctx, w.opts.Retry)
				continue
			}
		}
		id++
		sent := time.Now()
		if err := insert(ctx, conn, id); err != nil {
			closeConn(conn)
			conn = nil
			w.fail()
			sleepCtx(ctx, w.opts.AfterError)
			continue
		}
		w.mu.Lock()
		w.acks = append(w.acks, ack{ID: id, Sent: sent, Recv: time.Now()})
		w.mu.Unlock()
		sleepCtx(ctx, w.opts.Pause)
	}
}

func (w *Writer) fail() {
	w.mu.Lock()
	w.errors++
	w.mu.Unlock()
}

// Stop ends the workload (idempotent).
func (w *Writer) Stop() {
	w.stop.Do(func() {
		if w.cancel != nil {
			w.cancel()
		}
	})
	<-w.done
}

// Acked returns how many writes were acknowledged.
func (w *Writer) Acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

// Errors is how many failed attempts (connects and inserts) the writer counted.
func (w *Writer) Errors() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errors
}

// LastAck is the arrival of the latest acknowledgement (zero before the first).
func (w *Writer) LastAck() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.acks) == 0 {
		return time.Time{}
	}
	return w.acks[len(w.acks)-1].Recv
}

// LongestGap is the longest time between two acknowledged writes (the first counted from the start).
func (w *Writer) LongestGap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	prev := w.start
	for _, a := range w.acks {
		longest = max(longest, a.Recv.Sub(prev))
		prev = a.Recv
	}
	return longest
}

// Outage is the longest time between two consecutive acknowledged writes
// around [from, to]: the last ack before the outage to the first one after it.
func (w *Writer) Outage(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	for i := 1; i < len(w.acks); i++ {
		if w.acks[i].Recv.Before(from) || w.acks[i-1].Recv.After(to) {
			continue
		}
		longest = max(longest, w.acks[i].Recv.Sub(w.acks[i-1].Recv))
	}
	return longest
}

// WaitAckAfter waits until a write is acknowledged after at.
func (w *Writer) WaitAckAfter(t testing.TB, timeout time.Duration, at time.Time) {
	t.Helper()
	WaitFor(t, timeout, "writes to resume", func() bool { return w.LastAck().After(at) })
}

// WaitWritesResume waits until a write sent after `after` is acknowledged and returns its arrival.
func (w *Writer) WaitWritesResume(t testing.TB, timeout time.Duration, after time.Time) time.Time {
	t.Helper()
	var at time.Time
	WaitFor(t, timeout, "writes to resume", func() bool {
		var ok bool
		at, ok = w.ResumedAfter(after)
		return ok
	})
	return at
}

// ResumedAfter is the arrival of the latest acknowledgement when its write
// was sent after `after` (false otherwise). Sent after, not only answered
// after: an insert in flight at a kill is answered by the old primary just after it.
func (w *Writer) ResumedAfter(after time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.acks); n > 0 && w.acks[n-1].Sent.After(after) {
		return w.acks[n-1].Recv, true
	}
	return time.Time{}, false
}

// Lost stops the writer and returns the acknowledged ids missing on node p.
func (w *Writer) Lost(t testing.TB, p *Node) []int64 {
	t.Helper()
	w.Stop()
	present, err := presentIDs(context.Background(), p.Name, p.Conn, w.opts.Table)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var lost []int64
	for _, a := range w.acks {
		if !present[a.ID] {
			lost = append(lost, a.ID)
		}
	}
	return lost
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func closeConn(c *pgx.Conn) {
	if c != nil {
		c.Close(context.Background())
	}
}
