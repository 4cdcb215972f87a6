package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Names of the files proc owns or reads.
const (
	baseConfName   = "postgresql.base.conf"
	confName       = "postgresql.conf"
	hbaName        = "pg_hba.conf"
	identName      = "pg_ident.conf"
	standbySignal  = "standby.signal"
	recoverySignal = "recovery.signal"
	promoteSignal  = "promote"
	pidFileName    = "postmaster.pid"
	optsFileName   = "postmaster.opts"
)

// writeFile replaces path atomically (temp file, fsync, rename) with data,
// mode perm, owned by the OS user.
func (p *Postgres) writeFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil {
		err = p.chown(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeFileIfChanged writes only when the content differs; it reports whether it wrote.
func (p *Postgres) writeFileIfChanged(path string, data []byte, perm os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	return true, p.writeFile(path, data, perm)
}

// chown gives path to the OS user when pgnoded runs as root.
func (p *Postgres) chown(path string) error {
	if !p.user.switchTo {
		return nil
	}
	return os.Chown(path, int(p.user.uid), int(p.user.gid))
}

// ensureDir creates dir (and parents) if missing; the dir itself is owned by the OS user.
func (p *Postgres) ensureDir(dir string, perm os.FileMode) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	if err := os.Chmod(dir, perm); err != nil {
		return err
	}
	return p.chown(dir)
}

// writableBy reports whether u can create files in dir.
func writableBy(dir string, u osUser) bool {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	mode := st.Mode().Perm()
	switch {
	case sys.Uid == u.uid:
		return mode&0o300 == 0o300
	case sys.Gid == u.gid || containsUint(u.groups, sys.Gid):
		return mode&0o030 == 0o030
	}
	return mode&0o003 == 0o003
}

func containsUint(list []uint32, v uint32) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// prepareBaseConf makes sure ConfigDir has postgresql.base.conf: on first start
// the initdb/basebackup postgresql.conf is renamed to it (Patroni's rule); a
// separate ConfigDir takes a copy of the data dir's files.
func (p *Postgres) prepareBaseConf() error {
	c := p.cfg
	if err := p.ensureDir(c.ConfigDir, 0o700); err != nil {
		return fmt.Errorf("config dir: %w", err)
	}
	base := filepath.Join(c.ConfigDir, baseConfName)
	if !exists(base) {
		conf := filepath.Join(c.ConfigDir, confName)
		switch {
		case exists(conf):
			if err := os.Rename(conf, base); err != nil {
				return fmt.Errorf("rename %s: %w", conf, err)
			}
			p.log.Info("renamed postgresql.conf to postgresql.base.conf", "dir", c.ConfigDir)
		case exists(filepath.Join(c.DataDir, confName)):
			if err := p.copyFile(filepath.Join(c.DataDir, confName), base); err != nil {
				return err
			}
		default:
			if err := p.writeFile(base, nil, 0o600); err != nil {
				return err
			}
		}
	}
	if c.ConfigDir != c.DataDir {
		for _, name := range []string{hbaName, identName} {
			dst := filepath.Join(c.ConfigDir, name)
			if src := filepath.Join(c.DataDir, name); !exists(dst) && exists(src) {
				if err := p.copyFile(src, dst); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (p *Postgres) copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return p.writeFile(dst, b, 0o600)
}

// writeConfig writes postgresql.conf (and pg_hba.conf/pg_ident.conf when configured)
// for opts; it returns the command-line flags postgres must be started with.
// control carries pg_controldata values for a replica (nil for a primary).
func (p *Postgres) writeConfig(opts cluster.StartOptions, control map[string]string, major int) ([]string, error) {
	return p.writeConfigAdjusted(opts, control, major, nil)
}

// writeConfigAdjusted is writeConfig with adjust (when not nil) changing the file
// and the command line before they are written; its bool keeps postgresql.auto.conf as it is.
func (p *Postgres) writeConfigAdjusted(opts cluster.StartOptions, control map[string]string, major int,
	adjust func(f *confFile, cmdline []string) ([]string, bool)) ([]string, error) {
	c := p.cfg
	if err := p.prepareBaseConf(); err != nil {
		return nil, err
	}
	params, cmdline, warnings := effectiveParams(c, opts.Params, control)
	for _, w := range warnings {
		p.log.Warn(w)
	}
	f := confFile{
		Include:   baseConfName,
		Params:    params,
		HBAFile:   filepath.Join(c.ConfigDir, hbaName),
		IdentFile: filepath.Join(c.ConfigDir, identName),
	}
	if opts.AsReplica {
		f.Recovery = recoveryParams(c, opts.Recovery, major)
		if opts.Recovery.Upstream.Host != "" {
			if err := p.writePgpass(&opts.Recovery.Upstream); err != nil {
				return nil, err
			}
		}
	}
	keepAutoConf := false
	if adjust != nil {
		cmdline, keepAutoConf = adjust(&f, cmdline)
	}
	if _, err := p.writeFileIfChanged(filepath.Join(c.ConfigDir, confName), renderPostgresqlConf(f), 0o600); err != nil {
		return nil, err
	}
	if len(c.PgHBA) > 0 {
		if _, err := p.writeFileIfChanged(filepath.Join(c.ConfigDir, hbaName), renderLines(c.PgHBA), 0o600); err != nil {
			return nil, err
		}
	}
	if len(c.PgIdent) > 0 {
		if _, err := p.writeFileIfChanged(filepath.Join(c.ConfigDir, identName), renderLines(c.PgIdent), 0o600); err != nil {
			return nil, err
		}
	}
	if !keepAutoConf {
		if err := p.sanitizeAutoConf(); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	p.wantCmdline = cmdlineParams(cmdline)
	p.mu.Unlock()
	return cmdline, nil
}

// writeSignals creates standby.signal for a replica, removes it (and recovery.signal) for a primary.
func (p *Postgres) writeSignals(asReplica bool) error {
	standby := filepath.Join(p.cfg.DataDir, standbySignal)
	if asReplica {
		if exists(standby) {
			return nil
		}
		return p.writeFile(standby, nil, 0o600)
	}
	for _, name := range []string{standbySignal, recoverySignal} {
		if err := os.Remove(filepath.Join(p.cfg.DataDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writePgpass (over)writes the password file, mode 0600, owned by the OS user.
func (p *Postgres) writePgpass(up *cluster.ConnInfo) error {
	if err := p.ensureDir(filepath.Dir(p.cfg.PgPass), 0o700); err != nil {
		return fmt.Errorf("pgpass dir: %w", err)
	}
	_, err := p.writeFileIfChanged(p.cfg.PgPass, renderPgpass(pgpassEntries(p.cfg, up)), 0o600)
	return err
}

// recoveryGUCs are the settings pgnoded owns in postgresql.conf; copies in
// postgresql.auto.conf (ALTER SYSTEM, pg_basebackup -R) would override them.
var recoveryGUCs = []string{"archive_cleanup_command", "pause_at_recovery_target", "primary_conninfo",
	"primary_slot_name", "promote_trigger_file", "recovery_end_command", "recovery_min_apply_delay",
	"recovery_target", "recovery_target_action", "recovery_target_inclusive", "recovery_target_lsn",
	"recovery_target_name", "recovery_target_time", "recovery_target_timeline", "recovery_target_xid",
	"restore_command", "standby_mode", "trigger_file"}

// sanitizeAutoConf removes recovery settings from postgresql.auto.conf (Patroni does the same).
func (p *Postgres) sanitizeAutoConf() error {
	path := filepath.Join(p.cfg.DataDir, "postgresql.auto.conf")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	out, removed := withoutSettings(string(b), recoveryGUCs)
	if len(removed) == 0 {
		return nil
	}
	p.log.Info("removed recovery settings from postgresql.auto.conf", "settings", removed)
	return p.writeFile(path, []byte(out), 0o600)
}

// withoutSettings drops the lines of a config file that set one of names.
func withoutSettings(content string, names []string) (string, []string) {
	var kept []string
	var removed []string
	for _, line := range strings.SplitAfter(content, "\n") {
		t := strings.TrimSpace(line)
		name := t
		if i := strings.IndexAny(t, "= \t"); i >= 0 {
			name = t[:i]
		}
		name = strings.ToLower(name)
		if t != "" && !strings.HasPrefix(t, "#") && containsString(names, name) {
			removed = append(removed, name)
			continue
		}
		kept = append(kept, line)
	}
	return strings.Join(kept, ""), removed
}
