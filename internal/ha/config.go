package ha

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// DefaultStartTimeout is how long a start waits for postgres to accept
// connections when primary_start_timeout does not say (Patroni's pg_ctl_timeout).
const DefaultStartTimeout = 60 * time.Second

// Credential is a postgres role name and password.
type Credential struct {
	Username string
	Password string
}

// Credentials are the roles pgnoded uses (postgresql.authentication).
type Credentials struct {
	Superuser   Credential
	Replication Credential // streaming and pg_basebackup; created after bootstrap
	Rewind      Credential // pg_rewind; empty means the superuser; created after bootstrap
}

// RewindRole is the role pg_rewind connects as: Rewind, or the superuser when it is empty.
func (c Credentials) RewindRole() Credential {
	if c.Rewind.Username == "" {
		return c.Superuser
	}
	return c.Rewind
}

// Config is the HA loop's configuration (cmd/pgnoded fills it from the config file).
type Config struct {
	Name    string
	Scope   string
	Compat  cluster.Compat
	APIURL  string // http(s)://<restapi.connect_address>/patroni
	ConnURL string // postgres://<postgresql.connect_address>/<database>
	Tags    map[string]any

	// BootstrapDCS is bootstrap.dcs, written to the config key by the node that
	// bootstraps the cluster; HasBootstrap says a bootstrap section exists at all.
	BootstrapDCS map[string]any
	HasBootstrap bool
	// CustomBootstrap: bootstrap.method is a command that restores the data
	// directory (proc's CustomBootstrap) instead of initdb.
	CustomBootstrap bool
	// CloneWithoutLeader: some create_replica_methods entry has no_leader, so a
	// replica may be built while no member runs to clone from.
	CloneWithoutLeader bool

	Credentials Credentials
	// Parameters are the local postgresql.parameters; they override the dynamic ones.
	Parameters map[string]any
	// UsePgRewind overrides postgresql.use_pg_rewind from the dynamic config when set.
	UsePgRewind                      *bool
	RemoveDataDirOnRewindFailure     bool
	RemoveDataDirOnDivergedTimelines bool

	// RefusedConfig returns the settings of a config-key document pgnoded
	// refuses (cmd/pgnoded passes the key table's check); nil refuses nothing.
	RefusedConfig func(doc map[string]any) []cluster.KeyIssue
	// WarnedConfig returns the settings of a config-key document pgnoded
	// accepts but does not act on (logged as warnings when the key changes).
	WarnedConfig func(doc map[string]any) []cluster.KeyIssue

	// NoFence disables the fence guard (tests, or a deliberate operator choice).
	NoFence bool
	// StartTimeout bounds a postgres start (default DefaultStartTimeout); a leader's
	// restart uses primary_start_timeout when that is larger than zero.
	StartTimeout time.Duration

	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()
}

// Deps are the HA loop's collaborators. VIP, Fence and Hooks may be nil (no VIP; no fence; no scripts).
// Peers defaults to a client that finds every peer unreachable (internal/peers is the HTTP one).
type Deps struct {
	Postgres Postgres
	Store    Store
	VIP      VIP
	Peers    Peers
	Fence    Fence
	Hooks    Hooks // nil: no callbacks or hook scripts
}

// ErrFatal marks a decision that pgnoded must not continue (Run returns it wrapped).
var ErrFatal = errors.New("ha: fatal")

// ErrConfigRefused marks a config key found at startup with settings pgnoded
// refuses (Run returns it wrapped, with every "/config: key: reason").
var ErrConfigRefused = errors.New("ha: the config key has settings pgnoded refuses")

func (c *Config) setDefaults() {
	if c.Compat == "" {
		c.Compat = cluster.Compat302
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate(d Deps) error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if c.Scope == "" {
		errs = append(errs, errors.New("scope is required"))
	}
	if d.Postgres == nil || d.Store == nil {
		errs = append(errs, errors.New("Postgres and Store are required"))
	}
	if d.Fence == nil && !c.NoFence {
		errs = append(errs, errors.New("a Fence is required unless NoFence is set"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ha config: %w", err)
	}
	return nil
}

// connInfo turns a member's conn_url (postgres://host:port/dbname) into the
// ConnInfo to reach it as cred.
func connInfo(connURL string, cred Credential) (cluster.ConnInfo, error) {
	u, err := url.Parse(connURL)
	if err != nil {
		return cluster.ConnInfo{}, fmt.Errorf("conn_url %q: %w", connURL, err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return cluster.ConnInfo{}, fmt.Errorf("conn_url %q: not a postgres:// URL", connURL)
	}
	ci := cluster.ConnInfo{Host: u.Hostname(), Port: 5432, User: cred.Username, Password: cred.Password,
		DBName: "postgres", SSLMode: u.Query().Get("sslmode")}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return cluster.ConnInfo{}, fmt.Errorf("conn_url %q: bad port: %w", connURL, err)
		}
		ci.Port = n
	}
	if db := u.Path; len(db) > 1 {
		ci.DBName = db[1:]
	}
	if ci.Host == "" {
		return cluster.ConnInfo{}, fmt.Errorf("conn_url %q: no host", connURL)
	}
	return ci, nil
}

// hostPort is the address part of a ConnInfo (for logs).
func hostPort(ci cluster.ConnInfo) string { return net.JoinHostPort(ci.Host, strconv.Itoa(ci.Port)) }
