package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

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
	var reads atomic.Int32
	snap := func() *cluster.Snapshot {
		reads.Add(1)
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
	// A poll or more while postgres is not running: the first read and one after it.
	for deadline := time.Now().Add(30 * time.Second); reads.Load() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("trimAfterStartup did not poll the snapshot")
		}
	}
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
