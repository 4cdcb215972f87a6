// Package pgbin finds the PostgreSQL server binaries. It is the one finder
// the daemon, the test harness and the demo share, and imports nothing
// internal.
package pgbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// EnvDir is the environment variable the test harness and the demo read
// (and pass to Find) to name the bin directory; the daemon does not read it:
// postgresql.bin_dir is its setting.
const EnvDir = "PGNODED_PG_BIN_DIR"

// debianGlob matches Debian's versioned bin directories.
const debianGlob = "/usr/lib/postgresql/*/bin"

// Find returns the first directory that holds an executable postgres: each of
// first that is not empty, then the one of postgres on PATH (links
// followed), then
// pg_config --bindir, then the newest /usr/lib/postgresql/<major>/bin; "" when
// there is none.
func Find(first ...string) string {
	for _, d := range first {
		if d != "" && Has(d) {
			return d
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		// A postgres linked into a PATH directory (/usr/local/bin) stands
		// there without its siblings (pg_basebackup, pg_rewind): follow the link.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if d, err := filepath.Abs(filepath.Dir(p)); err == nil && Has(d) {
			return d
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); Has(d) {
			return d
		}
	}
	dirs, _ := filepath.Glob(debianGlob)
	major := func(d string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return n }
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	for _, d := range dirs {
		if Has(d) {
			return d
		}
	}
	return ""
}

// Has reports whether dir holds postgres as an executable regular file.
func Has(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "postgres"))
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
