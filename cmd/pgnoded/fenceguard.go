package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgnoded/pgnoded/internal/fence"
)

// fenceGuardCommand is the hidden subcommand the daemon re-executes itself with
// to run the out-of-process fencing guard.
const fenceGuardCommand = fence.GuardSubcommand

func runFenceGuard(args []string, stderr io.Writer) int {
	cfg, err := fence.ParseGuardArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "pgnoded fence-guard: %v\n", err)
		return exitConfig
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil)).With("component", "fence-guard")
	}
	cfg.OnFence = releaseVIP
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := fence.RunGuard(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		if errors.Is(err, fence.ErrGuardRunning) {
			return exitOK
		}
		fmt.Fprintf(stderr, "pgnoded fence-guard: %v\n", err)
		return exitFailure
	}
	_ = os.Stderr.Sync()
	return exitOK
}
