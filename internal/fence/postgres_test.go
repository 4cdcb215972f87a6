package fence

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

	"github.com/jackc/pgx/v5"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// The guard stops a real postmaster and every backend with it.
func TestGuardStopsRealPostgres(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.PGBinDir(t)
	uid, gid := testenv.PGUserIDs(t)
	base := testenv.PGDir(t)
	dataDir := filepath.Join(base, "data")
	asPG := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Setsid: true}

	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", dataDir, "-U", "postgres", "--auth=trust", "-N")
	initdb.SysProcAttr = asPG
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := testenv.FreePort(t)
	logPath := filepath.Join(base, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	pg := exec.Command(filepath.Join(bin, "postgres"), "-D", dataDir, "-p", strconv.Itoa(port),
		"-k", base, "-c", "listen_addresses=")
	pg.SysProcAttr = asPG
	pg.Stdout, pg.Stderr = logFile, logFile
	pm := startCmdNoPidFile(t, pg)
	waitFor(t, 30*time.Second, "postgres to be ready", func() bool {
		raw, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
		return err == nil && strings.Contains(string(raw), "ready")
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", base, port))
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, readFile(logPath))
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if n := len(processesIn(dataDir)); n < 2 {
		t.Fatalf("expected a postmaster and backends in %s, found %d processes", dataDir, n)
	}

	g := spawnGuardFor(t, dataDir, 0)
	c := g.dial(t)
	start := time.Now()
	if err := c.Arm(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pm.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("postmaster not stopped\n%s", readFile(logPath))
	}
	t.Logf("postmaster exited %v after an arm with a 100 ms deadline (%v)", time.Since(start), pm.err)
	waitFor(t, 5*time.Second, "every postgres process to exit", func() bool { return len(processesIn(dataDir)) == 0 })
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (2)"); err == nil {
		t.Fatal("a write succeeded after the fence")
	}
	if !strings.Contains(readFile(logPath), "immediate shutdown") {
		t.Errorf("postgres log shows no immediate shutdown:\n%s", readFile(logPath))
	}
}

// startCmdNoPidFile starts cmd (which writes its own postmaster.pid) and kills it at cleanup.
func startCmdNoPidFile(t *testing.T, cmd *exec.Cmd) *dummy {
	t.Helper()
	d := &dummy{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // owned by the cleanup below, which waits for it
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

// processesIn lists live processes whose working directory is dir.
func processesIn(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ok, err := runsIn(pid, dir); err == nil && ok && !gone(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
