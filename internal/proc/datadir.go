package proc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// cloneAttempts and cloneRetryDelay follow Patroni's basebackup method.
const (
	cloneAttempts   = 2
	cloneRetryDelay = 5 * time.Second
)

// ControlData runs pg_controldata on the data directory.
func (p *Postgres) ControlData(ctx context.Context) (cluster.ControlData, error) {
	cd, _, err := p.controlData(ctx)
	return cd, err
}

func (p *Postgres) controlData(ctx context.Context) (cluster.ControlData, map[string]string, error) {
	out, err := p.runTool(ctx, "pg_controldata", cEnv, "-D", p.cfg.DataDir)
	if err != nil {
		return cluster.ControlData{}, nil, err
	}
	return parseControlData(out)
}

// Initdb creates a new cluster with bootstrap.initdb options; the superuser is
// set with --username and a temporary --pwfile that is removed afterwards.
func (p *Postgres) Initdb(ctx context.Context) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := p.requireStoppedAndEmpty(); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	p.setState(cluster.StateInitializing)
	if err := p.initdb(ctx); err != nil {
		p.setState(cluster.StateInitdbFailed)
		return fmt.Errorf("initdb: %w", err)
	}
	p.setState(cluster.StateStopped)
	return nil
}

func (p *Postgres) initdb(ctx context.Context) error {
	opts, err := userOptions("initdb", p.cfg.InitdbOptions, initdbForbidden)
	if err != nil {
		return err
	}
	if err := p.prepareEmptyDataDir(); err != nil {
		return err
	}
	args := append([]string{"--pgdata=" + p.cfg.DataDir}, opts...)
	args = append(args, "--username="+p.cfg.Superuser.Username)
	if pw := p.cfg.Superuser.Password; pw != "" {
		dir, err := os.MkdirTemp("", "pgnoded-initdb-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := p.chown(dir); err != nil {
			return err
		}
		pwfile := filepath.Join(dir, "pwfile")
		if err := p.writeFile(pwfile, []byte(pw+"\n"), 0o600); err != nil {
			return err
		}
		args = append(args, "--pwfile="+pwfile)
	}
	start := time.Now()
	if _, err := p.runTool(ctx, "initdb", nil, args...); err != nil {
		return err
	}
	p.log.Info("initdb done", "data_dir", p.cfg.DataDir, "duration", time.Since(start))
	return nil
}

// RemoveDataDir deletes the contents of the data directory (and of a symlinked
// pg_wal or tablespaces); the directory itself stays, so a mount point or a
// symlink keeps its place and ownership. Refused for system paths and while postgres runs.
func (p *Postgres) RemoveDataDir(ctx context.Context) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if p.current() != nil {
		return fmt.Errorf("remove data dir: %w", ErrAlreadyRunning)
	}
	dir, err := p.guardDataDir()
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	p.log.Warn("removing data directory", "data_dir", dir)
	var errs []error
	var linked []string
	if t, err := resolveLink(filepath.Join(dir, "pg_wal")); err == nil {
		linked = append(linked, t)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "pg_tblspc")); err == nil {
		for _, e := range ents {
			if t, err := resolveLink(filepath.Join(dir, "pg_tblspc", e.Name())); err == nil {
				linked = append(linked, t)
			}
		}
	}
	for _, t := range linked {
		if err := checkRemovable(t, p.user.home); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, p.clearDir(t, nil))
	}
	errs = append(errs, p.clearDir(dir, nil))
	p.setState(cluster.StateStopped)
	return errors.Join(errs...)
}

// guardDataDir resolves the data directory and refuses dangerous paths.
func (p *Postgres) guardDataDir() (string, error) {
	dir := p.cfg.DataDir
	if err := checkRemovable(dir, p.user.home); err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		if err := checkRemovable(real, p.user.home); err != nil {
			return "", err
		}
		return real, nil
	}
	return dir, nil
}

// systemDirs are never removed or emptied, whatever the config says.
var systemDirs = []string{"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media",
	"/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/local", "/var",
	"/var/lib", "/var/lib/pgsql", "/var/lib/postgresql", "/var/run", "/var/tmp", "/data"}

func checkRemovable(dir, home string) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return fmt.Errorf("refusing to remove %q: not an absolute path", dir)
	}
	clean := filepath.Clean(dir)
	if containsString(systemDirs, clean) || (home != "" && clean == filepath.Clean(home)) {
		return fmt.Errorf("refusing to remove %q: system directory", dir)
	}
	return nil
}

func resolveLink(path string) (string, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if st.Mode()&fs.ModeSymlink == 0 {
		return "", errors.New("not a symlink")
	}
	return filepath.EvalSymlinks(path)
}

// clearDir removes every entry of dir except those named in keep.
func (p *Postgres) clearDir(dir string, keep map[string]bool) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if !keep[e.Name()] {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// preexisting lists the entries a fresh data directory may already hold
// (lost+found, dot files); anything else means it is not ours to fill.
func (p *Postgres) preexisting() (map[string]bool, error) {
	keep := map[string]bool{}
	ents, err := os.ReadDir(p.cfg.DataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return keep, nil
	}
	if err != nil {
		return nil, err
	}
	var other []string
	for _, e := range ents {
		if e.Name() == "lost+found" || strings.HasPrefix(e.Name(), ".") {
			keep[e.Name()] = true
		} else {
			other = append(other, e.Name())
		}
	}
	if len(other) > 0 {
		return nil, fmt.Errorf("data directory %s is not empty (%s...): remove it first", p.cfg.DataDir, other[0])
	}
	return keep, nil
}

// requireStoppedAndEmpty guards Initdb and Clone.
func (p *Postgres) requireStoppedAndEmpty() error {
	if p.current() != nil {
		return ErrAlreadyRunning
	}
	empty, err := p.DataDirEmpty()
	if err != nil {
		return err
	}
	if !empty {
		return fmt.Errorf("data directory %s already holds a cluster", p.cfg.DataDir)
	}
	return nil
}

// prepareEmptyDataDir creates the data directory (mode 0700, owned by the OS user)
// or fixes the mode and owner of an existing empty one.
func (p *Postgres) prepareEmptyDataDir() error {
	if err := p.ensureDir(p.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(p.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := p.chown(p.cfg.DataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	return nil
}
