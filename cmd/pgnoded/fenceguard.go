package main

import (
	"io"

	"github.com/pgnoded/pgnoded/internal/fence"
)

// fenceGuardCommand is the hidden subcommand that runs the out-of-process
// fencing guard when the smaller pgnoded-fence-guard binary is not installed.
const fenceGuardCommand = fence.GuardSubcommand

func runFenceGuard(args []string, stderr io.Writer) int {
	return fence.GuardMain(args, stderr, releaseVIP)
}
