package proc

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// BasebackupMethod is the built-in create_replica_methods entry (pg_basebackup).
const BasebackupMethod = "basebackup"

// ReplicaMethod is one postgresql.create_replica_methods entry with its
// postgresql.<name> section (Patroni's docs/replica_bootstrap.rst, "Building replicas").
type ReplicaMethod struct {
	Name string
	// Command is the section's command, already split as Patroni splits it
	// (shlex); empty runs the method's name.
	Command []string
	// Keys are the section's other keys, passed as --key=value (sorted by key).
	Keys     map[string]any
	KeepData bool // the data directory is not emptied before the method runs
	NoParams bool // no --scope, --datadir, --role, --connstring
	NoLeader bool // the method works without a member to clone from
}

// methodSpecialKeys are section keys that steer pgnoded and are never passed to the command.
var methodSpecialKeys = []string{"command", "keep_data", "no_params", "no_leader", "no_master"}

// methodArgs is the command line of a custom replica method: its command,
// its own keys as --key=value, then (unless NoParams) --scope, --role=replica,
// --datadir and --connstring (empty when there is no source), as Patroni's
// Bootstrap.create_replica builds them.
func methodArgs(m ReplicaMethod, scope, dataDir, connstring string) []string {
	argv := slices.Clone(m.Command)
	if len(argv) == 0 {
		argv = []string{m.Name}
	}
	keys := make([]string, 0, len(m.Keys))
	for k := range m.Keys {
		if !slices.Contains(methodSpecialKeys, k) && !slices.Contains([]string{"scope", "role", "datadir", "connstring"}, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		argv = append(argv, fmt.Sprintf("--%s=%s", k, pythonValue(m.Keys[k])))
	}
	if !m.NoParams {
		argv = append(argv, "--scope="+scope, "--role=replica", "--datadir="+dataDir, "--connstring="+connstring)
	}
	return argv
}

// pythonValue formats a YAML value as Patroni's "--{0}={1}".format does (True, False, 1.5).
func pythonValue(v any) string {
	switch t := v.(type) {
	case bool:
		if t {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	}
	return formatValue(v)
}

// cloneMethods resolves which methods a clone tries, in order: opts.Methods
// (found in the configured list, else among the postgresql.<name> sections) or
// the configured list (default basebackup); basebackup only when
// opts.BasebackupOnly; only no_leader methods when there is no source.
func cloneMethods(configured []ReplicaMethod, sections map[string]ReplicaMethod, opts cluster.CloneOptions, haveSource bool) ([]ReplicaMethod, error) {
	if opts.BasebackupOnly {
		return []ReplicaMethod{{Name: BasebackupMethod}}, nil
	}
	list := configured
	if len(opts.Methods) > 0 {
		list = nil
		for _, name := range opts.Methods {
			i := slices.IndexFunc(configured, func(m ReplicaMethod) bool { return m.Name == name })
			m, inSections := sections[name]
			switch {
			case i >= 0:
				list = append(list, configured[i])
			case inSections && name != BasebackupMethod:
				list = append(list, m)
			case name == BasebackupMethod:
				list = append(list, ReplicaMethod{Name: BasebackupMethod})
			default:
				return nil, fmt.Errorf("replica method %q has no postgresql.%s section", name, name)
			}
		}
	}
	if len(list) == 0 {
		list = []ReplicaMethod{{Name: BasebackupMethod}}
	}
	if haveSource {
		return list, nil
	}
	var out []ReplicaMethod
	for _, m := range list {
		if m.Name != BasebackupMethod && m.NoLeader {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no member to clone from and no replica method has no_leader")
	}
	return out, nil
}

// CanCloneWithoutLeader reports whether some configured method has no_leader
// (Patroni's can_create_replica_without_replication_connection).
func CanCloneWithoutLeader(methods []ReplicaMethod) bool {
	return slices.ContainsFunc(methods, func(m ReplicaMethod) bool { return m.Name != BasebackupMethod && m.NoLeader })
}

// Clone builds the empty data directory as a replica of source by the
// create_replica_methods (opts; zero value: as configured, default
// pg_basebackup), trying each in order until one succeeds. A source with no
// host means there is no member to clone from: only no_leader methods run,
// with an empty --connstring. Before each custom method the directory is
// emptied unless the method has keep_data; only what the attempts created is
// ever removed, and a directory that already held files is refused, not wiped.
func (p *Postgres) Clone(ctx context.Context, source cluster.ConnInfo, opts cluster.CloneOptions) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := p.requireStoppedAndEmpty(); err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	keep, err := p.preexisting()
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	haveSource := source.Host != ""
	methods, err := cloneMethods(p.cfg.ReplicaMethods, p.cfg.MethodSections, opts, haveSource)
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	var connstring string
	if haveSource {
		if err := p.writePgpass(&source); err != nil {
			return fmt.Errorf("clone: %w", err)
		}
		connstring = formatDSN(withoutKey(upstreamDSN(p.cfg, source, replicationCreds(p.cfg, source)), "passfile"))
	}
	p.setState(cluster.StateCreatingReplica)
	defer p.setState(cluster.StateStopped)
	var errs []error
	for _, m := range methods {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		start := time.Now()
		var err error
		if m.Name == BasebackupMethod {
			if !haveSource {
				continue
			}
			err = p.basebackup(ctx, source, keep)
		} else {
			err = p.runReplicaMethod(ctx, m, connstring, keep)
		}
		if err == nil {
			p.log.Info("replica has been created", "method", m.Name, "source", source.Host, "port", source.Port,
				"duration", time.Since(start))
			return nil
		}
		p.log.Error("replica method failed", "method", m.Name, "err", err, "duration", time.Since(start))
		errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
	}
	what := "clone"
	if haveSource {
		what = fmt.Sprintf("clone from %s:%d", source.Host, source.Port)
	}
	return errors.Join(fmt.Errorf("%s: %w", what, errors.Join(errs...)), p.clearDir(p.cfg.DataDir, keep))
}

// basebackup runs pg_basebackup from source (2 attempts, 5 s apart, as
// Patroni's Bootstrap.basebackup), emptying what a failed attempt left.
func (p *Postgres) basebackup(ctx context.Context, source cluster.ConnInfo, keep map[string]bool) error {
	opts, err := userOptions(BasebackupMethod, p.cfg.BasebackupOptions, basebackupForbidden)
	if err != nil {
		return err
	}
	kv := append(upstreamDSN(p.cfg, source, replicationCreds(p.cfg, source)), [2]string{"application_name", p.cfg.Name})
	args := append([]string{"--pgdata=" + p.cfg.DataDir, "-X", "stream", "--checkpoint=fast", "--dbname=" + formatDSN(kv)}, opts...)
	var lastErr error
	for attempt := 1; attempt <= cloneAttempts; attempt++ {
		if attempt > 1 {
			p.log.Warn("pg_basebackup failed, trying again", "err", lastErr, "delay", cloneRetryDelay)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(cloneRetryDelay):
			}
		}
		if err := p.clearDir(p.cfg.DataDir, keep); err != nil {
			return err
		}
		if err := p.prepareEmptyDataDir(); err != nil {
			return err
		}
		_, lastErr = p.runTool(ctx, "pg_basebackup", []string{"PGPASSFILE=" + p.cfg.PgPass}, args...)
		if lastErr == nil || ctx.Err() != nil {
			break
		}
	}
	return lastErr
}

// runReplicaMethod runs one custom method as the OS user with PGPASSFILE set.
func (p *Postgres) runReplicaMethod(ctx context.Context, m ReplicaMethod, connstring string, keep map[string]bool) error {
	if m.KeepData {
		p.log.Info("leaving the data directory as it is for the replica method (keep_data)", "method", m.Name)
	} else if err := p.clearDir(p.cfg.DataDir, keep); err != nil {
		return err
	}
	if err := p.prepareEmptyDataDir(); err != nil {
		return err
	}
	argv := methodArgs(m, p.cfg.Scope, p.cfg.DataDir, connstring)
	p.log.Info("creating replica", "method", m.Name, "command", strings.Join(argv, " "))
	out, err := p.runCommand(ctx, argv, "PGPASSFILE="+p.cfg.PgPass)
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(out, 2000))
	}
	if out = strings.TrimSpace(out); out != "" {
		p.log.Info("replica method output", "method", m.Name, "output", tail(out, 2000))
	}
	return nil
}

// runCommand runs an operator's command (argv[0] found on PATH) as the OS user
// from the root directory and returns its combined output; ctx cancellation
// sends SIGTERM to its process group, then SIGKILL after 10 s. A non-zero exit
// is an error naming the exit status.
func (p *Postgres) runCommand(ctx context.Context, argv []string, env ...string) (string, error) {
	return p.runCommandIn(ctx, "/", argv, env...)
}

// runCommandIn is runCommand with dir as the working directory.
func (p *Postgres) runCommandIn(ctx context.Context, dir string, argv []string, env ...string) (string, error) {
	if len(argv) == 0 || argv[0] == "" {
		return "", errors.New("empty command")
	}
	cmd, out := p.command(ctx, argv[0], argv[1:], env)
	cmd.Dir = dir
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), nil
	case ctx.Err() != nil:
		return out.String(), fmt.Errorf("%w (%w)", ctx.Err(), err)
	case errors.As(err, &exit):
		return out.String(), fmt.Errorf("exited with status %d", exit.ExitCode())
	}
	return out.String(), err
}

// withoutKey drops the pairs named key from a DSN's keyword/value list.
func withoutKey(kv [][2]string, key string) [][2]string {
	return slices.DeleteFunc(kv, func(p [2]string) bool { return p[0] == key })
}
