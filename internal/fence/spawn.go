package fence

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// GuardSubcommand is the hidden pgnoded subcommand that runs the guard:
// `pgnoded fence-guard <flags>`, with the flags ParseGuardArgs reads.
const GuardSubcommand = "fence-guard"

// DefaultStartTimeout bounds how long a spawned guard may take to answer.
const DefaultStartTimeout = 5 * time.Second

// GuardArgs returns the arguments after the executable that run a guard for cfg.
func GuardArgs(cfg GuardConfig) []string {
	args := []string{GuardSubcommand, "--socket", cfg.Socket, "--data-dir", cfg.DataDir}
	if cfg.QuitWait > 0 {
		args = append(args, "--quit-wait", cfg.QuitWait.String())
	}
	if cfg.IdleExit > 0 {
		args = append(args, "--idle-exit", cfg.IdleExit.String())
	}
	if cfg.LogFile != "" {
		args = append(args, "--log-file", cfg.LogFile)
	}
	if cfg.Detach {
		args = append(args, "--detach")
	}
	if !cfg.Release.Empty() {
		args = append(args, "--release-address", cfg.Release.Address,
			"--release-interface", cfg.Release.Interface, "--release-local-ip", cfg.Release.LocalIP)
	}
	return args
}

// ParseGuardArgs parses the flags that follow GuardSubcommand (Logger stays nil).
func ParseGuardArgs(args []string) (GuardConfig, error) {
	var cfg GuardConfig
	fs := flag.NewFlagSet(GuardSubcommand, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Socket, "socket", "", "unix socket to listen on")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "postgres data directory")
	fs.DurationVar(&cfg.QuitWait, "quit-wait", DefaultQuitWait, "wait after SIGQUIT before SIGKILL")
	fs.DurationVar(&cfg.IdleExit, "idle-exit", 0, "exit when disarmed with no client this long (0: never)")
	fs.StringVar(&cfg.LogFile, "log-file", "", "detached guard's stdout/stderr")
	fs.BoolVar(&cfg.Detach, "detach", false, "start a detached guard and return once it answers")
	fs.StringVar(&cfg.Release.Address, "release-address", "", "VIP (CIDR) to release when fencing")
	fs.StringVar(&cfg.Release.Interface, "release-interface", "", "link holding the VIP")
	fs.StringVar(&cfg.Release.LocalIP, "release-local-ip", "", "local IP that identifies the link when no interface is named")
	if err := fs.Parse(args); err != nil {
		return GuardConfig{}, fmt.Errorf("%s: %w", GuardSubcommand, err)
	}
	if fs.NArg() > 0 {
		return GuardConfig{}, fmt.Errorf("%s: unexpected arguments %q", GuardSubcommand, fs.Args())
	}
	return cfg, nil
}

// SpawnConfig configures Spawn.
type SpawnConfig struct {
	// Socket is the guard's socket (DefaultSocketPath(DataDir) is a good choice); required.
	Socket string
	// DataDir is postgres's data directory; required.
	DataDir string
	// LogFile receives the guard's logs (appended); "" discards them.
	LogFile string
	// QuitWait and IdleExit are passed to the guard (see GuardConfig).
	QuitWait time.Duration
	IdleExit time.Duration
	// Executable is the binary that understands GuardSubcommand; default os.Executable().
	Executable string
	// Env is the guard's environment; nil inherits this process's.
	Env []string
	// Logger receives Spawn's own logs; nil discards them.
	Logger *slog.Logger
	// Release is the VIP the guard releases when it fences (see GuardConfig).
	Release Release
}

// Spawn makes sure a guard for cfg.DataDir answers on cfg.Socket, starting
// one if none does. The guard is started through an intermediate process
// (`<exe> fence-guard --detach ...`) that exits once the guard answers, so the
// guard is in its own session, outlives pgnoded (crash, restart, SIGSTOP) and
// is never a child pgnoded has to reap. It is an error if the guard on the
// socket serves another data directory.
func Spawn(ctx context.Context, cfg SpawnConfig) error {
	gc := GuardConfig{Socket: cfg.Socket, DataDir: cfg.DataDir, QuitWait: cfg.QuitWait,
		IdleExit: cfg.IdleExit, LogFile: cfg.LogFile, Detach: true, Logger: cfg.Logger, Release: cfg.Release}
	if err := gc.Validate(); err != nil {
		return err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if st, err := probe(ctx, gc.Socket); err == nil {
		if err := sameDataDir(st, gc.DataDir); err != nil {
			return err
		}
		logger.Debug("fence guard already running", "pid", st.PID, "socket", gc.Socket)
		return nil
	}
	exe := cfg.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("fence: find own executable: %w", err)
		}
	}
	cmd := exec.CommandContext(ctx, exe, GuardArgs(gc)...)
	cmd.Env = cfg.Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("fence: start guard: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	st, err := probe(ctx, gc.Socket)
	if err != nil {
		return fmt.Errorf("fence: guard started but does not answer: %w", err)
	}
	if err := sameDataDir(st, gc.DataDir); err != nil {
		return err
	}
	logger.Info("fence guard started", "pid", st.PID, "socket", gc.Socket, "log_file", gc.LogFile)
	return nil
}

func sameDataDir(st Status, dataDir string) error {
	if filepath.Clean(st.DataDir) != dataDir {
		return fmt.Errorf("fence: the guard on the socket (pid %d) serves data directory %q, not %q",
			st.PID, st.DataDir, dataDir)
	}
	return nil
}

// probe asks whoever listens on socket for its status.
func probe(ctx context.Context, socket string) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultCallTimeout)
	defer cancel()
	c, err := Dial(ctx, socket)
	if err != nil {
		return Status{}, err
	}
	defer c.Close()
	return c.Status()
}

// detach is RunGuard's Detach mode: start the real guard in its own session
// and return once it (or another guard) answers on the socket.
func detach(ctx context.Context, cfg GuardConfig) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("fence: find own executable: %w", err)
	}
	child := cfg
	child.Detach, child.LogFile = false, ""
	cmd := exec.Command(exe, GuardArgs(child)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/" // do not pin the caller's working directory
	if cfg.LogFile != "" {
		f, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("fence: open guard log: %w", err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f // *os.File: passed straight to the child, no copying goroutine
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("fence: start guard: %w", err)
	}
	pid := cmd.Process.Pid
	end := time.Now().Add(DefaultStartTimeout)
	var exited error
	for {
		if _, err := probe(ctx, cfg.Socket); err == nil {
			return nil // the caller checks whose guard answers
		}
		var ws unix.WaitStatus
		if wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && wpid == pid {
			// It may have lost the lock to a guard that is still starting: give that one a moment.
			exited = fmt.Errorf("fence: guard exited before answering (status %d, signal %v); see its log %q",
				ws.ExitStatus(), ws.Signal(), cfg.LogFile)
			if soon := time.Now().Add(500 * time.Millisecond); soon.Before(end) {
				end = soon
			}
		}
		if time.Now().After(end) {
			if exited != nil {
				return exited
			}
			return fmt.Errorf("fence: guard (pid %d) did not answer within %s", pid, DefaultStartTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fence: waiting for guard: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
