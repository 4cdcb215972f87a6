//go:build integration

package test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// backrest is a pgBackRest posix repository in the test's temp dir with one
// stanza of its own, used by one primary (Debian's pgbackrest, run as postgres).
type backrest struct {
	t      testing.TB
	Dir    string // repository, logs, locks and the config file
	Conf   string // --config file
	Stanza string
}

// newBackrest makes an empty repository; its stanza name is unique to this run.
func newBackrest(t testing.TB) *backrest {
	t.Helper()
	if _, err := exec.LookPath("pgbackrest"); err != nil {
		t.Skip("skipping: pgbackrest is not installed (apt-get install -y pgbackrest)")
	}
	dir := testenv.PGDir(t)
	return &backrest{t: t, Dir: dir, Conf: filepath.Join(dir, "pgbackrest.conf"),
		Stanza: fmt.Sprintf("it%d-%d", os.Getpid(), time.Now().UnixNano()%1000000)}
}

// writeConf points the stanza at the primary n (its data directory, port and unix socket).
func (b *backrest) writeConf(n *Node) {
	b.t.Helper()
	conf := fmt.Sprintf(`[global]
repo1-path=%[1]s/repo
repo1-retention-full=2
log-path=%[1]s/log
lock-path=%[1]s/lock
log-level-console=info
log-level-file=detail
start-fast=y
compress-type=lz4

[%[2]s]
pg1-path=%[3]s/data
pg1-port=%[4]d
pg1-socket-path=%[3]s
pg1-user=postgres
`, b.Dir, b.Stanza, n.Dir, n.PGPort)
	uid, gid := testenv.PGUserIDs(b.t)
	for _, d := range []string{"repo", "log", "lock"} {
		p := filepath.Join(b.Dir, d)
		if err := os.MkdirAll(p, 0o750); err != nil {
			b.t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			b.t.Fatal(err)
		}
	}
	if err := os.WriteFile(b.Conf, []byte(conf), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// cmd is the pgbackrest command line for this repository and stanza.
func (b *backrest) cmd(args ...string) string {
	return "pgbackrest --config=" + b.Conf + " --stanza=" + b.Stanza + " " + strings.Join(args, " ")
}

// run runs pgbackrest as postgres and fails the test on error.
func (b *backrest) run(args ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pgbackrest", append([]string{"--config=" + b.Conf, "--stanza=" + b.Stanza}, args...)...)
	uid, gid := testenv.PGUserIDs(b.t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.t.Fatalf("pgbackrest %s: %v\n%s", strings.Join(args, " "), err, tail(out, 4000))
	}
	return string(out)
}

// hasWAL reports whether the repository's archive holds the WAL segment seg
// (pgBackRest stores it as <seg>-<sha1>[.gz] under archive/<stanza>/).
func (b *backrest) hasWAL(seg string) bool {
	found := false
	_ = filepath.WalkDir(filepath.Join(b.Dir, "repo", "archive"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), seg+"-") {
			found = true
		}
		return nil
	})
	return found
}

// archiving is the postgresql.parameters lines that push every WAL file to the repository.
func (b *backrest) archiving() string {
	return "    archive_mode: 'on'\n    archive_command: '" + b.cmd("archive-push", "%p") + "'"
}

// replicaMethod is a postgresql section (create_replica_methods then the
// pgbackrest method, as Pigsty renders it) restoring into node o's data directory.
func (b *backrest) replicaMethod(o *nodeconf.Options, stanza string, methods string) string {
	return fmt.Sprintf(`  create_replica_methods: [%s]
  pgbackrest:
    command: pgbackrest --config=%s --stanza=%s --pg1-path=%s/data --delta restore
    keep_data: true
    no_params: true
    no_leader: true`, methods, b.Conf, stanza, o.Dir)
}

// execSQL runs statements on n as the superuser.
func execSQL(t testing.TB, n *Node, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := n.Conn(ctx)
	if err != nil {
		t.Fatalf("connect to %s: %v", n.Name, err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s on %s: %v", s, n.Name, err)
		}
	}
}

// switchAndArchive switches WAL on the primary n and waits until the file it
// closed is archived; it returns that file's name.
func switchAndArchive(t testing.TB, n *Node) string {
	t.Helper()
	wal, err := n.QueryString("SELECT pg_walfile_name(pg_switch_wal())")
	if err != nil {
		t.Fatalf("pg_switch_wal on %s: %v", n.Name, err)
	}
	WaitFor(t, 60*time.Second, "WAL "+wal+" archived", func() bool {
		last, err := n.QueryString("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
		return err == nil && last >= wal
	})
	return wal
}
