package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/shlex"
)

// Commands are the configured scripts; an empty command is not run.
type Commands struct {
	Callbacks  map[cluster.Callback]string // postgresql.callbacks
	PrePromote string                      // postgresql.pre_promote
	BeforeStop string                      // postgresql.before_stop
}

// check refuses a command shlex cannot split.
func (c Commands) check() error {
	var errs []error
	check := func(key, cmd string) {
		if _, err := shlex.Split(cmd); err != nil {
			errs = append(errs, fmt.Errorf("postgresql.%s: %q: %w", key, cmd, err))
		}
	}
	for cb, cmd := range c.Callbacks {
		check("callbacks."+string(cb), cmd)
	}
	check(string(cluster.PrePromote), c.PrePromote)
	check(string(cluster.BeforeStop), c.BeforeStop)
	return errors.Join(errs...)
}

// Config says what to run and as whom.
type Config struct {
	Scope  string
	Compat cluster.Compat // spells the role argument: "master" (3.0.2) or "primary" (4.x)
	Commands
	// Credential runs the scripts as the postgres OS user (nil: as pgnoded's own user).
	Credential *syscall.Credential
	// Env is the scripts' environment (nil: pgnoded's own).
	Env []string
	// KillGrace is how long a cancelled pre_promote or before_stop gets after
	// SIGTERM before SIGKILL (default 2 s).
	KillGrace time.Duration
	Logger    *slog.Logger
}

// outputLimit bounds how much of a script's output is kept for the log line.
const outputLimit = 2048

// Runner runs the scripts of one node. Callback never blocks; Run blocks for
// the script. Close stops its workers.
type Runner struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	counts map[cluster.HookRun]uint64

	main   *executor // on_start, on_stop, on_restart, on_role_change: one at a time, a new one kills the old
	reload *executor // on_reload: its own, with the same rule
}

// New validates the commands (shlex syntax) and starts the callback workers.
func New(cfg Config) (*Runner, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 2 * time.Second
	}
	if err := cfg.Commands.check(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, log: cfg.Logger.With("component", "hook"), counts: map[cluster.HookRun]uint64{}}
	r.main = newExecutor(r, false)
	r.reload = newExecutor(r, true)
	return r, nil
}

// SetCommands replaces the scripts (a configuration reload, as Patroni
// applies changed callbacks at once); a command shlex cannot split changes nothing.
func (r *Runner) SetCommands(c Commands) error {
	if err := c.check(); err != nil {
		return err
	}
	r.mu.Lock()
	r.cfg.Commands = c
	r.mu.Unlock()
	return nil
}

// Configured reports whether a hook has a command.
func (r *Runner) Configured(h cluster.Hook) bool { return strings.TrimSpace(r.hookCmd(h)) != "" }

func (r *Runner) hookCmd(h cluster.Hook) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch h {
	case cluster.PrePromote:
		return r.cfg.PrePromote
	case cluster.BeforeStop:
		return r.cfg.BeforeStop
	}
	return ""
}

// Argv is the argument vector of callback cb for role, as Patroni builds it:
// shlex.split(cmd) + [cb, role, scope]; nil when cb has no command. A
// "promoted" role is spelled as the primary role, as Patroni does.
func (r *Runner) Argv(cb cluster.Callback, role cluster.Role) []string {
	r.mu.Lock()
	cmd := r.cfg.Callbacks[cb]
	r.mu.Unlock()
	words, err := shlex.Split(cmd)
	if err != nil || len(words) == 0 {
		return nil
	}
	if role == cluster.RolePromoted {
		role = cluster.RolePrimary
	}
	return append(words, string(cb), r.cfg.Compat.RoleName(role), r.cfg.Scope)
}

// Callback starts cb's command (when configured) without waiting for it.
// Patroni's rule: a callback still running when the next one arrives is
// killed, with its descendants, and the newest one runs; on_reload has an
// executor of its own, so it neither kills nor is killed by the others.
func (r *Runner) Callback(cb cluster.Callback, role cluster.Role) {
	argv := r.Argv(cb, role)
	if argv == nil {
		return
	}
	if cb == cluster.OnReload {
		r.reload.call(string(cb), argv)
		return
	}
	r.main.call(string(cb), argv)
}

// Run runs hook h synchronously (pre_promote, before_stop). ran is false when
// it has no command. exit is the exit status, -1 when the script could not
// run or was ended by a signal (ctx ending sends SIGTERM, then SIGKILL after KillGrace).
func (r *Runner) Run(ctx context.Context, h cluster.Hook) (ran bool, exit int, err error) {
	words, err := shlex.Split(r.hookCmd(h))
	if err != nil || len(words) == 0 {
		return false, 0, err
	}
	cmd := r.command(words)
	out := &limitedBuffer{max: outputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.finished(string(h), words, start, "error", out, err)
		return true, -1, fmt.Errorf("%s: %w", h, err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	pgid := cmd.Process.Pid
	var werr error
	select {
	case werr = <-waitErr:
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(r.cfg.KillGrace)
		select {
		case werr = <-waitErr:
		case <-t.C:
			killTree(cmd.Process.Pid)
			werr = <-waitErr
		}
		t.Stop()
	}
	label, code := exitLabel(werr)
	if ctx.Err() != nil && label == "killed" {
		werr = fmt.Errorf("%w (%w)", ctx.Err(), werr)
	}
	r.finished(string(h), words, start, label, out, werr)
	if code < 0 {
		return true, -1, fmt.Errorf("%s: %w", h, werr)
	}
	return true, code, nil
}

// Runs is a copy of the run counts by callback and exit.
func (r *Runner) Runs() map[cluster.HookRun]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}

// Close stops the callback workers and waits until the running callbacks end
// or ctx does; a callback still running then is left alone (Patroni does not
// kill them on exit either).
func (r *Runner) Close(ctx context.Context) {
	if r == nil {
		return
	}
	r.main.close(ctx)
	r.reload.close(ctx)
}

func (r *Runner) command(argv []string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = r.cfg.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: r.cfg.Credential}
	return cmd
}

// finished logs and counts one run.
func (r *Runner) finished(name string, argv []string, start time.Time, label string, out *limitedBuffer, err error) {
	r.mu.Lock()
	r.counts[cluster.HookRun{Callback: name, Exit: label}]++
	r.mu.Unlock()
	attrs := []any{"callback", name, "command", strings.Join(argv, " "), "exit", label,
		"duration", time.Since(start).Round(time.Millisecond)}
	if s := strings.TrimSpace(out.String()); s != "" {
		attrs = append(attrs, "output", s)
	}
	switch label {
	case "0":
		r.log.Info("callback finished", attrs...)
	case "error":
		r.log.Error("callback could not be run", append(attrs, "err", err)...)
	default:
		r.log.Warn("callback finished", attrs...)
	}
}

// exitLabel is the exit label of a finished command and its status (-1: none).
func exitLabel(err error) (string, int) {
	if err == nil {
		return "0", 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed", -1
		}
		return strconv.Itoa(ee.ExitCode()), ee.ExitCode()
	}
	return "error", -1
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
