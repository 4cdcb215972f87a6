package config

import (
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Limits pgnoded puts on the timing values. They are lower than Patroni's
// (ttl >= 20, retry_timeout >= 3) because pgnoded is meant to run with ttl 3.
const (
	MinTTL          = 2
	MinLoopWait     = 1
	MinRetryTimeout = 1
)

// reservedName is a member name Patroni reserves for itself.
const reservedName = "__patroni_strict_sync_replica_placeholder__"

// where is the position of key, or of its nearest written ancestor, or the first source.
func (c *Config) where(key string) Position {
	for k := key; k != ""; {
		if p, ok := c.pos[k]; ok {
			return p
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return Position{File: c.origin}
}

// has reports whether key was written in the configuration (file or environment).
func (c *Config) has(key string) bool { _, ok := c.pos[key]; return ok }

func (c *Config) errorf(p *problems, key, format string, args ...any) {
	p.errorf(c.where(key), key, format, args...)
}

// hasErr reports whether an error was already recorded for key or below it.
func (p *problems) hasErr(key string) bool {
	for _, e := range p.errs {
		if e.Key == key || strings.HasPrefix(e.Key, key+".") || strings.HasPrefix(e.Key, key+"[") {
			return true
		}
	}
	return false
}

// check validates the decoded configuration: required keys, address formats,
// enumerations, the timing rule and pgnoded's own sections.
func check(c *Config, p *problems) {
	checkRequired(c, p)
	checkAddresses(c, p)
	checkEtcd(c, p)
	checkEnums(c, p)
	checkTiming(c, p)
	checkPostgres(c, p)
	checkVIP(c, p)
	checkPGNoded(c, p)
}

func checkRequired(c *Config, p *problems) {
	required := []struct {
		key string
		val string
	}{
		{"scope", c.Scope}, {"name", c.Name},
		{"restapi.listen", c.RESTAPI.Listen}, {"restapi.connect_address", c.RESTAPI.ConnectAddress},
		{"postgresql.listen", c.PostgreSQL.Listen}, {"postgresql.connect_address", c.PostgreSQL.ConnectAddress},
		{"postgresql.data_dir", c.PostgreSQL.DataDir},
	}
	for _, r := range required {
		switch {
		case p.hasErr(r.key):
		case !c.has(r.key):
			c.errorf(p, r.key, "required key is missing")
		case strings.TrimSpace(r.val) == "":
			c.errorf(p, r.key, "must not be empty")
		}
	}
	if c.Name == reservedName {
		c.errorf(p, "name", "%q is reserved by Patroni", reservedName)
	}
}

func checkAddresses(c *Config, p *problems) {
	addr := func(key, val string, needHost bool) {
		if val == "" || p.hasErr(key) {
			return
		}
		if _, _, err := splitHostPort(val, needHost); err != nil {
			c.errorf(p, key, "expected \"host:port\", got %q (%v)", val, err)
		}
	}
	addr("restapi.listen", c.RESTAPI.Listen, false)
	addr("restapi.connect_address", c.RESTAPI.ConnectAddress, true)
	addr("postgresql.connect_address", c.PostgreSQL.ConnectAddress, true)
	addr("postgresql.proxy_address", c.PostgreSQL.ProxyAddress, true)
	addr("exporter.listen", c.Exporter.Listen, false)
	if l := c.PostgreSQL.Listen; l != "" && !p.hasErr("postgresql.listen") {
		if _, _, err := splitListen(l); err != nil {
			c.errorf(p, "postgresql.listen", "expected \"host:port\", got %q (%v; the host part may be a comma-separated list)", l, err)
		}
	}
}

func checkEtcd(c *Config, p *problems) {
	e := c.Etcd3
	if e.Host == "" && len(e.Hosts) == 0 && e.URL == "" {
		if !c.has("etcd") && !slices.ContainsFunc(unsupportedDCS, c.has) && !p.hasErr("etcd3") {
			c.errorf(p, "etcd3", "one of etcd3.host, etcd3.hosts or etcd3.url is required")
		}
		return
	}
	if e.Protocol != "http" && e.Protocol != "https" {
		c.errorf(p, "etcd3.protocol", "expected http or https, got %q", e.Protocol)
	}
	if e.URL != "" {
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.errorf(p, "etcd3.url", "expected a URL like https://10.0.0.1:2379, got %q", e.URL)
		}
	}
	checkEtcdHost := func(key, h string) {
		if strings.Contains(h, "://") {
			if u, err := url.Parse(h); err != nil || u.Host == "" {
				c.errorf(p, key, "expected host[:port] or a URL, got %q", h)
			}
			return
		}
		if _, err := etcdHostPort(h); err != nil {
			c.errorf(p, key, "expected host[:port], got %q (%v)", h, err)
		}
	}
	if e.Host != "" {
		checkEtcdHost("etcd3.host", e.Host)
	}
	for _, h := range e.Hosts {
		checkEtcdHost("etcd3.hosts", h)
	}
}

func checkEnums(c *Config, p *problems) {
	switch c.RESTAPI.VerifyClient {
	case "", "none":
	case "optional", "required":
		if c.RESTAPI.CAFile == "" {
			c.errorf(p, "restapi.verify_client", "%s needs restapi.cafile to verify client certificates", c.RESTAPI.VerifyClient)
		}
	default:
		c.errorf(p, "restapi.verify_client", "expected none, optional or required, got %q", c.RESTAPI.VerifyClient)
	}
	if c.RESTAPI.KeyFile != "" && c.RESTAPI.CertFile == "" {
		c.errorf(p, "restapi.keyfile", "set without restapi.certfile")
	}
	switch strings.ToUpper(c.Log.Level) {
	case "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL":
	default:
		c.errorf(p, "log.level", "expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got %q", c.Log.Level)
	}
	if c.Log.Type != "plain" && c.Log.Type != "json" {
		c.errorf(p, "log.type", "expected plain or json, got %q", c.Log.Type)
	}
	switch c.Watchdog.Mode {
	case "off", "automatic", "required":
	default:
		c.errorf(p, "watchdog.mode", "expected off, automatic or required, got %q", c.Watchdog.Mode)
	}
}

// checkTiming applies pgnoded's minimums and loop_wait + 2*retry_timeout <= ttl.
func checkTiming(c *Config, p *problems) {
	const pre = "bootstrap.dcs."
	if p.hasErr(pre+"ttl") || p.hasErr(pre+"loop_wait") || p.hasErr(pre+"retry_timeout") {
		return
	}
	dyn := c.Bootstrap.Dynamic
	ok := true
	minimum := func(key string, v, lowest int) {
		if v < lowest {
			c.errorf(p, pre+key, "must be at least %d, got %d", lowest, v)
			ok = false
		}
	}
	minimum("ttl", dyn.TTL, MinTTL)
	minimum("loop_wait", dyn.LoopWait, MinLoopWait)
	minimum("retry_timeout", dyn.RetryTimeout, MinRetryTimeout)
	if !ok || dyn.LoopWait+2*dyn.RetryTimeout <= dyn.TTL {
		return
	}
	key := pre + "ttl"
	for _, k := range []string{"ttl", "loop_wait", "retry_timeout"} {
		if c.has(pre + k) {
			key = pre + k
			break
		}
	}
	p.errorf(c.where(key), "bootstrap.dcs",
		"timing rule loop_wait + 2*retry_timeout <= ttl is broken: loop_wait (%d) + 2*retry_timeout (%d) = %d > ttl (%d)",
		dyn.LoopWait, dyn.RetryTimeout, dyn.LoopWait+2*dyn.RetryTimeout, dyn.TTL)
}

func checkPostgres(c *Config, p *problems) {
	pg := c.PostgreSQL
	if pg.PgCtlTimeout <= 0 && !p.hasErr("postgresql.pg_ctl_timeout") {
		c.errorf(p, "postgresql.pg_ctl_timeout", "must be positive, got %s", pg.PgCtlTimeout)
	}
	if pg.Authentication.Replication.Username == "" && c.has("postgresql") {
		p.warnf(c.where("postgresql.authentication.replication.username"), "postgresql.authentication.replication.username",
			"not set; replicas cannot be cloned or stream")
	}
	for _, m := range pg.CreateReplicaMethods {
		if m == "basebackup" {
			continue
		}
		key := "postgresql.create_replica_methods"
		if _, ok := pg.ReplicaMethods[m]; ok {
			key = "postgresql." + m
		}
		section, _ := pg.ReplicaMethods[m].(map[string]any)
		if cmd, _ := section["command"].(string); cmd == "" {
			c.errorf(p, key, "create_replica_methods lists %q but postgresql.%s.command is not set", m, m)
		}
	}
	// A section with a command is a method standby_cluster.create_replica_methods
	// may name (a dynamic setting) even when create_replica_methods does not.
	for key, v := range pg.ReplicaMethods {
		section, _ := v.(map[string]any)
		if section["command"] == nil && !slices.Contains(pg.CreateReplicaMethods, key) && !hasRule("postgresql."+key) {
			p.warnf(c.where("postgresql."+key), "postgresql."+key, "unknown key, ignored")
		}
	}
	b := c.Bootstrap
	for key := range b.Methods {
		if key != b.Method {
			p.warnf(c.where("bootstrap."+key), "bootstrap."+key, "unknown key, ignored")
		}
	}
	// bootstrap.method without its command is refused by the key table.
}

func checkVIP(c *Config, p *problems) {
	v := &c.VIP
	switch {
	case p.hasErr("vip.address"):
	case v.Address != "":
		prefix, err := netip.ParsePrefix(strings.TrimSpace(v.Address))
		if err != nil {
			c.errorf(p, "vip.address", "expected an address with a prefix length (CIDR) like 10.10.10.2/24, got %q", v.Address)
		} else {
			v.Prefix = prefix
		}
	case v.Enabled:
		c.errorf(p, "vip.address", "required when vip.enabled is true")
	}
	if v.ARPCount < 0 {
		c.errorf(p, "vip.arp_count", "must not be negative, got %d", v.ARPCount)
	}
	if v.ARPInterval <= 0 && !p.hasErr("vip.arp_interval") {
		c.errorf(p, "vip.arp_interval", "must be positive, got %s", v.ARPInterval)
	}
}

func checkPGNoded(c *Config, p *problems) {
	n := &c.PGNoded
	switch strings.TrimSpace(string(n.Compat)) {
	case "3.0.2", "3":
		n.Compat = cluster.Compat302
	case "4.1.4", "4":
		n.Compat = cluster.Compat4
	default:
		c.errorf(p, "pgnoded.compat", "expected \"3.0.2\" or \"4.1.4\", got %q", n.Compat)
	}
	if strings.TrimSpace(n.OSUser) == "" {
		c.errorf(p, "pgnoded.os_user", "must not be empty")
	}
	if n.PostgresLog.MaxSize < 0 && !p.hasErr("pgnoded.postgres_log.max_size") {
		c.errorf(p, "pgnoded.postgres_log.max_size", "must not be negative (0 turns rotation off), got %d", n.PostgresLog.MaxSize)
	}
	if n.PostgresLog.Keep < 1 && !p.hasErr("pgnoded.postgres_log.keep") {
		c.errorf(p, "pgnoded.postgres_log.keep", "must be at least 1, got %d", n.PostgresLog.Keep)
	}
	m := n.Fence.Margin
	switch {
	case p.hasErr("pgnoded.fence.margin"):
	case m < 0:
		c.errorf(p, "pgnoded.fence.margin", "must not be negative, got %s", m)
	case m > 0 && m >= c.Bootstrap.Dynamic.TTLDuration():
		c.errorf(p, "pgnoded.fence.margin", "must be shorter than bootstrap.dcs.ttl (%s), got %s",
			c.Bootstrap.Dynamic.TTLDuration(), m)
	}
}
