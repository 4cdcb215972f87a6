package fence

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// bootTimer fires at an absolute CLOCK_BOOTTIME instant. It is a timerfd read
// through Go's poller, so it wakes within the scheduler's latency of the
// deadline (no polling) and, unlike a Go timer, on time after a suspend.
// Only its owner goroutine calls set, stop and close; a fire may be stale (the
// deadline moved after the kernel fired), so the owner re-checks the clock.
type bootTimer struct {
	fd   int
	file *os.File
	c    chan struct{}
	wg   sync.WaitGroup
}

func newBootTimer() (*bootTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_BOOTTIME, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	// The fd is non-blocking, so os.NewFile registers it with the poller and
	// Close unblocks the pending Read. Never call file.Fd(): it would make it blocking.
	t := &bootTimer{fd: fd, file: os.NewFile(uintptr(fd), "fence-timerfd"), c: make(chan struct{}, 1)}
	t.wg.Add(1)
	go t.read()
	return t, nil
}

func (t *bootTimer) read() {
	defer t.wg.Done()
	var buf [8]byte // expiration count; its value does not matter
	for {
		if _, err := io.ReadFull(t.file, buf[:]); err != nil {
			return // closed by the owner (a timerfd read has no other failure)
		}
		select {
		case t.c <- struct{}{}:
		default: // a fire is already pending
		}
	}
}

// C fires after the deadline passes.
func (t *bootTimer) C() <-chan struct{} { return t.c }

// set arms the timer for the absolute CLOCK_BOOTTIME instant ns (past instants fire at once).
func (t *bootTimer) set(ns int64) error {
	if ns <= 0 {
		ns = 1 // a zero it_value would disarm the timer
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(ns)}
	if err := unix.TimerfdSettime(t.fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err != nil {
		return fmt.Errorf("timerfd_settime: %w", err)
	}
	return nil
}

// stop disarms the timer.
func (t *bootTimer) stop() error {
	var spec unix.ItimerSpec
	if err := unix.TimerfdSettime(t.fd, 0, &spec, nil); err != nil {
		return fmt.Errorf("timerfd_settime: %w", err)
	}
	return nil
}

// close releases the fd and waits for the reader goroutine.
func (t *bootTimer) close() error {
	err := t.file.Close()
	t.wg.Wait()
	return err
}
