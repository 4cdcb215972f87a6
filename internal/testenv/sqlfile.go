package testenv

import (
	"os"
	"strings"
	"testing"
)

// SQLFile reads a fixture of SQL statements, one per line (a trailing ";" is
// dropped; blank lines and "--" comments are skipped), so that tests sharing
// a fixture run it statement by statement (CREATE DATABASE cannot share a
// transaction with others).
func SQLFile(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("SQL fixture: %v", err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "--") {
			continue
		}
		out = append(out, strings.TrimSuffix(l, ";"))
	}
	return out
}
