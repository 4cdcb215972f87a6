package exporter

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind (pools, servers).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
