package config

import (
	"net/netip"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Defaults for pgnoded's own settings and Patroni's local ones.
const (
	DefaultNamespace      = "/service"
	DefaultDatabase       = "postgres"
	DefaultPgCtlTimeout   = 60 * time.Second
	DefaultARPCount       = 5
	DefaultARPInterval    = time.Second
	DefaultExporterListen = ":9630"
	DefaultOSUser         = "postgres"
	DefaultEtcdPort       = "2379"
	DefaultWatchdogMode   = "automatic"
	DefaultWatchdogDevice = "/dev/watchdog"
	DefaultSafetyMargin   = 5
	DefaultLogLevel       = "INFO"
)

// Config is the whole local configuration of one pgnoded node.
type Config struct {
	Scope      string     `yaml:"scope"`
	Namespace  string     `yaml:"namespace"` // normalised: "/pg/" and "pg" both become "/pg"
	Name       string     `yaml:"name"`
	RESTAPI    RESTAPI    `yaml:"restapi"`
	Ctl        Ctl        `yaml:"ctl"`
	Etcd3      Etcd3      `yaml:"etcd3"`
	Bootstrap  Bootstrap  `yaml:"bootstrap"`
	PostgreSQL PostgreSQL `yaml:"postgresql"`
	Tags       Tags       `yaml:"tags"`
	Watchdog   Watchdog   `yaml:"watchdog"`
	Log        Log        `yaml:"log"`

	VIP      VIP      `yaml:"vip"`
	Exporter Exporter `yaml:"exporter"`
	PGNoded  PGNoded  `yaml:"pgnoded"`

	// Sources lists where the configuration came from: files in merge order,
	// or "PATRONI_CONFIGURATION".
	Sources []string `yaml:"-"`

	pos    map[string]Position // key path -> where its value was written
	origin string              // first source, for problems with no better position
}

// Auth is a username/password pair.
type Auth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// RESTAPI is the restapi section (the Patroni-compatible HTTP API).
type RESTAPI struct {
	Listen                  string            `yaml:"listen"`
	ConnectAddress          string            `yaml:"connect_address"`
	Authentication          Auth              `yaml:"authentication"`
	CertFile                string            `yaml:"certfile"`
	KeyFile                 string            `yaml:"keyfile"`
	KeyFilePassword         string            `yaml:"keyfile_password"`
	CAFile                  string            `yaml:"cafile"`
	Ciphers                 string            `yaml:"ciphers"`
	VerifyClient            string            `yaml:"verify_client"` // none, optional, required
	Allowlist               []string          `yaml:"allowlist"`
	AllowlistIncludeMembers bool              `yaml:"allowlist_include_members"`
	HTTPExtraHeaders        map[string]string `yaml:"http_extra_headers"`
	HTTPSExtraHeaders       map[string]string `yaml:"https_extra_headers"`
}

// Ctl is the ctl section: credentials and TLS for outgoing REST calls (CLI, peers).
type Ctl struct {
	Authentication  Auth   `yaml:"authentication"`
	Insecure        bool   `yaml:"insecure"`
	CACert          string `yaml:"cacert"`
	CertFile        string `yaml:"certfile"`
	KeyFile         string `yaml:"keyfile"`
	KeyFilePassword string `yaml:"keyfile_password"`
}

// Etcd3 is the etcd3 section (the only DCS pgnoded supports).
type Etcd3 struct {
	Host     string    `yaml:"host"`
	Hosts    CommaList `yaml:"hosts"` // YAML list or "h1:2379,h2:2379"
	URL      string    `yaml:"url"`
	Protocol string    `yaml:"protocol"` // http (default) or https
	Username string    `yaml:"username"`
	Password string    `yaml:"password"`
	CACert   string    `yaml:"cacert"`
	Cert     string    `yaml:"cert"`
	Key      string    `yaml:"key"`
}

// Bootstrap is the bootstrap section, used once when the cluster is created.
type Bootstrap struct {
	// DCS is bootstrap.dcs exactly as written (the initial config key document).
	DCS map[string]any `yaml:"dcs"`
	// Dynamic is DCS parsed, with Patroni 3.0.2 defaults for missing keys.
	Dynamic       cluster.DynamicConfig `yaml:"-"`
	Method        string                `yaml:"method"` // default "initdb"
	InitDB        Options               `yaml:"initdb"`
	PgHBA         []string              `yaml:"pg_hba"`
	PostBootstrap string                `yaml:"post_bootstrap"`
	PostInit      string                `yaml:"post_init"` // older spelling of post_bootstrap
	// Methods holds custom bootstrap method sections (bootstrap.<method>).
	Methods map[string]any `yaml:",rest"`
}

// PGUser is one of postgresql.authentication.{superuser,replication,rewind}.
type PGUser struct {
	Username       string `yaml:"username"`
	Password       string `yaml:"password"`
	SSLMode        string `yaml:"sslmode"`
	SSLKey         string `yaml:"sslkey"`
	SSLPassword    string `yaml:"sslpassword"`
	SSLCert        string `yaml:"sslcert"`
	SSLRootCert    string `yaml:"sslrootcert"`
	SSLCRL         string `yaml:"sslcrl"`
	SSLCRLDir      string `yaml:"sslcrldir"`
	GSSEncMode     string `yaml:"gssencmode"`
	ChannelBinding string `yaml:"channel_binding"`
	SSLNegotiation string `yaml:"sslnegotiation"`
}

// PGAuthentication is postgresql.authentication.
type PGAuthentication struct {
	Superuser   PGUser `yaml:"superuser"`
	Replication PGUser `yaml:"replication"`
	Rewind      PGUser `yaml:"rewind"` // falls back to Superuser when its username is empty
}

// Callbacks are the scripts run on postgres events (postgresql.callbacks).
type Callbacks struct {
	OnStart      string `yaml:"on_start"`
	OnStop       string `yaml:"on_stop"`
	OnRestart    string `yaml:"on_restart"`
	OnReload     string `yaml:"on_reload"`
	OnRoleChange string `yaml:"on_role_change"`
}

// PostgreSQL is the local postgresql section.
type PostgreSQL struct {
	Listen         string            `yaml:"listen"` // host[,host2]:port
	ConnectAddress string            `yaml:"connect_address"`
	ProxyAddress   string            `yaml:"proxy_address"`
	DataDir        string            `yaml:"data_dir"`
	BinDir         string            `yaml:"bin_dir"`
	BinName        map[string]string `yaml:"bin_name"`
	ConfigDir      string            `yaml:"config_dir"` // default DataDir
	PgPass         string            `yaml:"pgpass"`
	Database       string            `yaml:"database"` // default "postgres"
	Authentication PGAuthentication  `yaml:"authentication"`
	Parameters     map[string]any    `yaml:"parameters"`
	PgHBA          []string          `yaml:"pg_hba"`
	PgIdent        []string          `yaml:"pg_ident"`
	Callbacks      Callbacks         `yaml:"callbacks"`
	// PrePromote runs before a promotion; a non-zero exit cancels it and gives the leader key up.
	PrePromote string `yaml:"pre_promote"`
	// BeforeStop runs before postgres is stopped; its exit status is only logged.
	BeforeStop string `yaml:"before_stop"`
	// CreateReplicaMethods lists how replicas are cloned, in order; "basebackup" is built in.
	CreateReplicaMethods []string      `yaml:"create_replica_methods"`
	Basebackup           Options       `yaml:"basebackup"`
	PgCtlTimeout         time.Duration `yaml:"pg_ctl_timeout"` // bare numbers are seconds
	UsePgRewind          bool          `yaml:"use_pg_rewind"`
	// RemoveDataDirectoryOnRewindFailure allows a re-clone when pg_rewind fails.
	RemoveDataDirectoryOnRewindFailure bool `yaml:"remove_data_directory_on_rewind_failure"`
	// RemoveDataDirectoryOnDivergedTimelines allows a re-clone when timelines diverged.
	RemoveDataDirectoryOnDivergedTimelines bool           `yaml:"remove_data_directory_on_diverged_timelines"`
	UseUnixSocket                          bool           `yaml:"use_unix_socket"`
	UseUnixSocketRepl                      bool           `yaml:"use_unix_socket_repl"`
	RecoveryConf                           map[string]any `yaml:"recovery_conf"`
	// ReplicaMethods holds the sections of custom create_replica_methods
	// (e.g. postgresql.pgbackrest: {command, keep_data, no_params, ...}).
	ReplicaMethods map[string]any `yaml:",rest"`
}

// Tags is the tags section. Custom holds every tag that is not built in.
type Tags struct {
	NoFailover       bool           `yaml:"nofailover"`
	NoLoadBalance    bool           `yaml:"noloadbalance"`
	CloneFrom        bool           `yaml:"clonefrom"`
	NoSync           bool           `yaml:"nosync"`
	NoStream         bool           `yaml:"nostream"`
	ReplicateFrom    string         `yaml:"replicatefrom"`
	FailoverPriority *int           `yaml:"failover_priority"` // nil = not set (Patroni's default 1)
	SyncPriority     *int           `yaml:"sync_priority"`
	Custom           map[string]any `yaml:",rest"`
}

// Watchdog is the watchdog section.
type Watchdog struct {
	Mode         string `yaml:"mode"` // off, automatic, required
	Device       string `yaml:"device"`
	SafetyMargin int    `yaml:"safety_margin"` // seconds
}

// Log is the log section.
type Log struct {
	Type       string `yaml:"type"` // plain or json
	Level      string `yaml:"level"`
	Dir        string `yaml:"dir"`
	Format     string `yaml:"format"`
	DateFormat string `yaml:"dateformat"`
	FileSize   int64  `yaml:"file_size"` // bytes
	FileNum    int    `yaml:"file_num"`
}

// VIP is pgnoded's vip section: the L2 address bound on the primary.
type VIP struct {
	Enabled bool   `yaml:"enabled"`
	Address string `yaml:"address"` // CIDR, e.g. 10.10.10.2/24
	// Prefix is Address parsed (zero when Address is empty).
	Prefix netip.Prefix `yaml:"-"`
	// Interface is the link to bind on; empty (or "auto" in the file) means the
	// interface holding postgresql.connect_address's IP.
	Interface   string        `yaml:"interface"`
	ARPCount    int           `yaml:"arp_count"`
	ARPInterval time.Duration `yaml:"arp_interval"`
}

// Exporter is pgnoded's exporter section (pg_exporter-compatible metrics).
type Exporter struct {
	Enabled bool   `yaml:"enabled"`
	Listen  string `yaml:"listen"`
	// Config is the path of a pg_exporter-format collector file or directory; empty = built-in set.
	Config           string    `yaml:"config"`
	ExcludeDatabases CommaList `yaml:"exclude_databases"`
	// ConfigSearch are the collector files or directories tried in order when
	// Config is empty, as pg_exporter searches (/etc/pg_exporter.yml, then the
	// /etc/pg_exporter directory); empty: the built-in set.
	ConfigSearch CommaList `yaml:"config_search"`
	// EnvFile is pg_exporter's environment file (Pigsty writes
	// /etc/default/pg_exporter); its settings apply where this section leaves a
	// key unset. Empty: not read.
	EnvFile string `yaml:"env_file"`
}

// Default places of a Pigsty node's pg_exporter files.
var (
	DefaultExporterConfigSearch = CommaList{"/etc/pg_exporter.yml", "/etc/pg_exporter"}
	DefaultExporterEnvFile      = "/etc/default/pg_exporter"
)

// Fence configures the out-of-process fencing guard.
type Fence struct {
	Enabled bool `yaml:"enabled"`
	// Margin is how long before the lease could expire the guard acts; 0 lets the HA core choose.
	Margin time.Duration `yaml:"margin"`
}

// PostgresLog rotates the file that receives the postmaster's stdout/stderr.
type PostgresLog struct {
	MaxSize int64 `yaml:"max_size"` // bytes; 0 turns rotation off
	Keep    int   `yaml:"keep"`     // rotated copies kept
}

// PGNoded is pgnoded's own pgnoded section.
type PGNoded struct {
	OSUser      string         `yaml:"os_user"` // user postgres runs as when pgnoded is root
	Compat      cluster.Compat `yaml:"compat"`  // "3.0.2" (default) or "4.1.4"
	Fence       Fence          `yaml:"fence"`
	PostgresLog PostgresLog    `yaml:"postgres_log"`
}

// defaults returns a Config holding every default that does not depend on other keys.
func defaults() *Config {
	return &Config{
		Namespace: DefaultNamespace,
		Etcd3:     Etcd3{Protocol: "http"},
		Bootstrap: Bootstrap{Method: "initdb", Dynamic: cluster.DefaultDynamicConfig()},
		PostgreSQL: PostgreSQL{
			Database:     DefaultDatabase,
			PgCtlTimeout: DefaultPgCtlTimeout,
			Authentication: PGAuthentication{
				Superuser: PGUser{Username: "postgres"},
			},
		},
		Watchdog: Watchdog{Mode: DefaultWatchdogMode, Device: DefaultWatchdogDevice, SafetyMargin: DefaultSafetyMargin},
		Log:      Log{Type: "plain", Level: DefaultLogLevel},
		VIP:      VIP{ARPCount: DefaultARPCount, ARPInterval: DefaultARPInterval},
		Exporter: Exporter{
			Enabled: true, Listen: DefaultExporterListen,
			ExcludeDatabases: CommaList{"template0", "template1"},
			ConfigSearch:     append(CommaList(nil), DefaultExporterConfigSearch...),
			EnvFile:          DefaultExporterEnvFile,
		},
		PGNoded: PGNoded{OSUser: DefaultOSUser, Compat: cluster.Compat302, Fence: Fence{Enabled: true},
			PostgresLog: PostgresLog{MaxSize: 100 << 20, Keep: 4}},
		pos: map[string]Position{},
	}
}
