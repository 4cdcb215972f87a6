package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// readyPollInterval is how often Start tries to connect and Promote checks pg_is_in_recovery().
const readyPollInterval = 20 * time.Millisecond

// Start writes the managed config files and starts the postmaster directly
// (postgres -D ... --config-file=... --<managed GUC>=...), in its own session,
// then waits until it accepts connections (opts.Timeout, else PGCtlTimeout).
// On timeout postgres keeps running (state "starting") and ErrStartTimeout is returned.
func (p *Postgres) Start(ctx context.Context, opts cluster.StartOptions) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return p.start(ctx, opts)
}

func (p *Postgres) start(ctx context.Context, opts cluster.StartOptions) error {
	if p.current() != nil {
		return ErrAlreadyRunning
	}
	if empty, err := p.DataDirEmpty(); err != nil {
		return err
	} else if empty {
		return ErrNotInitialized
	}
	major, err := p.majorVersion(ctx)
	if err != nil {
		return err
	}
	var control map[string]string
	if opts.AsReplica {
		if _, raw, err := p.controlData(ctx); err == nil {
			control = raw
		} else {
			p.log.Warn("pg_controldata before replica start failed", "err", err)
		}
	}
	cmdline, err := p.writeConfig(opts, control, major)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := p.writeSignals(opts.AsReplica); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	p.awaitOrphans(ctx)
	p.removeStalePidFile()
	p.closeConn()
	logOffset := fileSize(p.cfg.LogFile)
	p.mu.Lock()
	p.state = cluster.StateStarting
	p.stopping = false
	p.mu.Unlock()
	pm, err := p.spawn(cmdline)
	if err != nil {
		p.setState(cluster.StateStartFailed)
		return fmt.Errorf("start: %w", err)
	}
	p.log.Info("started postmaster", "pid", pm.pid, "replica", opts.AsReplica, "upstream", opts.Recovery.Upstream.Host)
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = p.cfg.PGCtlTimeout
	}
	if err := p.waitReady(ctx, pm, timeout); err != nil {
		if pm.exited() {
			return fmt.Errorf("start: postmaster exited: %s", tail(readFrom(p.cfg.LogFile, logOffset), 2000))
		}
		return fmt.Errorf("start: %w", err)
	}
	p.mu.Lock()
	if p.pm == pm {
		p.state = cluster.StateRunning
	}
	p.mu.Unlock()
	return nil
}

// spawn execs the postmaster with stdout/stderr appended to LogFile.
func (p *Postgres) spawn(cmdline []string) (*postmaster, error) {
	if err := p.ensureDir(filepath.Dir(p.cfg.LogFile), 0o700); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	logf, err := os.OpenFile(p.cfg.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	defer logf.Close()
	if err := p.chown(p.cfg.LogFile); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	args := append([]string{"-D", p.cfg.DataDir, "--config-file=" + filepath.Join(p.cfg.ConfigDir, confName)}, cmdline...)
	cmd := exec.Command(filepath.Join(p.cfg.BinDir, "postgres"), args...)
	cmd.Dir = p.cfg.DataDir
	cmd.Env = p.env()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = p.sysProcAttr(true)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pm, err := newPostmaster(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	pm.cmd = cmd
	pm.started = time.Now()
	pm.cmdline = cmdlineParams(cmdline)
	if err := p.register(pm); err != nil {
		pm.close()
		return nil, err
	}
	return pm, nil
}

// waitReady polls a connection attempt every readyPollInterval until postgres
// accepts it, the postmaster exits, the timeout passes or ctx ends.
func (p *Postgres) waitReady(ctx context.Context, pm *postmaster, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		if pm.exited() {
			return errors.New("postmaster exited")
		}
		attempt, cancel := context.WithDeadline(ctx, minTime(deadline, time.Now().Add(2*time.Second)))
		err := p.withConn(attempt, func(ctx context.Context, c *pgconn.PgConn) error { return c.Ping(ctx) })
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s: %v", ErrStartTimeout, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pm.done:
		case <-tick.C:
		}
	}
}

// orphanWait bounds how long a start waits for the backends of a crashed
// postmaster to exit.
const orphanWait = 5 * time.Second

// awaitOrphans gives the backends of a postmaster that died (kill -9, OOM)
// the moment they need to notice it and exit: while one still holds the old
// shared memory, a new postmaster refuses to start ("pre-existing shared
// memory block is still in use"), and a restart in place that fails that way
// would hand the leader key to a replica for nothing. It returns at once
// after a clean stop (no postmaster.pid), and after orphanWait whatever holds
// the directory (postgres then decides, as it would have). It sleeps on each
// such process's pidfd (postmaster.waitExit), not on a poll of /proc.
func (p *Postgres) awaitOrphans(ctx context.Context) {
	if _, err := os.Stat(filepath.Join(p.cfg.DataDir, pidFileName)); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, orphanWait)
	defer cancel()
	start := time.Now()
	for waited := false; ; waited = true {
		pids, err := dataDirProcs(p.cfg.DataDir)
		switch {
		case err == nil && len(pids) == 0:
			if waited {
				p.log.Info("the crashed postmaster's backends have exited", "waited", time.Since(start))
			}
			return
		case ctx.Err() != nil:
			if time.Since(start) >= orphanWait {
				p.log.Warn("processes still work in the data directory; starting postgres anyway", "waited", time.Since(start))
			}
			return
		case err != nil: // cannot tell: wait it out, as for a process that stays
			<-ctx.Done()
		}
		for _, pid := range pids {
			awaitExit(ctx, pid)
		}
	}
}

// awaitExit returns when process pid has exited or ctx is done.
func awaitExit(ctx context.Context, pid int) {
	pm, err := newPostmaster(pid)
	if err != nil {
		return // gone already
	}
	stop := make(chan struct{})
	// ctx done: the polling fallback sees stop, a pidfd wait its fd closed.
	unwatch := context.AfterFunc(ctx, func() { close(stop); pm.close() })
	_ = pm.waitExit(stop)
	if unwatch() { // ctx's func did not run: the pidfd is still open
		pm.close()
	}
}

// removeStalePidFile deletes a postmaster.pid whose PID now belongs to some
// other live process (PID reuse, common in containers), which would make
// postgres refuse to start. A file naming a dead PID is left to postgres: it
// also checks that no orphaned backend still holds the old shared memory, a
// check that must not be bypassed. Nothing is removed while any process still
// works in the data directory.
func (p *Postgres) removeStalePidFile() {
	path := filepath.Join(p.cfg.DataDir, pidFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pf, err := parsePidFile(string(b))
	if err != nil || !processAlive(pf.PID) || isPostmasterOf(pf.PID, p.cfg.DataDir) || dataDirInUse(p.cfg.DataDir) {
		return
	}
	if err := os.Remove(path); err == nil {
		p.log.Info("removed stale postmaster.pid naming another process", "pid", pf.PID)
	}
}

// stopSignals maps pg_ctl's shutdown modes to the postmaster's signals.
var stopSignals = map[cluster.StopMode]syscall.Signal{
	cluster.StopSmart:     syscall.SIGTERM,
	cluster.StopFast:      syscall.SIGINT,
	cluster.StopImmediate: syscall.SIGQUIT,
}

// Stop signals the postmaster (smart: SIGTERM, fast: SIGINT, immediate: SIGQUIT)
// and waits, on the pidfd, until it has exited or ctx ends.
func (p *Postgres) Stop(ctx context.Context, mode cluster.StopMode) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return p.stop(ctx, mode)
}

func (p *Postgres) stop(ctx context.Context, mode cluster.StopMode) error {
	sig, ok := stopSignals[mode]
	if !ok {
		return fmt.Errorf("stop: unknown mode %q", mode)
	}
	pm := p.current()
	if pm == nil {
		p.mu.Lock()
		if p.state != cluster.StateCrashed {
			p.state = cluster.StateStopped
		}
		p.mu.Unlock()
		return nil
	}
	p.closeConn() // a smart shutdown waits for every session, ours included
	p.mu.Lock()
	p.stopping = true
	p.state = cluster.StateStopping
	p.mu.Unlock()
	start := time.Now()
	if err := pm.signal(sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.setState(cluster.StateStopFailed)
		return fmt.Errorf("stop: signal %d: %w", pm.pid, err)
	}
	select {
	case <-pm.done:
		p.log.Info("postgres stopped", "mode", mode, "pid", pm.pid, "duration", time.Since(start))
		return nil
	case <-ctx.Done():
		p.setState(cluster.StateStopFailed)
		return fmt.Errorf("stop %s: %w", mode, ctx.Err())
	}
}

// Restart stops postgres with mode and starts it with opts.
func (p *Postgres) Restart(ctx context.Context, mode cluster.StopMode, opts cluster.StartOptions) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	p.setState(cluster.StateRestarting)
	if err := p.stop(ctx, mode); err != nil {
		p.setState(cluster.StateRestartFailed)
		return fmt.Errorf("restart: %w", err)
	}
	if err := p.start(ctx, opts); err != nil {
		p.mu.Lock()
		if p.state != cluster.StateStarting {
			p.state = cluster.StateRestartFailed
		}
		p.mu.Unlock()
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// Reload rewrites the config files for opts and sends SIGHUP to a running postmaster.
// Only reloadable changes take effect; the rest show up as pending restart.
func (p *Postgres) Reload(ctx context.Context, opts cluster.StartOptions) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	major, err := p.majorVersion(ctx)
	if err != nil {
		return err
	}
	var control map[string]string
	if opts.AsReplica {
		if _, raw, err := p.controlData(ctx); err == nil {
			control = raw
		}
	}
	if _, err := p.writeConfig(opts, control, major); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if pm := p.current(); pm != nil {
		if err := pm.signal(syscall.SIGHUP); err != nil {
			return fmt.Errorf("reload: SIGHUP: %w", err)
		}
		p.log.Info("reloaded postgres", "pid", pm.pid)
	}
	return nil
}

// Promote asks a replica to leave recovery (promote signal file + SIGUSR1, as
// pg_ctl promote does) and polls pg_is_in_recovery() until it is false or ctx ends.
func (p *Postgres) Promote(ctx context.Context) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	pm := p.current()
	if pm == nil {
		return fmt.Errorf("promote: %w", ErrNotRunning)
	}
	inRec, err := p.inRecovery(ctx)
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if !inRec {
		return nil
	}
	start := time.Now()
	if err := p.writeFile(filepath.Join(p.cfg.DataDir, promoteSignal), nil, 0o600); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if err := pm.signal(syscall.SIGUSR1); err != nil {
		return fmt.Errorf("promote: SIGUSR1: %w", err)
	}
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote: waiting to leave recovery: %w", ctx.Err())
		case <-pm.done:
			return fmt.Errorf("promote: postmaster exited")
		case <-tick.C:
		}
		if inRec, err := p.inRecovery(ctx); err == nil && !inRec {
			p.log.Info("promoted", "duration", time.Since(start))
			return nil
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readFrom returns what was appended to path after offset (at most 64 KiB).
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if size := fileSize(path); size-offset > toolOutputLimit {
		offset = size - toolOutputLimit
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, toolOutputLimit))
	return string(b)
}

// SetLocalParameters replaces the local postgresql.parameters (the config file
// was re-read: SIGHUP or POST /reload). They take effect at the next Start or
// Reload; the socket directory chosen at start-up does not change.
func (p *Postgres) SetLocalParameters(ctx context.Context, params map[string]any) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	p.cfg.Parameters = params
	return nil
}

// SetAccessFiles replaces postgresql.pg_hba and pg_ident (the config file was
// re-read). Like the parameters, they are written at the next Start or
// Reload; empty leaves the files in the data directory as they are.
func (p *Postgres) SetAccessFiles(ctx context.Context, hba, ident []string) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	p.cfg.PgHBA, p.cfg.PgIdent = hba, ident
	return nil
}
