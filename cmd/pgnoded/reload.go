package main

import (
	"context"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/peers"
)

// reloadBudget bounds the postgres-side steps of a reload (they wait for a
// running postgres operation to finish).
const reloadBudget = 30 * time.Second

// scheduleReload asks the signal loop for a reload (POST /reload); it never
// blocks, and requests made while one is pending are merged into it.
func (d *supervisor) scheduleReload() {
	select {
	case d.reloadCh <- struct{}{}:
	default:
	}
}

// reload re-reads the configuration file (SIGHUP, POST /reload) and applies
// what Patroni's reload applies: tags (the published snapshot changes at
// once), postgresql.parameters, pg_hba and pg_ident (postgres is reloaded),
// the REST API's authentication, allowlist, certificates and client
// verification, the peer client's credentials and TLS, and log.level.
// Beyond Patroni, a change of etcd3.hosts is applied to the running etcd
// client, keeping the lease and the leader key. Every other changed key is
// logged as needing a restart of pgnoded. A file that does not load changes
// nothing.
func (d *supervisor) reload() {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
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
	old := d.cfg
	applied := []string{}

	if cfg.Log.Level != old.Log.Level {
		d.level.Set(parseLevel(cfg.Log.Level))
		applied = append(applied, "log.level")
	}
	if !reflect.DeepEqual(cfg.EffectiveTags(), old.EffectiveTags()) {
		d.node.SetTags(cfg.EffectiveTags())
		applied = append(applied, "tags")
	}
	restart, err := d.api.Reload(restAPIConfig(cfg, d.log))
	if err != nil {
		d.log.Error("reload: REST API settings not applied, keeping the running ones", "error", err)
	} else {
		applied = append(applied, "restapi")
	}
	if ps := peers.SettingsFrom(cfg); ps != d.peers.Settings() {
		if err := d.peers.Apply(ps); err != nil {
			d.log.Error("reload: peer client settings not applied, keeping the running ones", "error", err)
		} else {
			applied = append(applied, "peer client (ctl/restapi credentials and TLS)")
		}
	}
	if hc := hookCommands(cfg); !reflect.DeepEqual(hc, hookCommands(old)) {
		if err := d.hooks.SetCommands(hc); err != nil {
			d.log.Error("reload: callbacks and hook scripts not changed", "error", err)
		} else {
			applied = append(applied, "postgresql.callbacks, pre_promote, before_stop")
		}
	}
	if eps := cfg.EtcdEndpoints(); !slices.Equal(eps, old.EtcdEndpoints()) && etcdSecurityEqual(cfg, old) {
		d.store.SetEndpoints(eps)
		applied = append(applied, "etcd3 hosts")
	}
	restart = append(restart, restartKeys(old, cfg)...)

	ctx, cancel := context.WithTimeout(context.Background(), reloadBudget)
	defer cancel()
	pgOK := true
	if err := d.pg.SetLocalParameters(ctx, cfg.PostgreSQL.Parameters); err != nil {
		d.log.Error("reload: postgres parameters not applied", "error", err)
		pgOK = false
	}
	if err := d.pg.SetAccessFiles(ctx, cfg.PostgreSQL.PgHBA, cfg.PostgreSQL.PgIdent); err != nil {
		d.log.Error("reload: pg_hba/pg_ident not applied", "error", err)
		pgOK = false
	}
	if pgOK {
		applied = append(applied, "postgresql parameters, pg_hba, pg_ident")
		d.node.Reload(cfg.PostgreSQL.Parameters)
	}
	// Keys that need a restart keep their running value, so the next reload compares against it.
	d.cfg = keepRunning(old, cfg)
	d.log.Info("reload: configuration file re-read", "applied", applied)
	if len(restart) > 0 {
		d.log.Warn("reload: changed settings need a restart of pgnoded to take effect", "keys", restart)
	}
}

// restartKeys lists the keys that differ between old and cfg and that only a
// restart of pgnoded applies.
func restartKeys(old, cfg *config.Config) []string {
	var out []string
	for _, k := range restartOnly {
		if !reflect.DeepEqual(k.get(old), k.get(cfg)) {
			out = append(out, k.key)
		}
	}
	if !slices.Equal(old.EtcdEndpoints(), cfg.EtcdEndpoints()) && !etcdSecurityEqual(cfg, old) {
		out = append(out, "etcd3.hosts (changed with the credentials or TLS)")
	}
	return out
}

// etcdSecurityEqual reports whether the etcd credentials and TLS files are unchanged.
func etcdSecurityEqual(a, b *config.Config) bool {
	ea, eb := a.Etcd3, b.Etcd3
	return ea.Username == eb.Username && ea.Password == eb.Password && ea.CACert == eb.CACert &&
		ea.Cert == eb.Cert && ea.Key == eb.Key && ea.Protocol == eb.Protocol
}

// restartOnly are the settings a running pgnoded keeps until it restarts.
var restartOnly = []struct {
	key string
	get func(*config.Config) any
}{
	{"scope", func(c *config.Config) any { return c.Scope }},
	{"name", func(c *config.Config) any { return c.Name }},
	{"namespace", func(c *config.Config) any { return c.Namespace }},
	{"restapi.connect_address", func(c *config.Config) any { return c.RESTAPI.ConnectAddress }},
	{"etcd3.username/password", func(c *config.Config) any { return [2]string{c.Etcd3.Username, c.Etcd3.Password} }},
	{"etcd3.cacert/cert/key", func(c *config.Config) any { return [3]string{c.Etcd3.CACert, c.Etcd3.Cert, c.Etcd3.Key} }},
	{"etcd3.protocol", func(c *config.Config) any { return c.Etcd3.Protocol }},
	{"postgresql.listen", func(c *config.Config) any { return c.PostgreSQL.Listen }},
	{"postgresql.connect_address", func(c *config.Config) any { return c.PostgreSQL.ConnectAddress }},
	{"postgresql.data_dir", func(c *config.Config) any { return c.PostgreSQL.DataDir }},
	{"postgresql.config_dir", func(c *config.Config) any { return c.PostgreSQL.ConfigDir }},
	{"postgresql.bin_dir", func(c *config.Config) any { return c.PostgreSQL.BinDir }},
	{"postgresql.bin_name", func(c *config.Config) any { return c.PostgreSQL.BinName }},
	{"postgresql.pgpass", func(c *config.Config) any { return c.PostgreSQL.PgPass }},
	{"postgresql.database", func(c *config.Config) any { return c.PostgreSQL.Database }},
	{"postgresql.authentication", func(c *config.Config) any { return c.PostgreSQL.Authentication }},
	{"postgresql.pg_ctl_timeout", func(c *config.Config) any { return c.PostgreSQL.PgCtlTimeout }},
	{"postgresql.use_pg_rewind", func(c *config.Config) any { return c.PostgreSQL.UsePgRewind }},
	{"postgresql.remove_data_directory_on_*", func(c *config.Config) any {
		return [2]bool{c.PostgreSQL.RemoveDataDirectoryOnRewindFailure, c.PostgreSQL.RemoveDataDirectoryOnDivergedTimelines}
	}},
	{"log.type/dir/file_size/file_num", func(c *config.Config) any {
		return [4]any{c.Log.Type, c.Log.Dir, c.Log.FileSize, c.Log.FileNum}
	}},
	{"vip", func(c *config.Config) any { return c.VIP }},
	{"exporter (other than config, config_search, env_file)", func(c *config.Config) any {
		x := c.Exporter // the collector file is reloaded by reloadExporter
		x.Config, x.ConfigSearch, x.EnvFile = "", nil, ""
		return x
	}},
	{"pgnoded", func(c *config.Config) any { return c.PGNoded }},
}

// keepRunning is cfg with the running values of the settings that need a restart.
func keepRunning(old, cfg *config.Config) *config.Config {
	next := *cfg
	next.Scope, next.Name, next.Namespace = old.Scope, old.Name, old.Namespace
	next.RESTAPI.Listen, next.RESTAPI.ConnectAddress = old.RESTAPI.Listen, old.RESTAPI.ConnectAddress
	if !etcdSecurityEqual(cfg, old) {
		next.Etcd3 = old.Etcd3
	}
	params, hba, ident := cfg.PostgreSQL.Parameters, cfg.PostgreSQL.PgHBA, cfg.PostgreSQL.PgIdent
	next.PostgreSQL = old.PostgreSQL
	next.PostgreSQL.Parameters, next.PostgreSQL.PgHBA, next.PostgreSQL.PgIdent = params, hba, ident
	next.PostgreSQL.Callbacks, next.PostgreSQL.PrePromote, next.PostgreSQL.BeforeStop = cfg.PostgreSQL.Callbacks, cfg.PostgreSQL.PrePromote, cfg.PostgreSQL.BeforeStop
	next.Log.Type, next.Log.Dir, next.Log.FileSize, next.Log.FileNum = old.Log.Type, old.Log.Dir, old.Log.FileSize, old.Log.FileNum
	next.VIP, next.Exporter, next.PGNoded = old.VIP, old.Exporter, old.PGNoded
	return &next
}
