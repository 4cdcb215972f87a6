// Command pgnoded supervises one PostgreSQL node: it runs postgres, takes part
// in leader election through etcd, serves Patroni's REST API, binds the VIP on
// the primary and exports metrics. See README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/pgnoded/pgnoded/internal/buildinfo"
	"github.com/pgnoded/pgnoded/internal/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitConfig  = 2 // bad configuration or usage
)

func main() {
	tuneRuntime() // GC percent, GOMAXPROCS cap, no heap profiling: see runtime.go
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == fenceGuardCommand {
		return runFenceGuard(args[1:], stderr)
	}
	fs := flag.NewFlagSet("pgnoded", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file or directory (Patroni YAML); also PGNODED_CONFIG or a positional argument")
	validate := fs.String("validate-config", "", "check a configuration file and exit (0 good, 2 bad)")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pgnoded [--config] FILE | --validate-config FILE | --version\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	switch {
	case *version:
		fmt.Fprintf(stdout, "pgnoded %s\n", buildinfo.Version)
		return exitOK
	case *validate != "":
		return validateConfig(*validate, stdout, stderr)
	}
	path := *configPath
	if path == "" && fs.NArg() == 1 {
		path = fs.Arg(0) // Patroni's form: `patroni /etc/patroni/patroni.yml`
	}
	if path == "" {
		path = os.Getenv("PGNODED_CONFIG")
	}
	if path == "" || fs.NArg() > 1 {
		fs.Usage()
		return exitConfig
	}
	return runDaemon(path, stderr)
}

func validateConfig(path string, stdout, stderr io.Writer) int {
	warnings, err := config.Validate(path, os.Environ())
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s\n", err)
		return exitConfig
	}
	for _, w := range exporterWarnings(path) {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n", path)
	return exitOK
}
