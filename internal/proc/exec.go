package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// toolOutputLimit bounds how much of a tool's output is kept for errors and logs.
const toolOutputLimit = 64 << 10

// sysProcAttr runs a child as the OS user (when pgnoded is root); setsid puts it
// in its own session so it survives pgnoded and its terminal.
func (p *Postgres) sysProcAttr(setsid bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setsid: setsid, Setpgid: !setsid}
	if p.user.switchTo {
		a.Credential = &syscall.Credential{Uid: p.user.uid, Gid: p.user.gid, Groups: p.user.groups}
	}
	return a
}

// RunAs is how to run an operator's script as the OS user: the credential to
// switch to (nil when pgnoded already runs as that user) and the environment
// (pgnoded's, without libpq/Patroni variables, with the user's HOME, USER, LOGNAME).
func (p *Postgres) RunAs() (*syscall.Credential, []string) {
	var cred *syscall.Credential
	if p.user.switchTo {
		cred = &syscall.Credential{Uid: p.user.uid, Gid: p.user.gid, Groups: p.user.groups}
	}
	return cred, p.env()
}

// env is the environment of every child: ours without libpq/pgnoded variables
// (a stray PGPASSWORD or PGHOST must not steer a tool), with the OS user's
// identity, plus extra (later entries win).
func (p *Postgres) env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "PATRONI_") {
			continue
		}
		env = append(env, kv)
	}
	if p.user.switchTo {
		env = append(env, "HOME="+p.user.home, "USER="+p.user.name, "LOGNAME="+p.user.name)
	}
	return append(env, extra...)
}

// cEnv makes tools print untranslated messages so their output can be parsed.
var cEnv = []string{"LC_ALL=C", "LANG=C", "LC_MESSAGES=C"}

// runTool runs a PostgreSQL binary from BinDir as the OS user and returns its
// combined output. ctx cancellation sends SIGTERM, then SIGKILL after 10 s.
func (p *Postgres) runTool(ctx context.Context, name string, env []string, args ...string) (string, error) {
	cmd, out := p.command(ctx, filepath.Join(p.cfg.BinDir, name), args, env)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	start := time.Now()
	err := cmd.Run()
	p.log.Debug("ran tool", "tool", name, "args", args, "duration", time.Since(start), "err", err)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return out.String(), fmt.Errorf("%s: %w: %s", name, err, tail(out.String(), 2000))
	}
	return out.String(), nil
}

// command is a child run as the OS user from the root directory in its own
// process group, with p.env(env...), its combined output kept in out (the
// last toolOutputLimit bytes), and SIGKILL 10 s after ctx cancellation's
// signal (the caller sets cmd.Cancel).
func (p *Postgres) command(ctx context.Context, path string, args, env []string) (cmd *exec.Cmd, out *limitedBuffer) {
	cmd = exec.CommandContext(ctx, path, args...)
	cmd.Dir = "/"
	cmd.Env = p.env(env...)
	cmd.SysProcAttr = p.sysProcAttr(false)
	cmd.WaitDelay = 10 * time.Second
	out = &limitedBuffer{max: toolOutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

// limitedBuffer keeps the last max bytes written to it.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return n, nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }

// tail returns the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// majorVersion runs `postgres --version` once and caches the major version times 10000 (150000).
func (p *Postgres) majorVersion(ctx context.Context) (int, error) {
	p.mu.Lock()
	v := p.major
	p.mu.Unlock()
	if v != 0 {
		return v, nil
	}
	out, err := p.runTool(ctx, "postgres", cEnv, "--version")
	if err != nil {
		return 0, err
	}
	v, err = parseVersion(out)
	if err != nil {
		return 0, err
	}
	if v < 130000 {
		return 0, fmt.Errorf("postgres %d is not supported (need 13 or newer)", v/10000)
	}
	p.mu.Lock()
	p.major = v
	p.mu.Unlock()
	return v, nil
}

// parseVersion reads "postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)" as 150000.
func parseVersion(out string) (int, error) {
	f := strings.Fields(out)
	for i, w := range f {
		if w == "(PostgreSQL)" && i+1 < len(f) {
			num := f[i+1]
			if j := strings.IndexFunc(num, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
				num = num[:j]
			}
			if n, err := strconv.Atoi(num); err == nil && n >= 10 {
				return n * 10000, nil
			}
		}
	}
	return 0, errors.New("cannot parse postgres --version: " + strings.TrimSpace(out))
}
