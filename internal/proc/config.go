package proc

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/pgbin"
)

// Defaults for Config fields left empty.
const (
	DefaultPort            = 5432
	DefaultListenAddresses = "127.0.0.1"
	DefaultDatabase        = "postgres"
	DefaultSuperuser       = "postgres"
	DefaultOSUser          = "postgres" // used when pgnoded runs as root
	DefaultPGCtlTimeout    = 60 * time.Second
	DefaultSocketDir       = "/var/run/postgresql"
)

// Credentials are a postgres role's name and password.
type Credentials struct {
	Username string
	Password string
}

// Config describes the local postgres proc owns. WithDefaults fills what is
// empty; Validate checks the result. New does both.
type Config struct {
	Name  string // member name: application_name in primary_conninfo, slot name
	Scope string // cluster name: cluster_name GUC

	DataDir   string // PGDATA (absolute)
	ConfigDir string // where postgresql.conf, pg_hba.conf, pg_ident.conf live; default DataDir
	BinDir    string // directory of postgres, initdb, pg_ctl...; default: PATH, pg_config --bindir, newest /usr/lib/postgresql/*/bin

	ListenAddresses string // listen_addresses (postgresql.listen hosts); default 127.0.0.1
	Port            int    // port (postgresql.listen port); default 5432
	// SocketDir is the unix socket directory pgnoded connects through. Default: the first
	// entry of Parameters["unix_socket_directories"]; else /var/run/postgresql when the
	// OS user can write there; else DataDir. When unix_socket_directories is not set it
	// is written as SocketDir.
	SocketDir string
	Database  string // database for local and replication connections; default postgres

	Superuser   Credentials // default user "postgres"
	Replication Credentials // used by Clone and in primary_conninfo
	Rewind      Credentials // used by Rewind; falls back to Superuser

	// PgPass is the password file pgnoded (over)writes before it hands passwords to
	// libpq (primary_conninfo passfile, pg_basebackup, pg_rewind). Default, as Patroni:
	// "pgpass" in the OS user's home directory, else next to the data directory.
	PgPass string

	Parameters        map[string]any // local GUCs (override dynamic ones, except the managed ones)
	PgHBA             []string       // when non-empty, pg_hba.conf is rewritten from these lines
	PgIdent           []string       // when non-empty, pg_ident.conf is rewritten from these lines
	InitdbOptions     []any          // bootstrap.initdb: flags ("data-checksums") or one-key maps ({encoding: UTF8})
	BasebackupOptions []any          // postgresql.basebackup, same format
	// ReplicaMethods are postgresql.create_replica_methods with their sections,
	// in order; empty means pg_basebackup only.
	ReplicaMethods []ReplicaMethod
	// MethodSections are every postgresql.<name> section with a command, by
	// name: the methods CloneOptions.Methods may name besides ReplicaMethods.
	MethodSections map[string]ReplicaMethod
	// BootstrapMethod is bootstrap.method when it is not initdb (nil: initdb).
	BootstrapMethod *BootstrapMethod
	// PostBootstrap is bootstrap.post_bootstrap (or post_init), split as Patroni splits it; empty: none.
	PostBootstrap []string

	// OSUser runs postgres and its tools when pgnoded runs as root (default "postgres").
	// When pgnoded is not root everything runs as pgnoded's own user and OSUser is ignored.
	OSUser string

	PGCtlTimeout time.Duration // bound for starting (waiting for connections); default 60s
	// LogFile receives the postmaster's stdout/stderr (what is logged before or
	// without logging_collector). Default <DataDir>/log/postgres.log.
	LogFile string
	// LogMaxBytes is the size past which LogFile is rotated (copied and
	// truncated); 0 turns rotation off. LogKeep is how many copies are kept.
	LogMaxBytes int64
	LogKeep     int

	Logger *slog.Logger // default: discard
}

// WithDefaults returns c with empty fields filled. It looks at the machine
// (OS user, binaries, socket directory) but never fails; Validate reports what is still missing.
func (c Config) WithDefaults() Config {
	if c.ConfigDir == "" {
		c.ConfigDir = c.DataDir
	}
	if c.ListenAddresses == "" {
		c.ListenAddresses = DefaultListenAddresses
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.Superuser.Username == "" {
		c.Superuser.Username = DefaultSuperuser
	}
	if c.Rewind.Username == "" {
		c.Rewind = c.Superuser
	}
	if c.PGCtlTimeout <= 0 {
		c.PGCtlTimeout = DefaultPGCtlTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if os.Geteuid() != 0 {
		if u, err := user.Current(); err == nil {
			c.OSUser = u.Username
		}
	} else if c.OSUser == "" {
		c.OSUser = DefaultOSUser
	}
	if c.BinDir == "" {
		c.BinDir = pgbin.Find()
	}
	if c.LogFile == "" && c.DataDir != "" {
		c.LogFile = filepath.Join(c.DataDir, "log", "postgres.log")
	}
	osu, _ := lookupOSUser(c.OSUser)
	if c.SocketDir == "" {
		c.SocketDir = defaultSocketDir(c, osu)
	}
	if c.PgPass == "" {
		c.PgPass = defaultPgPass(c, osu)
	}
	return c
}

// Validate reports the first problem that makes the config unusable.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if c.Scope == "" {
		errs = append(errs, errors.New("scope is required"))
	}
	for key, dir := range map[string]string{"data_dir": c.DataDir, "config_dir": c.ConfigDir, "socket dir": c.SocketDir, "pgpass": c.PgPass} {
		if dir == "" || !filepath.IsAbs(dir) {
			errs = append(errs, fmt.Errorf("%s must be an absolute path, got %q", key, dir))
		}
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range", c.Port))
	}
	if c.BinDir == "" {
		errs = append(errs, errors.New("bin_dir: postgres binaries not found (set postgresql.bin_dir)"))
	} else if _, err := os.Stat(filepath.Join(c.BinDir, "postgres")); err != nil {
		errs = append(errs, fmt.Errorf("bin_dir: %w", err))
	}
	if c.Superuser.Username == "" {
		errs = append(errs, errors.New("superuser username is required"))
	}
	if _, err := lookupOSUser(c.OSUser); err != nil {
		errs = append(errs, err)
	}
	if v, ok := c.Parameters["unix_socket_directories"]; ok {
		dirs := socketDirs(fmt.Sprint(v))
		if len(dirs) == 0 {
			errs = append(errs, errors.New("unix_socket_directories is empty: pgnoded needs a unix socket"))
		} else if !containsString(dirs, c.SocketDir) {
			errs = append(errs, fmt.Errorf("socket dir %q is not one of unix_socket_directories %q", c.SocketDir, dirs))
		}
	}
	if _, err := userOptions("initdb", c.InitdbOptions, initdbForbidden); err != nil {
		errs = append(errs, err)
	}
	if _, err := userOptions("basebackup", c.BasebackupOptions, basebackupForbidden); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// osUser is the OS account postgres and its tools run as.
type osUser struct {
	name     string
	uid, gid uint32
	groups   []uint32
	home     string
	switchTo bool // we are root and must switch to this user for child processes
}

// lookupOSUser resolves name; when pgnoded is not root it is always the current user.
func lookupOSUser(name string) (osUser, error) {
	var u *user.User
	var err error
	root := os.Geteuid() == 0
	if root {
		if name == "" {
			return osUser{}, errors.New("os user is required when running as root")
		}
		u, err = user.Lookup(name)
	} else {
		u, err = user.Current()
	}
	if err != nil {
		return osUser{}, fmt.Errorf("os user %q: %w", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if root && uid == 0 {
		return osUser{}, fmt.Errorf("os user %q is root: postgres refuses to run as root", name)
	}
	out := osUser{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir, switchTo: root}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				out.groups = append(out.groups, uint32(n))
			}
		}
	}
	return out, nil
}

func defaultSocketDir(c Config, u osUser) string {
	if v, ok := c.Parameters["unix_socket_directories"]; ok {
		if dirs := socketDirs(fmt.Sprint(v)); len(dirs) > 0 {
			return dirs[0]
		}
	}
	if writableBy(DefaultSocketDir, u) {
		return DefaultSocketDir
	}
	return c.DataDir
}

func defaultPgPass(c Config, u osUser) string {
	if u.home != "" && filepath.IsAbs(u.home) {
		if st, err := os.Stat(u.home); err == nil && st.IsDir() {
			return filepath.Join(u.home, "pgpass")
		}
	}
	if c.DataDir == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(filepath.Clean(c.DataDir)), "pgpass")
}

// socketDirs splits unix_socket_directories ("/var/run/postgresql, /tmp").
func socketDirs(v string) []string {
	var out []string
	for _, d := range strings.Split(v, ",") {
		if d = strings.Trim(strings.TrimSpace(d), `"`); d != "" {
			out = append(out, d)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
