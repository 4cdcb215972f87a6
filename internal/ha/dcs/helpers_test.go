package dcs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// basePath is a per-test Patroni base path, unique across parallel runs.
func basePath(t *testing.T) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("/service/pg%d-%s", os.Getpid(), name)
}

// testStore is a running Store whose Run is stopped (without revoking) at test end.
type testStore struct {
	*Store
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// stop ends Run and closes the Store without revoking its lease (a crash, as etcd sees it).
func (ts *testStore) stop(t *testing.T) {
	t.Helper()
	ts.once.Do(func() {
		ts.cancel()
		if err := <-ts.done; err != nil {
			t.Errorf("Run returned %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.Close(ctx, false); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

func startStore(t *testing.T, e *testenv.Etcd, base, name string, ttl time.Duration) *testStore {
	t.Helper()
	return startStoreOn(t, []string{e.Endpoint()}, base, name, ttl)
}

// startStoreOn is startStore against the given etcd endpoints.
func startStoreOn(t *testing.T, endpoints []string, base, name string, ttl time.Duration) *testStore {
	t.Helper()
	cfg := Config{
		Endpoints:    endpoints,
		BasePath:     base,
		Name:         name,
		TTL:          ttl,
		RetryTimeout: time.Second,
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	ts := &testStore{Store: s, cancel: rcancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Run(rctx) }()
	t.Cleanup(func() { ts.stop(t) })
	waitFor(t, 10*time.Second, name+" view ready", func() bool { return !s.View().ReadAt.IsZero() })
	return ts
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ctxT is a bounded context for one test step.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// drain empties a wake-up channel.
func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// testWriter sends slog output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
