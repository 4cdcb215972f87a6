package fence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

// GuardBinary is the small executable that runs only the guard; pgnoded
// spawns it from its own directory when it is there (it takes ~4 MiB where a
// second copy of the whole daemon took ~16), else itself with GuardSubcommand.
const GuardBinary = "pgnoded-fence-guard"

// Exit codes of GuardMain (those of pgnoded).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// GuardMain runs a guard from command-line arguments (those GuardArgs
// returns, GuardSubcommand first) until SIGTERM/SIGINT and returns the exit
// code; onFence, if not nil, becomes GuardConfig.OnFence.
func GuardMain(args []string, stderr io.Writer, onFence func(context.Context, Release) error) int {
	if len(args) > 0 && args[0] == GuardSubcommand {
		args = args[1:]
	}
	cfg, err := ParseGuardArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", GuardSubcommand, err)
		return exitUsage
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil)).With("component", "fence-guard")
	}
	cfg.OnFence = onFence
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := RunGuard(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		if errors.Is(err, ErrGuardRunning) {
			return exitOK
		}
		fmt.Fprintf(stderr, "%s: %v\n", GuardSubcommand, err)
		return exitFailure
	}
	_ = os.Stderr.Sync()
	return exitOK
}

// SiblingGuardBinary is GuardBinary next to the running executable, or ""
// when there is none (then pgnoded runs the guard itself).
func SiblingGuardBinary() string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(self), GuardBinary)
	if _, err := exec.LookPath(p); err != nil {
		return ""
	}
	return p
}
