//go:build integration

package test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// haSampler runs fn every interval in one goroutine until Stop (or the test's cleanup).
type haSampler struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func startHASampler(t testing.TB, every time.Duration, fn func(ctx context.Context)) *haSampler {
	ctx, cancel := context.WithCancel(context.Background())
	l := &haSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			fn(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(l.Stop)
	return l
}

// Stop ends the loop and waits for its goroutine.
func (l *haSampler) Stop() {
	l.once.Do(func() { l.cancel(); <-l.done })
}

// stateChange is one server status change in HAProxy's view.
type stateChange struct {
	At              time.Time
	Service, Server string
	From, To        string
}

// StateWatcher records every change of HAProxy's server states, sampled every 100 ms.
type StateWatcher struct {
	loop    *haSampler
	mu      sync.Mutex
	last    map[string]map[string]string
	changes []stateChange
}

// WatchStates starts sampling h's stats socket.
func WatchStates(t testing.TB, h *HAProxy) *StateWatcher {
	w := &StateWatcher{}
	w.loop = startHASampler(t, 100*time.Millisecond, func(context.Context) {
		states, err := h.ServerStates()
		if err != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.last != nil {
			for svc, servers := range states {
				for srv, st := range servers {
					if prev := w.last[svc][srv]; prev != st {
						w.changes = append(w.changes, stateChange{At: now, Service: svc, Server: srv, From: prev, To: st})
					}
				}
			}
		}
		w.last = states
	})
	return w
}

// Stop ends sampling and returns the changes in time order.
func (w *StateWatcher) Stop() []stateChange {
	w.loop.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	sort.SliceStable(w.changes, func(i, j int) bool { return w.changes[i].At.Before(w.changes[j].At) })
	return w.changes
}

// LandingPoller connects through one HAProxy service every 100 ms and records where
// each successful connection landed.
type LandingPoller struct {
	loop     *haSampler
	mu       sync.Mutex
	landings []Landing
	failures int
}

// PollLandings starts connecting through service.
func PollLandings(t testing.TB, h *HAProxy, service string) *LandingPoller {
	p := &LandingPoller{}
	p.loop = startHASampler(t, 100*time.Millisecond, func(ctx context.Context) {
		l, err := h.Land(ctx, service)
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				p.failures++
			}
			return
		}
		p.landings = append(p.landings, l)
	})
	return p
}

// FirstOn returns the first landing on the postgres listening on port.
func (p *LandingPoller) FirstOn(port int) (Landing, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.landings {
		if l.Port == port {
			return l, true
		}
	}
	return Landing{}, false
}

// CountOn counts landings on port.
func (p *LandingPoller) CountOn(port int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.landings {
		if l.Port == port {
			n++
		}
	}
	return n
}

// Stop ends polling and returns every landing and the number of failed attempts.
func (p *LandingPoller) Stop() ([]Landing, int) {
	p.loop.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Landing(nil), p.landings...), p.failures
}

// WatchChecks samples OPTIONS <path> on every node every 200 ms, the way HAProxy's checks
// see them, and records each change of answer (0 = unreachable) as a stateChange.
func WatchChecks(t testing.TB, c *Cluster, paths ...string) *StateWatcher {
	w := &StateWatcher{}
	w.loop = startHASampler(t, 200*time.Millisecond, func(context.Context) {
		states := map[string]map[string]string{}
		stamp := map[string]time.Time{}
		for _, path := range paths {
			states[path] = map[string]string{}
			for _, n := range c.Nodes {
				states[path][n.Name] = fmt.Sprint(n.Check(path))
				stamp[path+" "+n.Name] = time.Now()
			}
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.last != nil {
			for path, nodes := range states {
				for name, code := range nodes {
					if prev := w.last[path][name]; prev != code {
						w.changes = append(w.changes, stateChange{At: stamp[path+" "+name], Service: path, Server: name, From: prev, To: code})
					}
				}
			}
		}
		w.last = states
	})
	return w
}
