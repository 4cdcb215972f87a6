package testenv

import (
	"net"
	"os"
	"os/user"
	"strconv"
	"sync"
	"testing"

	"github.com/pgnoded/pgnoded/internal/pgbin"
)

// PGUser is the OS user tests run postgres as when they run as root.
const PGUser = "postgres"

// RequireRoot skips the test unless it runs as root (postgres must be run as another user,
// network namespaces need CAP_NET_ADMIN).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (runs postgres as the postgres user, makes namespaces); run `sudo make test`")
	}
}

// PGBinDir finds the PostgreSQL server binaries: $PGNODED_PG_BIN_DIR, then
// pgbin.Find's search. The test is skipped if none is found.
func PGBinDir(t testing.TB) string {
	t.Helper()
	if d := pgbin.Find(os.Getenv(pgbin.EnvDir)); d != "" {
		return d
	}
	t.Skip("skipping: PostgreSQL server binaries not found (apt-get install -y postgresql-15)")
	return ""
}

// PGUserIDs returns the uid and gid of the postgres OS user.
func PGUserIDs(t testing.TB) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(PGUser)
	if err != nil {
		t.Skipf("skipping: no %q OS user: %v", PGUser, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// PGDir makes an empty temporary directory owned by the postgres user (mode 0700),
// removed at test end. Parents are made traversable so postgres can reach it.
func PGDir(t testing.TB) string {
	t.Helper()
	uid, gid := PGUserIDs(t)
	base, err := os.MkdirTemp("", "pgnoded-test-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() {
		// Runs after the cleanups registered later, which stop the postmasters.
		removeOrphanSegments(base)
		_ = os.RemoveAll(base)
	})
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatalf("chmod %s: %v", base, err)
	}
	if err := os.Chown(base, uid, gid); err != nil {
		t.Fatalf("chown %s: %v", base, err)
	}
	return base
}

// handedOut remembers every port FreePort returned in this process: the kernel
// may offer a just-closed port again, and two listeners of one test (a node's
// REST API and its exporter) must never get the same one.
var handedOut sync.Map

// FreePort returns a currently free TCP port on 127.0.0.1, never one it returned before.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, dup := handedOut.LoadOrStore(port, true); !dup {
			return port
		}
	}
	t.Fatalf("free port: no new port after 100 tries")
	return 0
}
