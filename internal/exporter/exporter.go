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
	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
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
	pool    *connPool // main database, shared by scrapes and /up pings
	pg      *pgCollector
	reg     *prometheus.Registry // every metric (Registry, and /metrics in formats other than text)
	handler http.Handler
	health  *healthState
	cancel  context.CancelFunc
	close   sync.Once
	st      *Status                  // serving and fallback state
	snap    func() *cluster.Snapshot // the HA loop's snapshot; nil without one

	// others is reg without the postgres collector, whose metrics /metrics
	// writes itself (metricsHandler); constLabels go on those metrics.
	others      *prometheus.Registry
	constLabels []*dto.LabelPair

	reloadMu sync.Mutex
	running  Source // where the served collectors came from
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

	set, err := initialSet(cfg, log, cfg.Status)
	if err != nil {
		return nil, err
	}
	connCfg, err := connConfig(cfg)
	if err != nil {
		return nil, err
	}
	newPool := func(dbname string, maxConns int) *connPool {
		cc := connCfg.Copy()
		if dbname != "" {
			cc.Database = dbname
		}
		return newConnPool(cc, maxConns) // lazy: connects on first use
	}
	mainPool := newPool("", cfg.PoolSize)
	base, cancel := context.WithCancel(context.Background())
	e := &Exporter{cfg: cfg, log: log, pool: mainPool, cancel: cancel, health: &healthState{},
		st: cfg.Status, running: set.source, snap: snap}
	e.pg = &pgCollector{
		buildInfo: buildInfoMetric(cfg.Version),
		cfg:       cfg,
		base:      base,
		log:       log,
		run:       runner{now: cfg.Now, defaultTimeout: cfg.DefaultTimeout, log: log},
		newPool: func(db string) *connPool {
			return newPool(db, 1)
		},
		started: cfg.Now(),
		health:  e.health,
		sem:     make(chan struct{}, cfg.Concurrency),
		// one main connection stays free for /up pings
		main:   newTarget(connCfg.Database, mainPool, true, cfg.PoolSize-1),
		others: map[string]*target{},
	}
	e.pg.useCollectors(set)
	e.reg, e.others = prometheus.NewRegistry(), prometheus.NewRegistry()
	e.constLabels = constLabelPairs(cfg.ConstLabels)
	goColl, procColl := collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})
	ha, status := &haCollector{snap: snap, now: cfg.Now}, statusCollector{e.st}
	for _, reg := range []*prometheus.Registry{e.reg, e.others} {
		reg.MustRegister(goColl, procColl)
		// pg_exporter's constant labels go on its metrics and pgnoded's, not on the Go runtime's.
		var labeled prometheus.Registerer = reg
		if len(cfg.ConstLabels) > 0 { // a wrapper rebuilds every metric's descriptor per scrape
			labeled = prometheus.WrapRegistererWith(cfg.ConstLabels, reg)
		}
		labeled.MustRegister(ha, status)
		if reg == e.reg {
			labeled.MustRegister(e.pg)
		}
	}
	e.handler = e.routes()
	log.Info("exporter configured", "collectors", len(set.collectors), "source", set.source.String(),
		"reason", set.source.Reason, "listen", cfg.Listen)
	return e, nil
}

// loadSpecs reads a collector file or directory; "" is the built-in set.
func loadSpecs(file string) ([]*Collector, error) {
	if file == "" {
		return DefaultCollectors()
	}
	return LoadCollectors(file)
}

// pgxOnlyParams are connection-string keys pgx's pool and connection read
// themselves (pgxpool.ParseConfig, pgx.ParseConfig); pgconn would send them to
// the server as settings, so they are dropped. The exporter sizes its own pools.
var pgxOnlyParams = []string{
	"pool_max_conns", "pool_min_conns", "pool_min_idle_conns", "pool_max_conn_lifetime",
	"pool_max_conn_idle_time", "pool_health_check_period", "pool_max_conn_lifetime_jitter",
	"pool_ping_timeout", "statement_cache_capacity", "description_cache_capacity",
	"default_query_exec_mode",
}

// connConfig builds the connection settings from the DSN. A query that
// exceeds its timeout is cancelled server-side and the connection kept, rather
// than the connection being closed.
func connConfig(cfg Config) (*pgconn.Config, error) {
	cc, err := pgconn.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("exporter: dsn: %w", err)
	}
	for _, k := range pgxOnlyParams {
		delete(cc.RuntimeParams, k)
	}
	cc.ConnectTimeout = cfg.ConnectTimeout
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = applicationName
	}
	for k, v := range textSessionParams {
		cc.RuntimeParams[k] = v
	}
	cc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Second}
	}
	return cc, nil
}

// Registry is the exporter's own registry (for tests and embedding).
func (e *Exporter) Registry() *prometheus.Registry { return e.reg }

// Handler serves /metrics and /up.
func (e *Exporter) Handler() http.Handler { return e.handler }

// Run serves HTTP on Config.Listen until ctx ends, then shuts down gracefully
// and releases the connections; meanwhile it warms the scrape connections
// once postgres answers (warmUp). A port that cannot be bound or served never
// ends Run: the failure is logged, Status().Up() turns false and the port is
// tried again every ListenRetry, so that the exporter never takes postgres or
// HA down with it. It returns nil once ctx ends.
func (e *Exporter) Run(ctx context.Context) error {
	defer e.Close()
	defer e.st.setUp(false)
	// Ready the scrape connections now, as pg_exporter's start-up check opens
	// its first one, so the first scrape does not pay for new backends.
	warmed := make(chan struct{})
	go func() {
		defer close(warmed)
		e.warmUp(ctx)
	}()
	defer func() { <-warmed }() // before Close releases the pools
	var (
		lastErr  string
		failures int
	)
	for {
		ln, err := e.listen(ctx)
		if err == nil {
			if failures > 0 {
				e.log.Info("exporter port bound after failed attempts", "addr", ln.Addr().String(), "failed_attempts", failures)
			}
			failures, lastErr = 0, ""
			err = e.serve(ctx, ln)
			if ctx.Err() != nil {
				return err
			}
		}
		failures++
		switch msg := err.Error(); {
		case msg != lastErr:
			e.log.Error("exporter port unavailable; postgres and HA carry on, retrying",
				"addr", e.cfg.Listen, "error", err, "retry_every", e.cfg.ListenRetry.String())
			lastErr = msg
		case failures%20 == 0:
			e.log.Warn("exporter port still unavailable", "addr", e.cfg.Listen, "error", err, "failed_attempts", failures)
		}
		t := time.NewTimer(e.cfg.ListenRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (e *Exporter) listen(ctx context.Context) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", e.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("exporter: listen %s: %w", e.cfg.Listen, err)
	}
	return ln, nil
}

// serve answers on ln until ctx ends (nil after a clean shutdown) or serving fails.
func (e *Exporter) serve(ctx context.Context, ln net.Listener) error {
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
	e.st.setUp(true)
	e.log.Info("exporter listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		e.st.setUp(false)
		return fmt.Errorf("exporter: serve: %w", err)
	case <-ctx.Done():
	}
	e.st.setUp(false)
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
		e.pool.close()
	})
}

func (e *Exporter) routes() http.Handler {
	mux := http.NewServeMux()
	// GET /metrics: Go runtime, process, postgres, pg_exporter_* and pgnoded_* metrics.
	const maxScrapes = 4 // at once
	metrics := &metricsHandler{e: e, inFlight: make(chan struct{}, maxScrapes),
		fallback: promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{
			ErrorLog:           slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
			ErrorHandling:      promhttp.ContinueOnError,
			Timeout:            e.cfg.ScrapeTimeout + 5*time.Second,
			DisableCompression: true, // as the text path (metricsHandler)
		})}
	mux.Handle("GET "+PathMetrics, metrics)
	if p := e.cfg.MetricsPath; p != "" && p != PathMetrics {
		mux.Handle("GET "+p, metrics) // pg_exporter's --web.telemetry-path, beside /metrics
	}
	// GET /up: 200 when postgres answered the last scrape or ping, else 503 (pg_exporter's /up).
	mux.HandleFunc("GET "+PathUp, e.serveUp)
	return mux
}
