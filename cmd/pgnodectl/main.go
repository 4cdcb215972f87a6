// Command pgnodectl is the operator CLI of a pgnoded cluster. It mirrors
// patronictl's commands and options (list, switchover, failover, restart,
// reload, reinit, pause, resume, edit-config, show-config, history,
// topology, flush, version): it reads the cluster from etcd and sends
// actions to the members' REST APIs. It is a separate binary so that the
// daemon's own command line stays minimal.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgnoded/pgnoded/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return ctl.Run(ctx, args, ctl.Env{
		Stdin:    stdin,
		Stdout:   stdout,
		Stderr:   stderr,
		Environ:  os.Environ(),
		Terminal: isTerminal(stdout),
	})
}

// isTerminal reports whether w is a character device (watch mode clears it).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
