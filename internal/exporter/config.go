package exporter

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/common/model"
)

// Defaults for Config fields left zero.
const (
	DefaultListen         = ":9630"
	DefaultPoolSize       = 3                // two scrape workers and one /up ping on the main database
	DefaultConcurrency    = 4                // queries in flight at once across all databases
	DefaultQueryTimeout   = time.Second      // per query, when a collector sets no timeout
	DefaultScrapeTimeout  = 10 * time.Second // whole scrape, every database
	DefaultConnectTimeout = 2 * time.Second
	DefaultUpCacheTTL     = time.Second     // /up reuses a postgres answer this fresh
	DefaultListenRetry    = 3 * time.Second // between attempts to bind a busy or failed port
)

// DefaultExcludeDatabases are never auto-discovered.
var DefaultExcludeDatabases = []string{"template0", "template1"}

// Config configures the exporter. Zero fields take the defaults above.
type Config struct {
	// Listen is the HTTP address for /metrics and /up (default ":9630").
	Listen string
	// DSN reaches the local postgres as a monitoring role (unix socket). Its
	// database is the "main" one: cluster-level collectors run there.
	DSN string
	// CollectorFile is a pg_exporter collector file or directory; empty means
	// the first of CollectorSearch that exists, else the embedded default set.
	// A file that cannot be loaded gives way to the embedded set (logged, and
	// pgnoded_exporter_config_fallback is 1).
	CollectorFile string
	// CollectorSearch are tried in order when CollectorFile is empty.
	CollectorSearch []string
	// DisableCache runs every collector at every scrape (pg_exporter's --disable-cache).
	DisableCache bool
	// ConstLabels are added to every postgres and pgnoded metric (pg_exporter's --label).
	ConstLabels map[string]string
	// MetricsPath serves /metrics under a second path too (pg_exporter's --web.telemetry-path).
	MetricsPath string
	// ListenRetry is the pause between attempts to bind the port (default 3s):
	// a busy port never stops pgnoded, it is retried until it binds.
	ListenRetry time.Duration
	// Status receives the serving and fallback state; nil: the exporter keeps its own.
	Status *Status
	// ExcludeDatabases are skipped by auto-discovery (nil: template0, template1).
	ExcludeDatabases []string
	// IncludeDatabases, when set, limits auto-discovery to these databases.
	IncludeDatabases []string
	// DisableAutoDiscovery runs per-database collectors in the main database only.
	DisableAutoDiscovery bool
	// Tags are the exporter's own tags, matched by collector tags `<tag>` and `not:<tag>`.
	Tags []string
	// PoolSize bounds the connections to the main database (default 3: one is
	// kept for /up pings, the others run collectors concurrently). Other
	// databases get one connection each.
	PoolSize int
	// Concurrency bounds the collector queries in flight at once, over every
	// database of a scrape (default 4).
	Concurrency int
	// DefaultTimeout bounds a query whose collector sets no timeout (default 1s;
	// pg_exporter uses 100ms, too tight for a loaded node).
	DefaultTimeout time.Duration
	// ScrapeTimeout bounds a whole scrape (default 10s).
	ScrapeTimeout time.Duration
	// ConnectTimeout bounds opening a connection (default 2s).
	ConnectTimeout time.Duration
	// UpCacheTTL is how long /up reuses the last postgres answer (default 1s).
	UpCacheTTL time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Version labels pg_exporter_build_info (pgnoded's version); empty means
	// the main module's version from the Go build information.
	Version string
}

// withDefaults returns a copy of c with zero fields defaulted.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.ExcludeDatabases == nil {
		c.ExcludeDatabases = DefaultExcludeDatabases
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = DefaultQueryTimeout
	}
	if c.ScrapeTimeout == 0 {
		c.ScrapeTimeout = DefaultScrapeTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.UpCacheTTL == 0 {
		c.UpCacheTTL = DefaultUpCacheTTL
	}
	if c.ListenRetry == 0 {
		c.ListenRetry = DefaultListenRetry
	}
	if c.Status == nil {
		c.Status = &Status{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Version == "" {
		c.Version = moduleVersion()
	}
	return c
}

// Validate reports a config that cannot work (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("exporter: dsn is required"))
	} else if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		errs = append(errs, fmt.Errorf("exporter: dsn: %w", err))
	}
	if c.PoolSize < 1 {
		errs = append(errs, fmt.Errorf("exporter: pool size %d must be at least 1", c.PoolSize))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("exporter: concurrency %d must be at least 1", c.Concurrency))
	}
	for name, d := range map[string]time.Duration{
		"default timeout": c.DefaultTimeout, "scrape timeout": c.ScrapeTimeout,
		"connect timeout": c.ConnectTimeout, "up cache ttl": c.UpCacheTTL, "listen retry": c.ListenRetry,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("exporter: %s %v must not be negative", name, d))
		}
	}
	if c.MetricsPath != "" && !strings.HasPrefix(c.MetricsPath, "/") {
		errs = append(errs, fmt.Errorf("exporter: metrics path %q must start with /", c.MetricsPath))
	}
	for name := range c.ConstLabels {
		if !model.LabelName(name).IsValidLegacy() {
			errs = append(errs, fmt.Errorf("exporter: constant label name %q is not valid", name))
		}
	}
	return errors.Join(errs...)
}
