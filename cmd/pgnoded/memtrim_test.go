package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// trimCanary is written before the release: writable mappings must keep it.
var trimCanary = []int{1, 2, 3}

// rollupKiB reads one field of /proc/self/smaps_rollup in KiB.
func rollupKiB(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		t.Skipf("no smaps_rollup: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	t.Fatalf("%s not in smaps_rollup", field)
	return 0
}

func TestReleaseBinaryPages(t *testing.T) {
	trimCanary[1] = 42
	fileBefore := rollupKiB(t, "Rss") - rollupKiB(t, "Anonymous")
	released, err := releaseBinaryPages()
	if err != nil {
		t.Fatal(err)
	}
	if released <= 0 {
		t.Fatalf("released %d bytes: the executable's read-only mappings were not found", released)
	}
	fileAfter := rollupKiB(t, "Rss") - rollupKiB(t, "Anonymous")
	// The code keeps running (its pages fault back in) and data written
	// before is intact.
	if got := strconv.Itoa(trimCanary[0] + trimCanary[1] + trimCanary[2]); got != "46" {
		t.Errorf("writable data changed by the release: %v", trimCanary)
	}
	if fileAfter >= fileBefore {
		t.Errorf("file-backed resident memory %d KiB before, %d KiB after the release", fileBefore, fileAfter)
	}
	t.Logf("released %d KiB of mappings; file-backed resident %d -> %d KiB", released/1024, fileBefore, fileAfter)
}

// lockedBuffer is a log destination safe for the trimming goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestTrimAfterStartupWaitsForPostgres(t *testing.T) {
	var running atomic.Bool
	snap := func() *cluster.Snapshot {
		s := &cluster.Snapshot{}
		if running.Load() {
			s.PG.State = cluster.StateRunning
		}
		return s
	}
	var out lockedBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	done := make(chan struct{})
	go func() {
		defer close(done)
		trimAfterStartup(context.Background(), snap, 0, log)
	}()
	time.Sleep(1500 * time.Millisecond) // a poll or more while postgres is not running
	if strings.Contains(out.String(), "released") {
		t.Fatalf("released before postgres ran: %s", out.String())
	}
	running.Store(true)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("trimAfterStartup did not return after postgres ran")
	}
	if !strings.Contains(out.String(), "start-up memory released") {
		t.Errorf("no release logged: %s", out.String())
	}

	// Stopped before postgres ever runs, it returns without releasing.
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		trimAfterStartup(ctx, func() *cluster.Snapshot { return nil }, 0, log)
	}()
	cancel()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("trimAfterStartup ignored its context")
	}
}
