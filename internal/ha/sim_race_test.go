package ha

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Every public operation of Node, called over and over from goroutines of
// their own while the simulated nodes run their HA cycles. Under -race this
// shows that Node's methods reach nothing the loop owns (docs/architecture.md,
// "Goroutines and who owns what"); the cluster stays safe all along (the
// world's invariants are checked at every step), every call returns, and the
// cluster is healthy again once the calls stop.
func TestNodeOpsConcurrentWithCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("plays at least 15 s of simulated time with concurrent callers")
	}
	w := bootstrapped(t)
	names := slices.Clone(w.names)
	other := func(name string) string { // another member than name
		i := slices.Index(names, name)
		return names[(i+1)%len(names)]
	}
	leader := func(fallback string) string {
		if l := w.leaderName(); l != "" {
			return l
		}
		return fallback
	}
	sim := map[string]any{"ttl": 3, "loop_wait": 1, "retry_timeout": 1,
		"postgresql": map[string]any{"use_pg_rewind": true, "use_slots": true}}

	// Each operation takes the node it is called on and its own call count.
	type op func(ctx context.Context, n *Node, name string, i int) (cluster.OpResult, error)
	none := func() (cluster.OpResult, error) { return cluster.OpResult{}, nil }
	ops := map[string]op{
		"Snapshot": func(_ context.Context, n *Node, name string, _ int) (cluster.OpResult, error) {
			if s := n.Snapshot(); s == nil || s.Name != name {
				return cluster.OpResult{}, fmt.Errorf("snapshot of %s: %+v", name, s)
			}
			return none()
		},
		"Wake": func(_ context.Context, n *Node, _ string, _ int) (cluster.OpResult, error) {
			n.Wake()
			return none()
		},
		"SetTags": func(_ context.Context, n *Node, _ string, i int) (cluster.OpResult, error) {
			n.SetTags(map[string]any{"dc": fmt.Sprint("dc", i%2)})
			return none()
		},
		"Reload": func(_ context.Context, n *Node, _ string, i int) (cluster.OpResult, error) {
			if i%2 == 0 {
				n.Reload(nil)
			} else {
				n.Reload(map[string]any{"work_mem": "8MB"})
			}
			return none()
		},
		"Restart": func(ctx context.Context, n *Node, _ string, i int) (cluster.OpResult, error) {
			if i%3 == 0 { // now: waits for postgres to come back
				return n.Restart(ctx, RestartRequest{Timeout: time.Second})
			}
			return n.Restart(ctx, RestartRequest{Schedule: w.clock.Now().Add(time.Hour)})
		},
		"DeleteRestart": func(ctx context.Context, n *Node, _ string, _ int) (cluster.OpResult, error) {
			return n.DeleteRestart(ctx)
		},
		"Reinitialize": func(ctx context.Context, n *Node, _ string, i int) (cluster.OpResult, error) {
			return n.Reinitialize(ctx, ReinitializeRequest{Force: i%2 == 1})
		},
		"PatchConfig": func(ctx context.Context, n *Node, _ string, _ int) (cluster.OpResult, error) {
			_, err := n.PatchConfig(ctx, map[string]any{"maximum_lag_on_failover": 1048576})
			return cluster.OpResult{}, err
		},
		"PutConfig": func(ctx context.Context, n *Node, _ string, _ int) (cluster.OpResult, error) {
			_, err := n.PutConfig(ctx, sim)
			return cluster.OpResult{}, err
		},
		"Switchover": func(ctx context.Context, n *Node, name string, i int) (cluster.OpResult, error) {
			l := leader(name)
			if i%4 == 0 { // now, to another member
				return n.Switchover(ctx, SwitchoverRequest{Leader: l, Candidate: other(l)})
			}
			return n.Switchover(ctx, SwitchoverRequest{Leader: l, ScheduledAt: w.clock.Now().Add(time.Hour)})
		},
		"Failover": func(ctx context.Context, n *Node, name string, _ int) (cluster.OpResult, error) {
			return n.Failover(ctx, SwitchoverRequest{Candidate: other(leader(name))})
		},
		"DeleteSwitchover": func(ctx context.Context, n *Node, _ string, _ int) (cluster.OpResult, error) {
			return n.DeleteSwitchover(ctx)
		},
		"Failsafe": func(ctx context.Context, n *Node, name string, _ int) (cluster.OpResult, error) {
			return n.Failsafe(ctx, FailsafeRequest{Name: other(name)})
		},
	}

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]map[string]int{} // op → outcome kind → count
	texts := map[string]map[string]string{} // op → outcome kind → the last text
	var calls atomic.Int64
	for name := range ops {
		outcomes[name], texts[name] = map[string]int{}, map[string]string{}
	}
	for name, call := range ops {
		wg.Add(1)
		go func() { // owned by this test: ends when stop is called
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				target := names[i%len(names)]
				n := w.nodes[target].node
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				res, err := call(cctx, n, target, i)
				cancel()
				kind, text := opOutcome(res, err)
				if err != nil && !isOpError(err) {
					kind = "error"
					if ctx.Err() == nil && !strings.Contains(err.Error(), "context") {
						t.Errorf("%s on %s: %v", name, target, err)
					}
				}
				mu.Lock()
				outcomes[name][kind]++
				texts[name][kind] = text
				mu.Unlock()
				calls.Add(1)
				time.Sleep(2 * time.Millisecond) // leave the simulation room to settle between calls
			}
		}()
	}
	fewest := func() int { // calls of the least-called operation so far
		mu.Lock()
		defer mu.Unlock()
		least := -1
		for _, byKind := range outcomes {
			sum := 0
			for _, c := range byKind {
				sum += c
			}
			if least < 0 || sum < least {
				least = sum
			}
		}
		return least
	}
	// At least 15 s of simulated time (HA cycles on every node, switchovers,
	// restarts), and on until every operation has been called 20 times.
	steps := 0
	for ; steps < 300 || (fewest() < 20 && steps < 3000); steps++ {
		w.step(simStep)
	}
	stop()
	wg.Wait()
	w.busy.settle(t)
	w.noViolations(t)

	healthy := w.run(60*time.Second, func() bool {
		l := w.leaderName()
		return l != "" && slices.Equal(w.writable(), []string{l}) && len(w.streamingReplicasOf(l)) == 2
	})
	if !healthy {
		t.Errorf("cluster not healthy after the calls stopped: leader %q, writable %v", w.leaderName(), w.writable())
		for _, name := range names {
			s := w.nodes[name].node.Snapshot()
			t.Logf("%s: role %s, pg running %v recovery %v, paused %v, action %q, failover key %+v", name, s.Role,
				s.PG.Running, s.PG.InRecovery, s.Paused, s.Action, s.View.Failover)
		}
	}
	w.noViolations(t)

	keys := make([]string, 0, len(outcomes))
	for k := range outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(outcomes[k]) == 0 {
			t.Errorf("%s was never called", k)
		}
		t.Logf("%-16s %v %q", k, outcomes[k], texts[k])
	}
	t.Logf("%d calls during %v of simulated time", calls.Load(), time.Duration(steps)*simStep)
}

// isOpError reports whether err is a refusal with Patroni's text (a *cluster.OpError).
func isOpError(err error) bool {
	var oe *cluster.OpError
	return errors.As(err, &oe)
}
