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
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pgnoded/pgnoded/internal/buildinfo"
	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/exporter"
	"github.com/pgnoded/pgnoded/internal/fence"
	"github.com/pgnoded/pgnoded/internal/ha"
	"github.com/pgnoded/pgnoded/internal/ha/dcs"
	"github.com/pgnoded/pgnoded/internal/hook"
	"github.com/pgnoded/pgnoded/internal/peers"
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
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	log := newLoggerVar(out, level, cfg.Log.Type == "json").With("member", cfg.Name)
	for _, w := range warnings {
		log.Warn("configuration", "warning", w.String())
	}
	log.Info("pgnoded starting", "version", buildinfo.Version, "scope", cfg.Scope, "config", strings.Join(cfg.Sources, ","), "pid", os.Getpid())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := build(ctx, cfg, log)
	if d != nil {
		d.path, d.level = path, level
	}
	if err != nil {
		log.Error("cannot start", "error", err)
		return exitFailure
	}
	return d.run(ctx, cancel)
}

// The etcd store is the HA loop's Store. The assertion lives here, where both
// are known: dcs does not import ha, so pgnodectl links dcs without the loop.
var (
	_ ha.Store           = (*dcs.Store)(nil)
	_ ha.RenewalNotifier = (*dcs.Store)(nil)
)

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
	peers    *peers.Client
	hooks    *hook.Runner
	notify   notifier

	// exporterStatus is shown on the REST API's /metrics (pgnoded_exporter_up),
	// so a busy exporter port is seen; nil when the exporter is disabled.
	exporterStatus *exporter.Status
	exporterPlan   exporterPlan // what the exporter was built from

	level    *slog.LevelVar // log.level, applied on reload
	reloadMu sync.Mutex     // one reload at a time
	reloadCh chan struct{}  // POST /reload: a reload for the signal loop (as Patroni's sighup_handler)
}

func build(ctx context.Context, cfg *config.Config, log *slog.Logger) (*supervisor, error) {
	d := &supervisor{cfg: cfg, log: log, notify: newNotifier(log), reloadCh: make(chan struct{}, 1)}
	var extraMetrics func([]byte) []byte
	if cfg.Exporter.Enabled {
		d.exporterStatus = &exporter.Status{}
		extraMetrics = d.exporterStatus.AppendMetrics
	}
	var err error
	if d.pg, err = proc.New(procConfig(cfg, log)); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	dcsCfg := dcs.Config{
		Endpoints: cfg.EtcdEndpoints(), Username: cfg.Etcd3.Username, Password: cfg.Etcd3.Password,
		TLS:      dcs.TLSFiles{CACert: cfg.Etcd3.CACert, Cert: cfg.Etcd3.Cert, Key: cfg.Etcd3.Key},
		BasePath: dcs.BasePath(cfg.Namespace, cfg.Scope), Name: cfg.Name,
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
	osCred, env := d.pg.RunAs()
	if d.hooks, err = hook.New(hookConfig(cfg, osCred, env, log)); err != nil {
		return nil, fmt.Errorf("callbacks: %w", err)
	}
	refusedConfig, warnedConfig := config.DynamicChecks(cfg.PGNoded.Compat)
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
		RefusedConfig:                    refusedConfig,
		WarnedConfig:                     warnedConfig,
		StartTimeout:                     cfg.PostgreSQL.PgCtlTimeout,
		Logger:                           log,
	}
	haCfg.CustomBootstrap = bootstrapMethod(cfg.Bootstrap) != nil
	haCfg.CloneWithoutLeader = proc.CanCloneWithoutLeader(replicaMethods(cfg.PostgreSQL))
	if cfg.PostgreSQL.UsePgRewind {
		v := true
		haCfg.UsePgRewind = &v
	}
	if d.peers, err = peers.New(peers.SettingsFrom(cfg), log.With("component", "peers")); err != nil {
		return nil, fmt.Errorf("peer client: %w", err)
	}
	d.node = ha.New(haCfg, ha.Deps{Postgres: d.pg, Store: d.store, VIP: vipDep, Fence: fenceDep,
		Peers: d.peers, Hooks: d.hooks})

	apiCfg := restAPIConfig(cfg, log)
	apiCfg.ExtraMetrics = extraMetrics // kept across reloads (Server.Reload keeps the rest of its config)
	if d.api, err = restapi.New(apiCfg, d.node, nodeActions{node: d.node, reload: d.scheduleReload}); err != nil {
		return nil, fmt.Errorf("rest api: %w", err)
	}
	if err := d.api.Listen(); err != nil {
		return nil, fmt.Errorf("rest api: listen on %s: %w", apiCfg.Listen, err)
	}
	if cfg.Exporter.Enabled {
		// Never fatal: the exporter's port and collector file are retried and
		// fall back, postgres and HA carry on (see buildExporter).
		d.buildExporter(cfg, localDSN(cfg, d.pg.Config()), log)
	}
	return d, nil
}

// restAPIConfig maps the restapi section onto internal/restapi's Config.
func restAPIConfig(cfg *config.Config, log *slog.Logger) restapi.Config {
	return restapi.Config{
		Listen: cfg.RESTListen(),
		TLS: restapi.TLSConfig{CertFile: cfg.RESTAPI.CertFile, KeyFile: cfg.RESTAPI.KeyFile,
			CAFile: cfg.RESTAPI.CAFile, VerifyClient: restapi.VerifyClient(cfg.RESTAPI.VerifyClient)},
		Auth:                    restapi.AuthConfig{Username: cfg.RESTAPI.Authentication.Username, Password: cfg.RESTAPI.Authentication.Password},
		Allowlist:               cfg.RESTAPI.Allowlist,
		AllowlistIncludeMembers: cfg.RESTAPI.AllowlistIncludeMembers,
		// /primary is 200 only while this node holds the leader key AND
		// postgres runs as primary (stricter than Patroni, never less safe).
		StrictPrimary: true,
		Logger:        log.With("component", "restapi"),
	}
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
	g.Go(func() error { trimAfterStartup(gctx, d.node.Snapshot, trimSettle, d.log); return nil })

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
		case <-d.reloadCh:
			d.reloadAll()
			continue
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				d.reloadAll()
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
		if errors.Is(err, ha.ErrConfigRefused) {
			fmt.Fprintf(os.Stderr, "pgnoded: %v\n", err)
			exit = exitConfig
		}
	}
	if d.vip != nil {
		_ = d.vip.Close()
	}
	if d.fence != nil {
		_ = d.fence.Close()
	}
	d.peers.Close()
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
	// Give a callback fired by the stop (on_stop) a moment; it is left running after that.
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	d.hooks.Close(hctx)
}

// hookCommands are postgresql.callbacks, pre_promote and before_stop.
func hookCommands(cfg *config.Config) hook.Commands {
	cb := cfg.PostgreSQL.Callbacks
	return hook.Commands{
		Callbacks: map[cluster.Callback]string{
			cluster.OnStart: cb.OnStart, cluster.OnStop: cb.OnStop, cluster.OnRestart: cb.OnRestart,
			cluster.OnReload: cb.OnReload, cluster.OnRoleChange: cb.OnRoleChange,
		},
		PrePromote: cfg.PostgreSQL.PrePromote, BeforeStop: cfg.PostgreSQL.BeforeStop,
	}
}

// hookConfig runs the scripts as the postgres OS user, with the role spelled per pgnoded.compat.
func hookConfig(cfg *config.Config, cred *syscall.Credential, env []string, log *slog.Logger) hook.Config {
	return hook.Config{Scope: cfg.Scope, Compat: cfg.PGNoded.Compat, Commands: hookCommands(cfg),
		Credential: cred, Env: env, Logger: log}
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
