package proc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRotateLogCopiesAndTruncates: the writer keeps its O_APPEND descriptor
// (as the postmaster does) and goes on writing at the start of the emptied
// file; older copies shift up to keep and the oldest is dropped.
func TestRotateLogCopiesAndTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "postgres.log")
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := &Postgres{cfg: Config{LogFile: path, LogMaxBytes: 100, LogKeep: 2}}
	write := func(s string) {
		t.Helper()
		if _, err := w.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		b, _ := os.ReadFile(name)
		return string(b)
	}
	write(strings.Repeat("a", 50))
	if rotated, err := p.RotateLog(); rotated || err != nil {
		t.Fatalf("rotated a 50-byte log: %v %v", rotated, err)
	}
	for i, c := range []string{"b", "c", "d"} {
		write(strings.Repeat(c, 150))
		if rotated, err := p.RotateLog(); !rotated || err != nil {
			t.Fatalf("rotation %d: %v %v", i+1, rotated, err)
		}
		if got := read(path); got != "" {
			t.Fatalf("rotation %d left %d bytes in the log", i+1, len(got))
		}
	}
	write("e")
	if got := read(path); got != "e" {
		t.Errorf("writer after rotation: log holds %q, want it to start over", got)
	}
	if got := read(path + ".1"); got != strings.Repeat("d", 150) {
		t.Errorf(".1 = %.20q..., want the last rotated content", got)
	}
	if got := read(path + ".2"); got != strings.Repeat("c", 150) {
		t.Errorf(".2 = %.20q..., want the one before", got)
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf(".3 exists with keep 2: %v", err)
	}
	off := &Postgres{cfg: Config{LogFile: path, LogMaxBytes: 0}}
	write(strings.Repeat("f", 500))
	if rotated, _ := off.RotateLog(); rotated {
		t.Error("rotated with LogMaxBytes 0")
	}
}
