package ha

import "time"

// clock is the loop's source of time and timers; tests replace it with a fake
// that only moves when told to.
type clock interface {
	Now() time.Time
	NewTimer(d time.Duration) timer
}

// timer is the part of *time.Timer the loop uses.
type timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration)
}

type realClock struct{ now func() time.Time }

func (c realClock) Now() time.Time { return c.now() }

func (realClock) NewTimer(d time.Duration) timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }

func (t realTimer) Stop() bool { return t.t.Stop() }

func (t realTimer) Reset(d time.Duration) { t.t.Reset(d) }

// sleep waits d on the loop's clock, or until done closes; it reports whether
// d elapsed. A fired timer counts as a handled event for the simulation.
func (l *loop) sleep(d time.Duration, done <-chan struct{}) bool {
	t := l.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		l.eventDone()
		return true
	case <-done:
		return false
	}
}
