package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTP paths served on the exporter port.
const (
	PathMetrics = "/metrics"
	PathUp      = "/up"
)

const (
	applicationName = "pgnoded_exporter"
	shutdownTimeout = 5 * time.Second
)

// Exporter serves /metrics and /up. Build it with New, run it with Run.
type Exporter struct {
	cfg     Config
	log     *slog.Logger
	pool    *pgxpool.Pool // main database, shared by scrapes and /up pings
	pg      *pgCollector
	reg     *prometheus.Registry
	handler http.Handler
	health  *healthState
	cancel  context.CancelFunc
	close   sync.Once
}

// New loads the collector set, prepares the connection pool (connections are
// opened on first use, so postgres need not be up yet) and the registry. snap
// returns the HA loop's latest snapshot, or nil before the first one; it may be nil.
func New(cfg Config, snap func() *cluster.Snapshot) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "exporter")

	specs, err := loadSpecs(cfg.CollectorFile)
	if err != nil {
		return nil, err
	}
	poolCfg, err := poolConfig(cfg)
	if err != nil {
		return nil, err
	}
	newPool := func(dbname string, maxConns int32) (*pgxpool.Pool, error) {
		pc := poolCfg.Copy()
		if dbname != "" {
			pc.ConnConfig.Database = dbname
		}
		pc.MaxConns = maxConns
		p, err := pgxpool.NewWithConfig(context.Background(), pc) // lazy: connects on first use
		if err != nil {
			return nil, fmt.Errorf("exporter: pool for %q: %w", dbname, err)
		}
		return p, nil
	}
	mainPool, err := newPool("", int32(cfg.PoolSize))
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	e := &Exporter{cfg: cfg, log: log, pool: mainPool, cancel: cancel, health: &healthState{}}
	e.pg = &pgCollector{
		buildInfo: buildInfoMetric(cfg.Version),
		cfg:       cfg,
		base:      base,
		log:       log,
		run:       runner{now: cfg.Now, defaultTimeout: cfg.DefaultTimeout, log: log},
		newPool: func(db string) (*pgxpool.Pool, error) {
			return newPool(db, 1)
		},
		started: cfg.Now(),
		health:  e.health,
		sem:     make(chan struct{}, cfg.Concurrency),
		// one main connection stays free for /up pings
		main:   newTarget(poolCfg.ConnConfig.Database, mainPool, true, cfg.PoolSize-1),
		others: map[string]*target{},
	}
	for _, s := range specs {
		cc, err := compile(s)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("exporter: %w", err)
		}
		e.pg.collectors = append(e.pg.collectors, cc)
		if !s.ClusterLevel() && !s.Skip {
			e.pg.perDB = true
		}
	}
	e.reg = prometheus.NewRegistry()
	e.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		e.pg,
		&haCollector{snap: snap, now: cfg.Now},
	)
	e.handler = e.routes()
	log.Info("exporter configured", "collectors", len(specs), "listen", cfg.Listen)
	return e, nil
}

func loadSpecs(file string) ([]*Collector, error) {
	if file == "" {
		return DefaultCollectors()
	}
	return LoadCollectors(file)
}

// poolConfig builds the main pool's configuration from the DSN. A query that
// exceeds its timeout is cancelled server-side and the connection kept, rather
// than the connection being closed.
func poolConfig(cfg Config) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("exporter: dsn: %w", err)
	}
	pc.MinConns = 0
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = applicationName
	}
	pc.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Second}
	}
	return pc, nil
}

// Registry is the exporter's own registry (for tests and embedding).
func (e *Exporter) Registry() *prometheus.Registry { return e.reg }

// Handler serves /metrics and /up.
func (e *Exporter) Handler() http.Handler { return e.handler }

// Run serves HTTP on Config.Listen until ctx ends, then shuts down gracefully
// and releases the connections. It returns nil after a clean shutdown.
func (e *Exporter) Run(ctx context.Context) error {
	defer e.Close()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", e.cfg.Listen)
	if err != nil {
		return fmt.Errorf("exporter: listen %s: %w", e.cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           e.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      e.cfg.ScrapeTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	e.log.Info("exporter listening", "addr", ln.Addr().String())
	// Open the main database's first connection now, as pg_exporter's start-up
	// check does, so the first scrape does not pay for it; best effort.
	warmed := make(chan struct{})
	go func() {
		defer close(warmed)
		wctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
		defer cancel()
		if err := e.pool.Ping(wctx); err != nil {
			e.log.Debug("postgres not reachable yet; the first scrape will connect", "err", err)
		}
	}()
	defer func() { <-warmed }() // before Close releases the pool
	select {
	case err := <-errc:
		return fmt.Errorf("exporter: serve: %w", err)
	case <-ctx.Done():
	}
	e.cancel() // abort a scrape in progress so Shutdown need not wait for it
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		<-errc
		return fmt.Errorf("exporter: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("exporter: serve: %w", err)
	}
	return nil
}

// Close aborts scrapes and closes every connection; Run calls it on return.
func (e *Exporter) Close() {
	e.close.Do(func() {
		e.cancel()
		e.pg.close()
		e.pool.Close()
	})
}

func (e *Exporter) routes() http.Handler {
	mux := http.NewServeMux()
	// GET /metrics: Go runtime, process, postgres, pg_exporter_* and pgnoded_* metrics.
	mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             e.cfg.ScrapeTimeout + 5*time.Second,
	}))
	// GET /up: 200 when postgres answered the last scrape or ping, else 503 (pg_exporter's /up).
	mux.HandleFunc("GET "+PathUp, e.serveUp)
	return mux
}
