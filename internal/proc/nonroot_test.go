package proc

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// Environment of the re-executed test binary in TestRunsAsItselfWhenNotRoot.
const (
	nonRootDirEnv  = "PGNODED_PROC_TEST_NONROOT_DIR"
	nonRootPortEnv = "PGNODED_PROC_TEST_NONROOT_PORT"
)

// TestRunsAsItselfWhenNotRoot re-runs this test binary as the postgres user:
// started as postgres, pgnoded must run postgres and its tools as itself.
func TestRunsAsItselfWhenNotRoot(t *testing.T) {
	if dir := os.Getenv(nonRootDirEnv); dir != "" {
		nonRootScenario(t, dir)
		return
	}
	testenv.RequireRoot(t)
	bin := testenv.PGBinDir(t)
	uid, gid := testenv.PGUserIDs(t)
	base := testenv.PGDir(t)
	t.Cleanup(func() { killPostmaster(t, filepath.Join(base, "data")) })
	self := filepath.Join(base, "proc.test")
	copyExecutable(t, os.Args[0], self, uid, gid)
	cmd := exec.Command(self, "-test.run=^TestRunsAsItselfWhenNotRoot$", "-test.v", "-test.count=1")
	cmd.Dir = base
	cmd.Env = append(os.Environ(), nonRootDirEnv+"="+base, nonRootPortEnv+"="+strconv.Itoa(testenv.FreePort(t)),
		"PGNODED_PG_BIN_DIR="+bin, "HOME="+base)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("run as postgres: %v\n%s", err, out)
	}
	t.Logf("as postgres:\n%s", out)
}

func nonRootScenario(t *testing.T, base string) {
	if os.Geteuid() == 0 {
		t.Fatal("child still runs as root")
	}
	port, _ := strconv.Atoi(os.Getenv(nonRootPortEnv))
	cfg := Config{
		Name: "pg-nonroot", Scope: "proc-test", DataDir: filepath.Join(base, "data"),
		BinDir: os.Getenv("PGNODED_PG_BIN_DIR"), Port: port, SocketDir: base,
		OSUser: "ignored-when-not-root", Superuser: Credentials{Username: "postgres"},
		Parameters: map[string]any{"shared_buffers": "16MB", "fsync": "off"},
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.user.switchTo || p.user.name != testenv.PGUser || filepath.Base(p.Config().PgPass) != "pgpass" {
		t.Fatalf("os user %+v pgpass %s", p.user, p.Config().PgPass)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() { stopRun(); <-done }()
	if err := p.Initdb(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx, cluster.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if o := p.Observe(ctx); !o.IsRunningPrimary() {
		t.Errorf("not a running primary: %+v", o)
	}
	if err := p.Stop(ctx, cluster.StopFast); err != nil {
		t.Fatal(err)
	}
}

func copyExecutable(t *testing.T, src, dst string, uid, gid int) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dst, uid, gid); err != nil {
		t.Fatal(err)
	}
}
