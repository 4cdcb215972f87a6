package proc

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine (a watcher, a pgx helper) outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
