package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PG is a throwaway PostgreSQL server started by StartPostgres or StartReplica.
type PG struct {
	BinDir    string // server binaries
	DataDir   string // PGDATA, owned by the postgres OS user
	SocketDir string // unix_socket_directories
	Port      int    // TCP port on 127.0.0.1 (also the socket's port number)
	User      string // superuser role name ("postgres")
	LogFile   string // server log (pg_ctl -l)
}

// PostmasterPID is the PID on the first line of the server's postmaster.pid.
func (p *PG) PostmasterPID() (int, error) {
	lines, ok := pidFileLines(filepath.Join(p.DataDir, "postmaster.pid"))
	if !ok {
		return 0, fmt.Errorf("no postmaster.pid in %s", p.DataDir)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid in %s: %w", p.DataDir, err)
	}
	return pid, nil
}

// DSN returns a keyword/value DSN over the unix socket for database db ("" = postgres).
func (p *PG) DSN(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", p.SocketDir, p.Port, p.User, db)
}

// StartPostgres initdbs and starts a PostgreSQL server as the postgres OS user on a
// free port (127.0.0.1 and a unix socket in a temp dir), trust auth, fsync off.
// Extra postgresql.conf lines ("name = value") may be given. The server is stopped
// with pg_ctl stop -m immediate and its directories removed at test end. Skips when
// not root or when the binaries are missing.
func StartPostgres(t testing.TB, conf ...string) *PG {
	t.Helper()
	RequireRoot(t)
	p, base := newPG(t, PGBinDir(t))
	runAsPG(t, base, filepath.Join(p.BinDir, "initdb"), "",
		"-D", p.DataDir, "-U", p.User, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	p.start(t, base, append([]string{
		"listen_addresses = '127.0.0.1'",
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"shared_buffers = 32MB",
		"max_connections = 100",
	}, conf...))
	return p
}

// StartReplica clones p with pg_basebackup and starts it as a streaming standby
// (application_name "testenv_replica"), stopped at test end like StartPostgres.
func (p *PG) StartReplica(t testing.TB, conf ...string) *PG {
	t.Helper()
	r, base := newPG(t, p.BinDir)
	runAsPG(t, base, filepath.Join(p.BinDir, "pg_basebackup"), "",
		"-D", r.DataDir, "-X", "stream", "-c", "fast", "-d", p.DSN(""))
	// standby.signal by hand rather than -R: -R writes primary_conninfo to
	// postgresql.auto.conf, which would override the application_name below.
	uid, gid := PGUserIDs(t)
	signal := filepath.Join(r.DataDir, "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		t.Fatalf("standby.signal: %v", err)
	}
	if err := os.Chown(signal, uid, gid); err != nil {
		t.Fatalf("standby.signal: %v", err)
	}
	r.start(t, base, append([]string{
		fmt.Sprintf("primary_conninfo = 'host=%s port=%d user=%s application_name=testenv_replica'",
			p.SocketDir, p.Port, p.User),
	}, conf...))
	return r
}

func newPG(t testing.TB, bin string) (*PG, string) {
	t.Helper()
	base := PGDir(t)
	p := &PG{
		BinDir:    bin,
		DataDir:   filepath.Join(base, "data"),
		SocketDir: filepath.Join(base, "sock"),
		Port:      FreePort(t),
		User:      PGUser,
		LogFile:   filepath.Join(base, "postgres.log"),
	}
	uid, gid := PGUserIDs(t)
	if err := os.Mkdir(p.SocketDir, 0o700); err != nil {
		t.Fatalf("socket dir: %v", err)
	}
	if err := os.Chown(p.SocketDir, uid, gid); err != nil {
		t.Fatalf("socket dir: %v", err)
	}
	return p, base
}

// start appends the port, socket and conf lines to postgresql.conf (later lines
// win) and starts the server; it registers the stop first, so a failed start
// is cleaned up too.
func (p *PG) start(t testing.TB, base string, conf []string) {
	t.Helper()
	lines := append([]string{
		fmt.Sprintf("port = %d", p.Port),
		fmt.Sprintf("unix_socket_directories = '%s'", p.SocketDir),
	}, conf...)
	f, err := os.OpenFile(filepath.Join(p.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open postgresql.conf: %v", err)
	}
	_, err = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("write postgresql.conf: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := pgCommand(ctx, t, base, filepath.Join(p.BinDir, "pg_ctl"),
			"stop", "-D", p.DataDir, "-m", "immediate", "-w").CombinedOutput()
		if err != nil && !strings.Contains(string(out), "No such process") &&
			!strings.Contains(string(out), "is not running") {
			t.Logf("pg_ctl stop: %v: %s", err, out)
		}
	})
	runAsPG(t, base, filepath.Join(p.BinDir, "pg_ctl"), p.LogFile,
		"start", "-D", p.DataDir, "-l", p.LogFile, "-w", "-t", "60")
}

// runAsPG runs a command as the postgres user and fails the test on error,
// showing its output and, if given, the server log.
func runAsPG(t testing.TB, dir, name, logFile string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := pgCommand(ctx, t, dir, name, args...).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		if logFile != "" {
			if b, rerr := os.ReadFile(logFile); rerr == nil {
				msg += "\nserver log:\n" + string(b)
			}
		}
		t.Fatal(msg)
	}
}

func pgCommand(ctx context.Context, t testing.TB, dir, name string, args ...string) *exec.Cmd {
	uid, gid := PGUserIDs(t)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C", "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	return cmd
}
