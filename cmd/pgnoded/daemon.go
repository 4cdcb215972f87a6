package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pgnoded/pgnoded/internal/buildinfo"
	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/exporter"
	"github.com/pgnoded/pgnoded/internal/fence"
	"github.com/pgnoded/pgnoded/internal/ha"
	"github.com/pgnoded/pgnoded/internal/ha/dcs"
	"github.com/pgnoded/pgnoded/internal/proc"
	"github.com/pgnoded/pgnoded/internal/restapi"
	"github.com/pgnoded/pgnoded/internal/vip"
)

// shutdownBudget bounds a clean stop: a fast shutdown checkpoint plus releasing keys.
const shutdownBudget = 90 * time.Second

// runDaemon runs every component of one node until a signal stops it.
//
// Signals: SIGTERM/SIGINT stop postgres cleanly and hand leadership over
// (systemctl stop); SIGUSR2 exits leaving postgres running and the lease alive,
// so a restarted pgnoded adopts both (systemctl restart, via RestartKillSignal);
// SIGHUP re-reads the configuration file.
func runDaemon(path string, stderr io.Writer) int {
	cfg, warnings, err := config.Load(path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "pgnoded: invalid configuration:\n%s\n", err)
		return exitConfig
	}
	out, closeLog, err := logOutput(cfg.Log.Dir, cfg.Log.FileSize, cfg.Log.FileNum, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pgnoded: %v\n", err)
		return exitConfig
	}
	defer closeLog()
	log := newLogger(out, cfg.Log.Level, cfg.Log.Type == "json").With("member", cfg.Name)
	for _, w := range warnings {
		log.Warn("configuration", "warning", w.String())
	}
	log.Info("pgnoded starting", "version", buildinfo.Version, "scope", cfg.Scope, "config", strings.Join(cfg.Sources, ","), "pid", os.Getpid())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := build(ctx, cfg, log)
	if d != nil {
		d.path = path
	}
	if err != nil {
		log.Error("cannot start", "error", err)
		return exitFailure
	}
	return d.run(ctx, cancel)
}

// supervisor holds the wired components of one node.
type supervisor struct {
	path     string
	cfg      *config.Config
	log      *slog.Logger
	pg       *proc.Postgres
	store    *dcs.Store
	node     *ha.Node
	api      *restapi.Server
	exporter *exporter.Exporter
	vip      *vip.Manager
	fence    *fence.Client
	notify   notifier
}

func build(ctx context.Context, cfg *config.Config, log *slog.Logger) (*supervisor, error) {
	d := &supervisor{cfg: cfg, log: log, notify: newNotifier(log)}
	var err error
	if d.pg, err = proc.New(procConfig(cfg, log)); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	dcsCfg := dcs.Config{
		Endpoints: cfg.EtcdEndpoints(), Username: cfg.Etcd3.Username, Password: cfg.Etcd3.Password,
		TLS:      dcs.TLSFiles{CACert: cfg.Etcd3.CACert, Cert: cfg.Etcd3.Cert, Key: cfg.Etcd3.Key},
		BasePath: cfg.BasePath(), Name: cfg.Name,
		TTL:          cfg.Bootstrap.Dynamic.TTLDuration(),
		RetryTimeout: cfg.Bootstrap.Dynamic.RetryTimeoutDuration(),
		Logger:       log.With("component", "dcs"),
	}
	if d.store, err = dcs.New(ctx, dcsCfg); err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	var vipDep ha.VIP
	vc, err := vipConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	if vc != nil {
		if err := vip.CheckCapabilities(); err != nil {
			log.Error("the VIP cannot be managed; failover still works without it", "error", err)
		}
		if d.vip, err = vip.New(*vc); err != nil {
			return nil, fmt.Errorf("vip: %w", err)
		}
		vipDep = d.vip
	}
	var fenceDep ha.Fence
	if cfg.PGNoded.Fence.Enabled {
		if err := fence.Spawn(ctx, fenceSpawnConfig(cfg, vc, log)); err != nil {
			return nil, fmt.Errorf("fence guard: %w", err)
		}
		if d.fence, err = fence.Dial(ctx, fence.DefaultSocketPath(cfg.PostgreSQL.DataDir)); err != nil {
			return nil, fmt.Errorf("fence guard: %w", err)
		}
		fenceDep = d.fence
	}
	haCfg := ha.Config{
		Name: cfg.Name, Scope: cfg.Scope, Compat: cfg.PGNoded.Compat,
		APIURL: cfg.APIURL(), ConnURL: cfg.ConnURL(), Tags: cfg.EffectiveTags(),
		BootstrapDCS: cfg.Bootstrap.DCS, HasBootstrap: true,
		Credentials: ha.Credentials{
			Superuser:   cred(cfg.PostgreSQL.Authentication.Superuser),
			Replication: cred(cfg.PostgreSQL.Authentication.Replication),
			Rewind:      cred(cfg.PostgreSQL.Authentication.Rewind),
		},
		Parameters:                       cfg.PostgreSQL.Parameters,
		RemoveDataDirOnRewindFailure:     cfg.PostgreSQL.RemoveDataDirectoryOnRewindFailure,
		RemoveDataDirOnDivergedTimelines: cfg.PostgreSQL.RemoveDataDirectoryOnDivergedTimelines,
		NoFence:                          !cfg.PGNoded.Fence.Enabled,
		StartTimeout:                     cfg.PostgreSQL.PgCtlTimeout,
		Logger:                           log,
	}
	if cfg.PostgreSQL.UsePgRewind {
		v := true
		haCfg.UsePgRewind = &v
	}
	d.node = ha.New(haCfg, ha.Deps{Postgres: d.pg, Store: d.store, VIP: vipDep, Fence: fenceDep})

	apiCfg := restapi.Config{
		Listen: cfg.RESTListen(),
		TLS: restapi.TLSConfig{CertFile: cfg.RESTAPI.CertFile, KeyFile: cfg.RESTAPI.KeyFile,
			CAFile: cfg.RESTAPI.CAFile, VerifyClient: restapi.VerifyClient(cfg.RESTAPI.VerifyClient)},
		Auth:                    restapi.AuthConfig{Username: cfg.RESTAPI.Authentication.Username, Password: cfg.RESTAPI.Authentication.Password},
		Allowlist:               cfg.RESTAPI.Allowlist,
		AllowlistIncludeMembers: cfg.RESTAPI.AllowlistIncludeMembers,
		// Issue 4: /primary is 200 only while this node holds the leader key AND
		// postgres runs as primary (stricter than Patroni, never less safe).
		StrictPrimary: true,
		Logger:        log.With("component", "restapi"),
	}
	if d.api, err = restapi.New(apiCfg, d.node, nodeActions{node: d.node, reload: d.reload}); err != nil {
		return nil, fmt.Errorf("rest api: %w", err)
	}
	if err := d.api.Listen(); err != nil {
		return nil, fmt.Errorf("rest api: listen on %s: %w", apiCfg.Listen, err)
	}
	if cfg.Exporter.Enabled {
		expCfg := exporter.Config{
			Listen:           cfg.Exporter.Listen,
			DSN:              localDSN(cfg, d.pg.Config()),
			CollectorFile:    cfg.Exporter.Config,
			ExcludeDatabases: cfg.Exporter.ExcludeDatabases,
			Logger:           log.With("component", "exporter"),
		}
		if d.exporter, err = exporter.New(expCfg, d.node.Snapshot); err != nil {
			return nil, fmt.Errorf("exporter: %w", err)
		}
	}
	return d, nil
}

func cred(u config.PGUser) ha.Credential {
	return ha.Credential{Username: u.Username, Password: u.Password}
}

// localDSN is a libpq URL to the local postgres over its unix socket.
func localDSN(cfg *config.Config, pc proc.Config) string {
	su := cfg.PostgreSQL.Authentication.Superuser
	q := url.Values{}
	q.Set("host", pc.SocketDir)
	q.Set("port", fmt.Sprint(pc.Port))
	q.Set("sslmode", "disable")
	q.Set("application_name", "pgnoded_exporter")
	u := url.URL{Scheme: "postgres", Path: "/" + pc.Database, RawQuery: q.Encode()}
	if su.Password != "" {
		u.User = url.UserPassword(su.Username, su.Password)
	} else {
		u.User = url.User(su.Username)
	}
	return u.String()
}

// run starts every component under one errgroup and handles signals until shutdown.
func (d *supervisor) run(ctx context.Context, cancel context.CancelFunc) int {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.pg.Run(gctx) })
	g.Go(func() error { return d.store.Run(gctx) })
	g.Go(func() error { return d.node.Run(gctx) })
	g.Go(func() error { return d.api.Run(gctx) })
	if d.exporter != nil {
		g.Go(func() error { return d.exporter.Run(gctx) })
	}
	g.Go(func() error { d.systemd(gctx); return nil })

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR2, syscall.SIGHUP)
	defer signal.Stop(sigs)

	exit := exitOK
loop:
	for {
		select {
		case <-gctx.Done():
			d.log.Error("a component stopped; shutting down", "error", context.Cause(gctx))
			exit = exitFailure
			break loop
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				d.reload()
				continue
			case syscall.SIGUSR2:
				d.log.Info("SIGUSR2: exiting, postgres keeps running and the lease is kept")
				d.shutdown(false)
			default:
				d.log.Info("stopping: postgres stops and leadership is handed over", "signal", s.String())
				d.shutdown(true)
			}
			break loop
		}
	}
	cancel()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		d.log.Error("shutdown", "error", err)
		if errors.Is(err, ha.ErrFatal) {
			exit = exitFailure
		}
	}
	if d.vip != nil {
		_ = d.vip.Close()
	}
	if d.fence != nil {
		_ = d.fence.Close()
	}
	d.log.Info("pgnoded stopped")
	return exit
}

// shutdown applies the HA loop's clean-stop order while postgres and etcd clients still run.
func (d *supervisor) shutdown(stopPostgres bool) {
	d.notify.stopping()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	if err := d.node.Shutdown(ctx, stopPostgres); err != nil {
		d.log.Error("clean shutdown incomplete", "error", err)
	}
}

// reload re-reads the configuration file (SIGHUP, POST /reload): its
// postgresql.parameters go to the HA loop, which rewrites postgres'
// configuration and reloads it. Other local settings apply at the next restart
// of pgnoded; dynamic ones come from the config key.
func (d *supervisor) reload() {
	d.notify.reloading()
	defer d.notify.ready()
	cfg, warnings, err := config.Load(d.path, os.Environ())
	if err != nil {
		d.log.Error("reload: configuration rejected, keeping the running one", "error", err)
		return
	}
	for _, w := range warnings {
		d.log.Warn("reload", "warning", w.String())
	}
	d.log.Info("reload: configuration file re-read; postgres parameters are reloaded, other local settings apply at the next restart")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.pg.SetLocalParameters(ctx, cfg.PostgreSQL.Parameters); err != nil {
		d.log.Error("reload: postgres parameters not applied", "error", err)
		return
	}
	d.node.Reload(cfg.PostgreSQL.Parameters)
}

// systemd sends READY once the API listens and the HA loop has decided a role
// (polled at startup only), then, when systemd watches us (WatchdogSec), pats
// the watchdog at a quarter of its period while the HA loop keeps completing
// cycles. Without a watchdog an idle daemon has nothing to do here.
func (d *supervisor) systemd(ctx context.Context) {
	ready := time.NewTicker(250 * time.Millisecond)
	defer ready.Stop()
	for s := d.node.Snapshot(); s.LastLoop.IsZero(); s = d.node.Snapshot() {
		select {
		case <-ctx.Done():
			return
		case <-ready.C:
		}
	}
	ready.Stop()
	d.notify.ready()
	d.log.Info("ready", "role", string(d.node.Snapshot().Role), "rest_api", d.api.Addr())
	if d.notify.watchdog <= 0 {
		return
	}
	tick := time.NewTicker(max(d.notify.watchdog/4, 100*time.Millisecond))
	defer tick.Stop()
	for {
		// A hung HA loop stops completing cycles: stop patting so systemd restarts us.
		if s := d.node.Snapshot(); time.Since(s.LastLoop) < 2*s.TTL+s.LoopWait {
			d.notify.pat()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
