package restapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Source provides the latest snapshot published by the HA loop (nil before the first cycle).
type Source interface {
	Snapshot() *cluster.Snapshot
}

// SourceFunc adapts a function to Source.
type SourceFunc func() *cluster.Snapshot

// Snapshot implements Source.
func (f SourceFunc) Snapshot() *cluster.Snapshot { return f() }

// Server is the Patroni-compatible REST API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	src     Source
	actions Actions
	access  atomic.Pointer[access]
	cache   renditions
	handler http.Handler
	certs   *certStore
	tlsConf *tls.Config                // the listener's: hands every handshake curTLS
	curTLS  atomic.Pointer[tls.Config] // client verification in force (Reload swaps it)

	mu sync.Mutex
	ln net.Listener
}

// New validates cfg, loads TLS material, resolves the allowlist and builds the handler.
func New(cfg Config, src Source, actions Actions) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("restapi: nil snapshot source")
	}
	if actions == nil {
		actions = NotImplemented{}
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "restapi"), now: cfg.Now, src: src, actions: actions}
	s.access.Store(newAccess(cfg))
	if cfg.TLS.Enabled() {
		s.certs = &certStore{}
		s.certs.setFiles(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err := s.certs.reload(); err != nil {
			return nil, err
		}
		cur, err := buildTLS(cfg.TLS, s.certs.get)
		if err != nil {
			return nil, err
		}
		s.curTLS.Store(cur)
		s.tlsConf = &tls.Config{MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return s.curTLS.Load(), nil }}
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the request handler without the listener (for tests and benchmarks).
func (s *Server) Handler() http.Handler { return s.handler }

// ReloadCertificates re-reads certfile/keyfile; new connections use the new pair.
func (s *Server) ReloadCertificates() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.reload()
}

// Listen binds the configured address (Run calls it when needed), so that bind
// errors surface before the server starts and Addr is known.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("restapi: listen on %s: %w", s.cfg.Listen, err)
	}
	if s.tlsConf != nil {
		ln = tls.NewListener(ln, s.tlsConf)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address once listening, else "".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Run serves until ctx ends, then shuts down gracefully within ShutdownTimeout.
// Request contexts derive from ctx, so blocking actions stop when it ends.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		// "OPTIONS *" is a health check of path "*" (503) in Patroni, not net/http's generic reply.
		DisableGeneralOptionsHandler: true,
		BaseContext:                  func(net.Listener) context.Context { return ctx },
		ErrorLog:                     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("REST API listening", "addr", ln.Addr().String(), "tls", s.tlsConf != nil)

	select {
	case err := <-served:
		return fmt.Errorf("restapi: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	<-served // Serve has returned http.ErrServerClosed
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("restapi: shutdown: %w", err)
	}
	s.log.Info("REST API stopped")
	return nil
}

// Endpoint names: the first path segment selects a handler, as in Patroni
// (GET /patroni/anything is /patroni).
const (
	epPatroni      = "patroni"
	epCluster      = "cluster"
	epHistory      = "history"
	epConfig       = "config"
	epMetrics      = "metrics"
	epFailsafe     = "failsafe"
	epLiveness     = "liveness"
	epReadiness    = "readiness"
	epReload       = "reload"
	epRestart      = "restart"
	epReinitialize = "reinitialize"
	epSwitchover   = "switchover"
	epFailover     = "failover"
	epSigterm      = "sigterm"
	epCitus        = "citus"
	epMPP          = "mpp"
)

// routes registers every endpoint. HEAD and OPTIONS never reach the router:
// Patroni answers them with the health-check logic whatever the path.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.NotFound(s.fallback)
	r.MethodNotAllowed(s.fallback)
	on := func(rt chi.Router, method, name string, h http.HandlerFunc) {
		rt.MethodFunc(method, "/"+name, h)
		rt.MethodFunc(method, "/"+name+"/*", h)
	}

	// Documents (open to everyone, like every GET).
	on(r, http.MethodGet, epPatroni, s.servePatroni)     // node status document, always 200
	on(r, http.MethodGet, epCluster, s.serveCluster)     // members, roles, lag from the cached view
	on(r, http.MethodGet, epHistory, s.serveHistory)     // timeline history list
	on(r, http.MethodGet, epConfig, s.serveConfig)       // config key as stored; 502 when absent
	on(r, http.MethodGet, epMetrics, s.serveMetrics)     // Patroni metrics, Prometheus text
	on(r, http.MethodGet, epFailsafe, s.serveFailsafe)   // failsafe key; 502 when absent
	on(r, http.MethodGet, epLiveness, s.serveLiveness)   // HA loop not stuck
	on(r, http.MethodGet, epReadiness, s.serveReadiness) // leader, or running with a DCS view

	// State-changing endpoints: allowlist → client certificate → Basic auth.
	r.Group(func(g chi.Router) {
		g.Use(s.guard)
		on(g, http.MethodPost, epSwitchover, s.postSwitchover)     // planned switchover (immediate or scheduled)
		on(g, http.MethodPost, epFailover, s.postFailover)         // manual failover to a candidate
		on(g, http.MethodDelete, epSwitchover, s.deleteSwitchover) // cancel a scheduled switchover
		on(g, http.MethodPost, epRestart, s.postRestart)           // restart postgres, maybe scheduled/conditional
		on(g, http.MethodDelete, epRestart, s.deleteRestart)       // cancel a scheduled restart
		on(g, http.MethodPost, epReload, s.postReload)             // re-read the configuration file
		on(g, http.MethodPost, epReinitialize, s.postReinitialize) // rebuild this replica
		on(g, http.MethodPatch, epConfig, s.patchConfig)           // merge into the config key (CAS)
		on(g, http.MethodPut, epConfig, s.putConfig)               // overwrite the config key
		on(g, http.MethodPost, epFailsafe, s.postFailsafe)         // failsafe primary's probe
		on(g, http.MethodPost, epCitus, s.postIgnored)             // Citus events: accepted and ignored
		on(g, http.MethodPost, epMPP, s.postIgnored)               // 4.x name of the same
		on(g, http.MethodPost, epSigterm, s.postSigterm)           // Windows test hook: no-op
	})

	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.Method {
		case http.MethodOptions, http.MethodHead:
			s.serveHealth(w, req, false)
		default:
			r.ServeHTTP(w, req)
		}
	})
}

// fallback: any other GET is a health check; other methods are unsupported (501).
func (s *Server) fallback(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		s.serveHealth(w, r, true)
		return
	}
	writeText(w, http.StatusNotImplemented, fmt.Sprintf("Unsupported method (%q)", r.Method))
}

// guard enforces the access rules of the unsafe endpoints.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var members []string
		snap := s.src.Snapshot()
		failsafe := r.Method == http.MethodPost && firstSegment(r.URL.Path) == epFailsafe
		// 4.x: POST /failsafe is exempt from allowlist_include_members.
		acc := s.access.Load()
		if acc.includeMembers && snap != nil && snap.DCSAvailable(s.now()) &&
			!(failsafe && snap.Compat == cluster.Compat4) {
			for _, m := range snap.View.Members {
				if m.APIURL != "" {
					members = append(members, m.APIURL)
				}
			}
		}
		if code, text := acc.check(r, members); code != 0 {
			s.log.Warn("REST API request refused", "method", r.Method, "path", r.URL.Path,
				"remote", r.RemoteAddr, "status", code, "reason", text)
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", realmHeader)
			}
			writeText(w, code, text)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func firstSegment(path string) string {
	for len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	for i := 0; i < len(path); i++ {
		if path[i] == '/' {
			return path[:i]
		}
	}
	return path
}

// Reload applies a re-read restapi section (SIGHUP, POST /reload) as
// Patroni's reload does: Basic auth, allowlist, certificate and key (re-read
// even when their paths did not change), CA and verify_client. It returns the
// keys whose change needs a restart of pgnoded (listen; turning TLS on or
// off) and applies nothing when the new settings are invalid.
func (s *Server) Reload(c Config) (needRestart []string, err error) {
	c.Logger, c.Now = s.cfg.Logger, s.cfg.Now
	c, err = c.withDefaults()
	if err != nil {
		return nil, err
	}
	if c.Listen != s.cfg.Listen {
		needRestart = append(needRestart, "restapi.listen")
	}
	if c.TLS.Enabled() != s.cfg.TLS.Enabled() {
		needRestart = append(needRestart, "restapi.certfile (HTTPS on or off)")
	} else if c.TLS.Enabled() {
		old := s.certs.files.Load()
		s.certs.setFiles(c.TLS.CertFile, c.TLS.KeyFile)
		if err := s.certs.reload(); err != nil {
			s.certs.files.Store(old)
			return needRestart, err
		}
		cur, err := buildTLS(c.TLS, s.certs.get)
		if err != nil {
			return needRestart, err
		}
		s.curTLS.Store(cur)
	}
	keep := s.cfg
	keep.Auth, keep.Allowlist, keep.AllowlistIncludeMembers = c.Auth, c.Allowlist, c.AllowlistIncludeMembers
	if keep.TLS.Enabled() {
		keep.TLS = c.TLS
	}
	s.access.Store(newAccess(keep))
	return needRestart, nil
}
