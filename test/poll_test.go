//go:build integration

package test

import (
	"testing"
	"time"
)

// The one poller of the suite: pollEvery checks cond, then again every `every`,
// until it holds (true) or timeout has passed (false); cond is checked once
// more at the deadline, so a condition that turns true in the last interval counts.

// pollEvery polls cond every `every` until it holds (true) or timeout passes (false).
func pollEvery(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
}

// pollFor polls cond every 100 ms until it holds (true) or timeout passes (false);
// unlike WaitFor it does not fail the test, for outcomes a benchmark reports.
func pollFor(timeout time.Duration, cond func() bool) bool {
	return pollEvery(timeout, 100*time.Millisecond, cond)
}

// WaitFor polls cond every 100 ms until it is true, and fails the test if timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !pollFor(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
