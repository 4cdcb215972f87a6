package ha

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// busyCounter counts events sent to the simulated nodes and not yet fully
// handled (channel signals, fired timers, running long actions). When it is
// zero every node is idle in its select and the world may move on.
type busyCounter struct{ n atomic.Int64 }

func (b *busyCounter) inc() { b.n.Add(1) }
func (b *busyCounter) dec() { b.n.Add(-1) }

// settle waits (polling, bounded in real time) until nothing is in flight.
func (b *busyCounter) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.n.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("simulation did not settle: %d events in flight", b.n.Load())
		}
		time.Sleep(200 * time.Microsecond) // polling with a deadline, not synchronization by sleep
	}
}

// signal sends a non-blocking wake-up, counting it only when it was queued.
func (b *busyCounter) signal(ch chan struct{}) {
	b.inc()
	select {
	case ch <- struct{}{}:
	default:
		b.dec()
	}
}

// drain empties a channel of a stopped node, uncounting what was queued.
func (b *busyCounter) drain(ch chan struct{}) {
	for {
		select {
		case <-ch:
			b.dec()
		default:
			return
		}
	}
}

// fakeClock is a clock that only moves in Advance; timers fire then.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]bool
	busy   *busyCounter
}

func newFakeClock(start time.Time, busy *busyCounter) *fakeClock {
	return &fakeClock{now: start, timers: map[*fakeTimer]bool{}, busy: busy}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// Advance moves time forward and fires every timer that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.timers {
		if !t.when.After(c.now) {
			c.fire(t)
		}
	}
}

func (c *fakeClock) fire(t *fakeTimer) {
	delete(c.timers, t)
	c.busy.inc()
	select {
	case t.ch <- c.now:
	default:
		c.busy.dec()
	}
}

type fakeTimer struct {
	c    *fakeClock
	ch   chan time.Time
	when time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.stopLocked()
}

func (t *fakeTimer) stopLocked() bool {
	active := t.c.timers[t]
	delete(t.c.timers, t)
	select {
	case <-t.ch:
		t.c.busy.dec()
	default:
	}
	return active
}

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.stopLocked()
	t.when = t.c.now.Add(d)
	if d <= 0 {
		t.c.fire(t)
		return
	}
	t.c.timers[t] = true
}
