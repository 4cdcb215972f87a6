//go:build integration

package test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// errorRecorder is a testing.TB that keeps the errors reported to it.
type errorRecorder struct {
	testing.TB
	errs []string
}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *errorRecorder) Logf(string, ...any) {}

func (r *errorRecorder) Helper() {}

// TestChaosCheckerSyncLoss: the failure suite's judgement of lost rows. With
// synchronous_mode on a single lost acknowledged row fails the scenario
// whatever the event; asynchronous unclean events keep their
// maximum_lag_on_failover allowance (reported, not failed); clean ones fail.
// No cluster: it judges made-up results.
func TestChaosCheckerSyncLoss(t *testing.T) {
	lost := []ack{{ID: 7, Node: "n1", Source: "writer", Recv: time.Now()}}
	for _, tc := range []struct {
		name      string
		r         chaosResult
		wantError bool
	}{
		{"sync, unclean event", chaosResult{Name: "sync-primary-isolated", Sync: true, Acked: 100, Lost: lost, WALRow: 300}, true},
		{"async, unclean event", chaosResult{Name: "primary-isolated", Acked: 100, Lost: lost, WALRow: 300}, false},
		{"async, clean event", chaosResult{Name: "pgnoded-crash", Clean: true, Acked: 100, Lost: lost}, true},
		{"sync, nothing lost", chaosResult{Name: "sync-node-crash", Clean: true, Sync: true, Acked: 100}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &errorRecorder{TB: t}
			(&chaosEnv{t: rec}).report(tc.r)
			if got := len(rec.errs) > 0; got != tc.wantError {
				t.Errorf("scenario failed: %v, want %v (errors: %q)", got, tc.wantError, rec.errs)
			}
			if tc.r.Sync && tc.wantError && !strings.Contains(strings.Join(rec.errs, "\n"), "with synchronous_mode on") {
				t.Errorf("the failure does not say synchronous_mode: %q", rec.errs)
			}
		})
	}
	r := chaosResult{Sync: true, Acked: 100, Lost: lost, WALRow: 300}
	if cell := r.lostCell(); !strings.Contains(cell, "sync: none allowed") {
		t.Errorf("lost cell %q: want it to say no loss is allowed in sync mode", cell)
	}
}

// TestChaosSyncScenarios: the sync-* scenarios, and only they, run with
// synchronous_mode; the full suite has the five the issue names, and the
// short selection (make test) sync-node-crash.
func TestChaosSyncScenarios(t *testing.T) {
	for _, sc := range chaosScenarios() {
		if strings.HasPrefix(sc.Name, "sync-") != sc.Sync {
			t.Errorf("scenario %s: Sync %v; the sync-* scenarios and only they run with synchronous_mode", sc.Name, sc.Sync)
		}
	}
	short := map[string]bool{}
	for _, sc := range chaosScenarios() {
		short[sc.Name] = sc.Short
	}
	for _, name := range []string{"sync-node-crash", "sync-primary-isolated", "sync-primary-cut-from-etcd", "sync-zombie-leader", "sync-random-faults"} {
		if _, ok := short[name]; !ok {
			t.Errorf("the full suite lacks %s", name)
		}
	}
	if !short["sync-node-crash"] {
		t.Errorf("sync-node-crash is not in the short selection make test runs")
	}
}
