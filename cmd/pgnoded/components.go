package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/fence"
	"github.com/pgnoded/pgnoded/internal/proc"
	"github.com/pgnoded/pgnoded/internal/vip"
)

// fenceIdleExit is how long a disarmed guard with no client waits before exiting.
const fenceIdleExit = 10 * time.Second

// procConfig maps the postgresql section onto internal/proc's Config.
func procConfig(c *config.Config, log *slog.Logger) proc.Config {
	pg := c.PostgreSQL
	_, port := c.PGHostPort()
	rewind := c.RewindUser()
	return proc.Config{
		Name:              c.Name,
		Scope:             c.Scope,
		DataDir:           pg.DataDir,
		ConfigDir:         pg.ConfigDir,
		BinDir:            pg.BinDir,
		ListenAddresses:   c.PGListenAddresses(),
		Port:              port,
		Database:          pg.Database,
		Superuser:         proc.Credentials{Username: pg.Authentication.Superuser.Username, Password: pg.Authentication.Superuser.Password},
		Replication:       proc.Credentials{Username: pg.Authentication.Replication.Username, Password: pg.Authentication.Replication.Password},
		Rewind:            proc.Credentials{Username: rewind.Username, Password: rewind.Password},
		PgPass:            pg.PgPass,
		Parameters:        pg.Parameters,
		PgHBA:             pg.PgHBA,
		PgIdent:           pg.PgIdent,
		InitdbOptions:     optionList(c.Bootstrap.InitDB),
		BasebackupOptions: optionList(pg.Basebackup),
		ReplicaMethods:    replicaMethods(pg),
		MethodSections:    methodSections(pg),
		BootstrapMethod:   bootstrapMethod(c.Bootstrap),
		PostBootstrap:     splitCommand(c.Bootstrap.PostBootstrap),
		OSUser:            c.PGNoded.OSUser,
		PGCtlTimeout:      pg.PgCtlTimeout,
		LogMaxBytes:       c.PGNoded.PostgresLog.MaxSize,
		LogKeep:           c.PGNoded.PostgresLog.Keep,
		Logger:            log.With("component", "postgres"),
	}
}

// optionList turns parsed initdb/basebackup options back into Patroni's list form.
func optionList(opts config.Options) []any {
	out := make([]any, 0, len(opts))
	for _, o := range opts {
		if o.HasValue {
			out = append(out, map[string]any{o.Name: o.Value})
		} else {
			out = append(out, o.Name)
		}
	}
	return out
}

// vipConfig maps the vip section; nil when the VIP is disabled.
func vipConfig(c *config.Config, log *slog.Logger) (*vip.Config, error) {
	if !c.VIP.Enabled {
		return nil, nil
	}
	host, _ := c.ConnectHostPort()
	ip := net.ParseIP(host)
	if ip == nil && c.VIP.Interface == "" {
		addrs, err := net.LookupIP(host)
		if err != nil || len(addrs) == 0 {
			return nil, fmt.Errorf("vip.interface is auto but postgresql.connect_address host %q does not resolve: %v", host, err)
		}
		ip = addrs[0]
	}
	return &vip.Config{
		Address:     c.VIP.Address,
		Interface:   c.VIP.Interface,
		LocalIP:     ip,
		ARPCount:    c.VIP.ARPCount,
		ARPInterval: c.VIP.ARPInterval,
		Logger:      log.With("component", "vip"),
	}, nil
}

// fenceSpawnConfig describes the guard process for this data directory.
// When the VIP is managed, the guard is told to release it when it fences: a
// node whose pgnoded died must not keep answering ARP for the cluster address.
func fenceSpawnConfig(c *config.Config, vc *vip.Config, log *slog.Logger) fence.SpawnConfig {
	dataDir := filepath.Clean(c.PostgreSQL.DataDir)
	logFile := filepath.Join(filepath.Dir(dataDir), "pgnoded-fence.log")
	if c.Log.Dir != "" {
		logFile = filepath.Join(c.Log.Dir, "pgnoded-fence.log")
	}
	return fence.SpawnConfig{
		Socket:  fence.DefaultSocketPath(dataDir),
		DataDir: dataDir,
		LogFile: logFile,
		// A guard left disarmed with no pgnoded connected (after a clean stop)
		// exits instead of lingering in the systemd unit's cgroup (KillMode=process
		// never kills it); an armed guard never exits on its own.
		IdleExit:   fenceIdleExit,
		Logger:     log.With("component", "fence"),
		Release:    fenceRelease(vc),
		Executable: fence.SiblingGuardBinary(), // "" runs `pgnoded fence-guard`
	}
}

func fenceRelease(vc *vip.Config) fence.Release {
	if vc == nil {
		return fence.Release{}
	}
	r := fence.Release{Address: vc.Address, Interface: vc.Interface}
	if vc.LocalIP != nil {
		r.LocalIP = vc.LocalIP.String()
	}
	return r
}

// releaseVIP is the guard's OnFence: take the VIP off this node.
func releaseVIP(ctx context.Context, r fence.Release) error {
	return vip.Release(ctx, r.Address, r.Interface, r.LocalIP)
}
