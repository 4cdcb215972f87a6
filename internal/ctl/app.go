package ctl

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/config"
)

// Exit codes of Run.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command failed; the reason is on stderr
	ExitUsage   = 2 // bad options or arguments
)

// DefaultConfigPath is read when neither -c nor PGNODECTL_CONFIG/PGNODED_CONFIG names a file.
const DefaultConfigPath = "/etc/pgnoded/pgnoded.yml"

// Env is everything one pgnodectl invocation may touch besides etcd and the REST APIs.
type Env struct {
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	Environ  []string         // KEY=VALUE pairs, as os.Environ returns them
	Now      func() time.Time // nil: time.Now
	Terminal bool             // stdout is a terminal: --watch clears the screen

	// openStore replaces the etcd connection in tests.
	openStore func(t etcdTarget) (store, error)
	// poll replaces the 2 s wait between --wait polls in tests.
	poll time.Duration
}

// globalOpts are the options accepted before and after the command name.
type globalOpts struct {
	configPath string
	dcsURL     string
	format     string
	insecure   bool
}

func (g *globalOpts) register(f *flags) {
	f.stringVar(&g.configPath, "configuration FILE or directory (env PGNODECTL_CONFIG, PGNODED_CONFIG; default "+DefaultConfigPath+")",
		"-c", "--config", "--config-file")
	f.stringVar(&g.dcsURL, "etcd to use instead of the configured one, as a URL: etcd3://[user:pass@]host:port[,host:port]/namespace (env DCS_URL)",
		"-d", "--dcs-url", "--dcs")
	f.stringVar(&g.format, "output FORMAT of list, topology and history: pretty, tsv, json, yaml", "-f", "--format")
	f.boolVar(&g.insecure, "do not verify the TLS certificates of the REST APIs", "-k", "--insecure")
	f.global = len(f.help)
}

// app is one invocation: options, lazily opened connections and the prompt reader.
type app struct {
	env  Env
	g    globalOpts
	cmd  string
	cfg  *config.Config
	st   store
	rest *restClient
	in   *bufio.Reader
	poll time.Duration
	pick func(n int) int // random index for restart --any
}

// Run executes pgnodectl with args (without the program name) and returns the exit code.
func Run(ctx context.Context, args []string, env Env) int {
	a := &app{env: env, poll: 2 * time.Second, pick: rand.IntN}
	if env.poll > 0 {
		a.poll = env.poll
	}
	if a.env.Stdin == nil {
		a.env.Stdin = strings.NewReader("")
	}
	if a.env.Stdout == nil {
		a.env.Stdout = io.Discard
	}
	if a.env.Stderr == nil {
		a.env.Stderr = io.Discard
	}
	a.in = bufio.NewReader(a.env.Stdin)
	err := a.run(ctx, args)
	a.close()
	return a.exit(err)
}

func (a *app) run(ctx context.Context, args []string) error {
	top := newFlags("pgnodectl", "[-c FILE] [-d URL] [-k] COMMAND [OPTIONS] [ARGS...]")
	a.g.register(top)
	if err := top.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.usage(top)
			return nil
		}
		return usagef("%v", err)
	}
	rest := top.fs.Args()
	if len(rest) == 0 {
		a.usage(top)
		return usagef("no command given")
	}
	a.cmd = rest[0]
	if a.cmd == "help" {
		a.usage(top)
		return nil
	}
	c, ok := commands()[a.cmd]
	if !ok {
		return usagef("unknown command %q (run pgnodectl help)", a.cmd)
	}
	f := newFlags(a.cmd, a.cmd+" "+c.synopsis)
	a.g.register(f)
	runCmd := c.setup(f)
	pos, err := f.parse(rest[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(a.env.Stdout, c.help)
		f.usage(a.env.Stdout, false)
		fmt.Fprintln(a.env.Stdout, "\nglobal options (before or after the command): -c FILE, -d URL, -f FORMAT, -k; see pgnodectl help")
		return nil
	}
	if err != nil {
		return err
	}
	if err := a.checkFormat(); err != nil {
		return err
	}
	return runCmd(ctx, a, pos)
}

// command is one subcommand: setup registers its options and returns the code that runs it.
type command struct {
	synopsis string
	help     string
	setup    func(f *flags) func(ctx context.Context, a *app, pos []string) error
}

func commands() map[string]command {
	return map[string]command{
		"list":        listCommand(false),
		"topology":    listCommand(true),
		"history":     historyCommand(),
		"show-config": showConfigCommand(),
		"edit-config": editConfigCommand(),
		"switchover":  switchoverCommand(actionSwitchover),
		"failover":    switchoverCommand(actionFailover),
		"restart":     restartCommand(),
		"reload":      reloadCommand(),
		"reinit":      reinitCommand(),
		"flush":       flushCommand(),
		"pause":       pauseCommand(true),
		"resume":      pauseCommand(false),
		"version":     versionCommand(),
	}
}

func (a *app) usage(top *flags) {
	w := a.env.Stdout
	top.usage(w, true)
	fmt.Fprintln(w, "\ncommands:")
	cmds := commands()
	keys := make([]string, 0, len(cmds))
	for k := range cmds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-12s %s\n", k, cmds[k].help)
	}
}

func (a *app) checkFormat() error {
	switch a.g.format {
	case "", "pretty", "tsv", "json", "yaml", "yml":
		return nil
	}
	return usagef("unknown --format %q: expected pretty, tsv, json or yaml", a.g.format)
}

// exit prints err as one line on stderr and maps it to an exit code.
func (a *app) exit(err error) int {
	if err == nil {
		return ExitOK
	}
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	prefix := "pgnodectl: "
	if a.cmd != "" {
		prefix += a.cmd + ": "
	}
	fmt.Fprintln(a.env.Stderr, prefix+msg)
	var ue *usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailure
}

func (a *app) now() time.Time {
	if a.env.Now != nil {
		return a.env.Now()
	}
	return time.Now()
}

func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.env.Stdout, format, args...)
}

func (a *app) println(s string) {
	fmt.Fprintln(a.env.Stdout, s)
}

// getenv looks a variable up in Env.Environ (the last occurrence wins).
func (a *app) getenv(name string) string {
	v := ""
	for _, kv := range a.env.Environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}

func (a *app) close() {
	if a.st != nil {
		_ = a.st.Close()
		a.st = nil
	}
	if a.rest != nil {
		a.rest.close()
	}
}
