package ha

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// acquireStore answers AcquireLeader with won (and nothing else is called).
type acquireStore struct {
	Store
	won bool
}

func (s acquireStore) AcquireLeader(context.Context) (bool, error) { return s.won, nil }

// A losing racer logs the failure to acquire the key, never the outcome text
// of a race it did not win ("promoted self to leader ...").
func TestLosingRacerLogsOnlyTheOutcome(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := newLoop(Config{Name: "pg1", Logger: log}, Deps{Store: acquireStore{won: false}})
	o := newObs(leader(""))
	p := plan.Plan{Decision: plan.Decision{Action: plan.ActionAcquire, Reason: "healthiest",
		Message: "promoted self to leader by acquiring session lock"}}
	if n.step(context.Background(), p, &o) {
		t.Fatal("a lost race asked to plan again")
	}
	out := buf.String()
	if strings.Contains(out, "promoted self to leader") {
		t.Errorf("a losing racer logged the winner's text:\n%s", out)
	}
	if !strings.Contains(out, "failed to acquire the leader key") || !strings.Contains(out, "planning to acquire-and-promote") {
		t.Errorf("want the intent and the failure:\n%s", out)
	}
	if n.st.action != "failed to acquire the leader key: another member holds it; following" {
		t.Errorf("published action %q", n.st.action)
	}

	// A decision that needs no outcome (a wait) is logged as before, after apply.
	buf.Reset()
	p = plan.Plan{Decision: plan.Decision{Action: plan.ActionWait, Reason: "lock_lost", Message: "lost the leader lock; waiting for the new leader"}}
	n.step(context.Background(), p, &o)
	if !strings.Contains(buf.String(), "level=INFO msg=\"lost the leader lock; waiting for the new leader\"") {
		t.Errorf("the wait's message was not logged:\n%s", buf.String())
	}
}
