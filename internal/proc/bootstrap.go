package proc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// BootstrapMethod is a custom bootstrap.method with its bootstrap.<name>
// section (Patroni's docs/replica_bootstrap.rst, "Bootstrap"): its command
// restores a data directory, which then recovers and becomes the primary.
type BootstrapMethod struct {
	Name string
	// Command is the section's command, already split as Patroni splits it (shlex).
	Command []string
	// Keys are the section's other keys, passed as --key=value (sorted by key).
	Keys     map[string]any
	NoParams bool // no --scope and --datadir
	// KeepExistingRecoveryConf keeps the recovery settings and signal files the
	// command wrote (pgBackRest writes them to postgresql.auto.conf).
	KeepExistingRecoveryConf bool
	// RecoveryConf, when not nil, is written as the recovery settings, with recovery.signal.
	RecoveryConf map[string]any
}

// bootstrapSpecialKeys steer pgnoded and are never passed to a bootstrap command
// (reserved_args of Patroni 4.x's Bootstrap._custom_bootstrap).
var bootstrapSpecialKeys = []string{"command", "no_params", "keep_existing_recovery_conf", "recovery_conf", "scope", "datadir"}

// bootstrapArgs is a custom bootstrap command line: the command, --scope and
// --datadir unless NoParams, then the section's own keys as --key=value.
func bootstrapArgs(m BootstrapMethod, scope, dataDir string) []string {
	argv := slices.Clone(m.Command)
	if !m.NoParams {
		argv = append(argv, "--scope="+scope, "--datadir="+dataDir)
	}
	for _, k := range slices.Sorted(maps.Keys(m.Keys)) {
		if !slices.Contains(bootstrapSpecialKeys, k) {
			argv = append(argv, fmt.Sprintf("--%s=%s", k, pythonValue(m.Keys[k])))
		}
	}
	return argv
}

// restoreSettings are how the restored data directory is started for its recovery.
type restoreSettings struct {
	recovery       map[string]string // recovery parameters written to postgresql.conf; nil: none
	recoverySignal bool              // write recovery.signal (and remove standby.signal)
	keepExisting   bool              // leave signal files and postgresql.auto.conf as the command wrote them
	hotStandbyOff  bool              // hot_standby=off until the end of recovery
}

// restorePlan decides the recovery start after a custom bootstrap as Patroni
// does (Bootstrap._custom_bootstrap, and ConfigHandler's hot_standby rule in
// Patroni's postgresql/config.py): recovery_conf written with recovery.signal;
// keep_existing_recovery_conf keeps what the command wrote (signal files,
// postgresql.auto.conf). hot_standby is off when recovery ends in a promotion (or the command's
// settings are trusted), so recovery cannot stop on settings lower than the source's.
func restorePlan(m BootstrapMethod) restoreSettings {
	var s restoreSettings
	if m.RecoveryConf != nil {
		s.recovery = map[string]string{}
		for k, v := range m.RecoveryConf {
			s.recovery[strings.ToLower(k)] = formatValue(v)
		}
		s.recoverySignal = true
		action, ok := s.recovery["recovery_target_action"]
		if !ok {
			action = "pause"
			if v, set := s.recovery["pause_at_recovery_target"]; set && isFalse(v) {
				action = "promote"
			}
		}
		s.hotStandbyOff = strings.EqualFold(action, "promote")
	}
	if m.KeepExistingRecoveryConf {
		s.keepExisting, s.hotStandbyOff = true, true
	}
	return s
}

func isFalse(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "off", "false", "no", "0", "f", "n":
		return true
	}
	return false
}

// CustomBootstrap runs bootstrap.method's command into the empty data
// directory, starts postgres to recover what it restored, waits until recovery
// has ended (pg_is_in_recovery() false; ctx bounds the wait) and stops it, so
// that the caller starts it as the primary like after initdb. A failing
// command is an error naming the command and its exit status.
func (p *Postgres) CustomBootstrap(ctx context.Context, opts cluster.StartOptions) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	m := p.cfg.BootstrapMethod
	if m == nil {
		return errors.New("custom bootstrap: no bootstrap method configured")
	}
	if err := p.requireStoppedAndEmpty(); err != nil {
		return fmt.Errorf("custom bootstrap: %w", err)
	}
	p.setState(cluster.StateCustomBootstrap)
	if err := p.prepareEmptyDataDir(); err != nil {
		p.setState(cluster.StateCustomBootstrapFailed)
		return fmt.Errorf("custom bootstrap: %w", err)
	}
	argv := bootstrapArgs(*m, p.cfg.Scope, p.cfg.DataDir)
	p.log.Info("running custom bootstrap script", "method", m.Name, "command", strings.Join(argv, " "))
	start := time.Now()
	out, err := p.runCommand(ctx, argv, "PGPASSFILE="+p.cfg.PgPass)
	if err != nil {
		p.setState(cluster.StateCustomBootstrapFailed)
		return fmt.Errorf("bootstrap method %s: %s: %w: %s", m.Name, strings.Join(argv, " "), err, tail(out, 2000))
	}
	p.log.Info("custom bootstrap script done", "method", m.Name, "duration", time.Since(start), "output", tail(out, 2000))
	if err := p.recoverRestored(ctx, restorePlan(*m), opts); err != nil {
		p.setState(cluster.StateCustomBootstrapFailed)
		return fmt.Errorf("bootstrap method %s: %w", m.Name, err)
	}
	p.setState(cluster.StateStopped)
	return nil
}

// recoverRestored starts the restored data directory with s, waits for the
// end of recovery, then stops postgres (fast).
func (p *Postgres) recoverRestored(ctx context.Context, s restoreSettings, opts cluster.StartOptions) error {
	major, err := p.majorVersion(ctx)
	if err != nil {
		return err
	}
	opts.AsReplica = false
	cmdline, err := p.writeConfigAdjusted(opts, nil, major, func(f *confFile, cmdline []string) ([]string, bool) {
		f.Recovery = s.recovery
		if s.hotStandbyOff {
			f.Params["hot_standby"] = "off"
			cmdline = slices.DeleteFunc(cmdline, func(a string) bool { return strings.HasPrefix(a, "--hot_standby=") })
			cmdline = append(cmdline, "--hot_standby=off")
		}
		return cmdline, s.keepExisting
	})
	if err != nil {
		return fmt.Errorf("recovery config: %w", err)
	}
	standby, recovery := filepath.Join(p.cfg.DataDir, standbySignal), filepath.Join(p.cfg.DataDir, recoverySignal)
	switch {
	case s.recoverySignal:
		if err := removeIfExists(standby); err != nil {
			return err
		}
		if err := p.writeFile(recovery, nil, 0o600); err != nil {
			return err
		}
	case !s.keepExisting:
		if err := p.writeSignals(false); err != nil {
			return err
		}
	}
	p.removeStalePidFile()
	p.closeConn()
	logOffset := fileSize(p.cfg.LogFile)
	pm, err := p.spawn(cmdline)
	if err != nil {
		return fmt.Errorf("start for recovery: %w", err)
	}
	p.log.Info("started the restored data directory to recover", "pid", pm.pid, "recovery", s.recovery,
		"keep_existing_recovery_conf", s.keepExisting, "hot_standby_off", s.hotStandbyOff)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastNote := start
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		inRec, qerr := p.inRecovery(qctx)
		cancel()
		if qerr == nil && !inRec {
			break
		}
		if time.Since(lastNote) >= 30*time.Second {
			lastNote = time.Now()
			p.log.Info("waiting for end of recovery after bootstrap", "elapsed", time.Since(start).Round(time.Second), "last", qerr)
		}
		select {
		case <-ctx.Done():
			_ = p.stop(context.WithoutCancel(ctx), cluster.StopImmediate)
			return fmt.Errorf("waiting for end of recovery: %w", ctx.Err())
		case <-pm.done:
			return fmt.Errorf("postgres exited during recovery of the restored data: %s", tail(readFrom(p.cfg.LogFile, logOffset), 2000))
		case <-tick.C:
		}
	}
	p.log.Info("recovery of the restored data directory ended", "duration", time.Since(start))
	if err := p.stop(ctx, cluster.StopFast); err != nil {
		return fmt.Errorf("stop after recovery: %w", err)
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// RunPostBootstrap runs bootstrap.post_bootstrap (or post_init) with the local
// superuser's connection string as its one argument, PGPASSFILE and
// PGOPTIONS set as Patroni's Bootstrap.call_post_bootstrap sets them. Nothing
// configured: nil. A failing script is an error naming its exit status.
func (p *Postgres) RunPostBootstrap(ctx context.Context) error {
	if len(p.cfg.PostBootstrap) == 0 {
		return nil
	}
	if err := p.writePgpass(nil); err != nil {
		return fmt.Errorf("post_bootstrap: %w", err)
	}
	dsn := formatDSN([][2]string{{"dbname", p.cfg.Database}, {"user", p.cfg.Superuser.Username},
		{"host", p.cfg.SocketDir}, {"port", strconv.Itoa(p.cfg.Port)}})
	argv := append(slices.Clone(p.cfg.PostBootstrap), dsn)
	p.log.Info("running post_bootstrap", "command", strings.Join(argv, " "))
	out, err := p.runCommand(ctx, argv, "PGPASSFILE="+p.cfg.PgPass, "PGOPTIONS=-c synchronous_commit=local -c statement_timeout=0")
	if err != nil {
		return fmt.Errorf("post_bootstrap %s: %w: %s", strings.Join(p.cfg.PostBootstrap, " "), err, tail(out, 2000))
	}
	return nil
}
