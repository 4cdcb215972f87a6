// Command demo runs a live three-node pgnoded cluster on one machine (`make demo`):
// etcd and three pgnoded nodes with their postgres, in network namespaces with a
// VIP when run as root, on loopback ports otherwise. It shows the cluster refreshing
// every second and removes everything it made on Ctrl-C. `demo --check` is the
// scripted form (start, fail over, tear down, verify nothing is left), and the
// subcommands kill-primary, start and cleanup act on a running demo from another
// terminal. It is a development tool and is not shipped in the packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// options are the command-line settings of a run.
type options struct {
	check    bool
	loopback bool
	binDir   string
	workDir  string // for the helper subcommands: the running demo's work dir
	timeout  time.Duration
	rejoin   bool
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.BoolVar(&o.check, "check", false, "scripted run: start, wait for a healthy cluster, fail over, tear down, verify; exit non-zero on failure")
	fs.BoolVar(&o.loopback, "loopback", false, "use loopback ports even when network namespaces are available (no VIP)")
	fs.StringVar(&o.binDir, "bin", "", "directory holding pgnoded, pgnodectl and etcd (default: this program's directory, then ./bin)")
	fs.StringVar(&o.workDir, "workdir", "", "work dir of the running demo, for kill-primary/start (default: the one running)")
	fs.DurationVar(&o.timeout, "timeout", 150*time.Second, "with --check: bound of the scripted run, teardown excluded")
	fs.BoolVar(&o.rejoin, "rejoin", true, "with --check: restart the killed node and wait until it streams again")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: demo [--check] [--loopback] [--bin DIR]   run the live demo (Ctrl-C removes everything)
       demo kill-primary [--workdir DIR]          kill -9 the primary's pgnoded and postmaster (a failover)
       demo start NODE [--workdir DIR]            start a stopped node's pgnoded again (it rejoins)
       demo cleanup                               remove what killed demo runs left behind
`)
		fs.PrintDefaults()
	}
	cmd := ""
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var err error
	switch cmd {
	case "":
		if fs.NArg() != 0 {
			fs.Usage()
			return 2
		}
		err = runDemo(ctx, o, stdout)
	case "kill-primary":
		err = killPrimary(ctx, o, stdout)
	case "start":
		if fs.NArg() != 1 {
			fs.Usage()
			return 2
		}
		err = startNode(ctx, o, fs.Arg(0), stdout)
	case "cleanup":
		err = cleanStale(context.Background(), stdout, true)
	default:
		fmt.Fprintf(stderr, "demo: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	return 0
}
