package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Position returns where key (a dotted path such as "postgresql.listen") was
// written, or where its nearest written parent section was.
func (c *Config) Position(key string) Position { return c.where(key) }

// IsSet reports whether key (a dotted path) was written in the file or the environment.
func (c *Config) IsSet(key string) bool { return c.has(key) }

// PGListenAddresses is postgresql.listen's host part as postgres's listen_addresses value.
func (c *Config) PGListenAddresses() string {
	hosts, _, _ := splitListen(c.PostgreSQL.Listen)
	return strings.Join(hosts, ",")
}

// PGHostPort is the TCP address for local connections to postgres: the first
// host of postgresql.listen (a wildcard becomes the loopback address) and its port.
func (c *Config) PGHostPort() (host string, port int) {
	hosts, port, _ := splitListen(c.PostgreSQL.Listen)
	if len(hosts) > 0 {
		host = hosts[0]
	}
	switch host {
	case "", "*", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return host, port
}

// ConnectHostPort is postgresql.connect_address split into host and port.
func (c *Config) ConnectHostPort() (host string, port int) {
	host, port, _ = splitHostPort(c.PostgreSQL.ConnectAddress, false)
	return host, port
}

// RESTListen is restapi.listen as an address for net.Listen ("*" means all interfaces).
func (c *Config) RESTListen() string {
	host, port, err := splitHostPort(c.RESTAPI.Listen, false)
	if err != nil {
		return c.RESTAPI.Listen
	}
	if host == "*" {
		host = ""
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// RESTTLS reports whether the REST API serves HTTPS (restapi.certfile is set).
func (c *Config) RESTTLS() bool { return c.RESTAPI.CertFile != "" }

// APIURL is the member's api_url: http(s)://<restapi.connect_address>/patroni.
func (c *Config) APIURL() string {
	scheme := "http"
	if c.RESTTLS() {
		scheme = "https"
	}
	return scheme + "://" + c.RESTAPI.ConnectAddress + "/patroni"
}

// ConnURL is the member's conn_url: postgres://<postgresql.connect_address>/<database>.
func (c *Config) ConnURL() string {
	return "postgres://" + c.PostgreSQL.ConnectAddress + "/" + c.PostgreSQL.Database
}

// EtcdEndpoints are the etcd client URLs: etcd3.hosts, else etcd3.url, else
// etcd3.host, each with etcd3.protocol and the default port 2379 when missing.
func (c *Config) EtcdEndpoints() []string {
	e := c.Etcd3
	withScheme := func(h string) string {
		if strings.Contains(h, "://") {
			return strings.TrimRight(h, "/")
		}
		hp, err := etcdHostPort(h)
		if err != nil {
			hp = h
		}
		return e.Protocol + "://" + hp
	}
	var out []string
	switch {
	case len(e.Hosts) > 0:
		for _, h := range e.Hosts {
			out = append(out, withScheme(h))
		}
	case e.URL != "":
		out = []string{strings.TrimRight(e.URL, "/")}
	case e.Host != "":
		out = []string{withScheme(e.Host)}
	}
	return out
}

// EffectiveTags are the tags published in the member key and the REST API,
// by Patroni's rule (cluster.PublishedTags): built-in boolean tags only when
// true (nofailover also when false if failover_priority is set, nosync if
// sync_priority is), failover_priority, sync_priority and replicatefrom when
// set, and every custom tag as written.
func (c *Config) EffectiveTags() map[string]any {
	t := c.Tags
	m := make(map[string]any, len(t.Custom)+8)
	for k, v := range t.Custom {
		m[k] = v
	}
	for name, on := range map[string]bool{
		cluster.TagNoFailover: t.NoFailover, cluster.TagNoLoadBalance: t.NoLoadBalance, cluster.TagCloneFrom: t.CloneFrom,
		cluster.TagNoSync: t.NoSync, cluster.TagNoStream: t.NoStream,
	} {
		if on || c.has("tags."+name) {
			m[name] = on
		}
	}
	if t.ReplicateFrom != "" {
		m[cluster.TagReplicateFrom] = t.ReplicateFrom
	}
	if t.FailoverPriority != nil {
		m[cluster.TagFailoverPriority] = *t.FailoverPriority
	}
	if t.SyncPriority != nil {
		m[cluster.TagSyncPriority] = *t.SyncPriority
	}
	if out := cluster.PublishedTags(m); out != nil {
		return out
	}
	return map[string]any{}
}

// NoFailover reports whether this node must never become primary
// (cluster.NoFailover): tags.nofailover when written, else failover_priority
// <= 0 when that is written.
func (c *Config) NoFailover() bool { return cluster.NoFailover(c.EffectiveTags()) }

// FailoverPriority is the node's priority in the leader race
// (cluster.FailoverPriority: default 1; 0 when nofailover).
func (c *Config) FailoverPriority() int { return cluster.FailoverPriority(c.EffectiveTags()) }

// CtlAuth is the credentials for calls to peers' REST APIs: ctl.authentication,
// or restapi.authentication when ctl has none (as patronictl does).
func (c *Config) CtlAuth() Auth {
	if c.Ctl.Authentication.Username != "" {
		return c.Ctl.Authentication
	}
	return c.RESTAPI.Authentication
}

// RewindUser is postgresql.authentication.rewind, or the superuser when no rewind user is set.
func (c *Config) RewindUser() PGUser {
	if c.PostgreSQL.Authentication.Rewind.Username != "" {
		return c.PostgreSQL.Authentication.Rewind
	}
	return c.PostgreSQL.Authentication.Superuser
}

// splitHostPort parses "host:port" (IPv6 hosts in brackets) with a port in 1..65535.
func splitHostPort(s string, needHost bool) (string, int, error) {
	host, p, err := net.SplitHostPort(strings.TrimSpace(s))
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", 0, errors.New(ae.Err)
		}
		return "", 0, err
	}
	port, err := parsePort(p)
	if err != nil {
		return "", 0, err
	}
	if needHost && host == "" {
		return "", 0, errors.New("host is empty")
	}
	return host, port, nil
}

// splitListen parses postgresql.listen, "host[,host2...]:port", as Patroni does:
// the port is after the last colon; brackets around IPv6 hosts are removed.
func splitListen(s string) ([]string, int, error) {
	s = strings.TrimSpace(s)
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return nil, 0, errors.New("missing port")
	}
	port, err := parsePort(s[i+1:])
	if err != nil {
		return nil, 0, err
	}
	var hosts []string
	for h := range strings.SplitSeq(s[:i], ",") {
		hosts = append(hosts, strings.Trim(strings.TrimSpace(h), "[]"))
	}
	return hosts, port, nil
}

func parsePort(p string) (int, error) {
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("port %q is not a number in 1..65535", p)
	}
	return port, nil
}

// etcdHostPort returns h as "host:port", adding etcd's default port when h has none.
func etcdHostPort(h string) (string, error) {
	h = strings.TrimSpace(h)
	if host, p, err := net.SplitHostPort(h); err == nil {
		if _, err := parsePort(p); err != nil {
			return "", err
		}
		if host == "" {
			return "", errors.New("host is empty")
		}
		return h, nil
	}
	host := strings.Trim(h, "[]")
	if host == "" || strings.ContainsAny(host, "/ ") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[") && net.ParseIP(host) == nil) {
		return "", errors.New("not a host name or address")
	}
	return net.JoinHostPort(host, DefaultEtcdPort), nil
}
