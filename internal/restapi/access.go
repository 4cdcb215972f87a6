package restapi

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// access is Patroni's access check for the unsafe endpoints (api.py
// RestApiServer.check_access): source-address allowlist (403) → client
// certificate (403) → Basic auth (401).
type access struct {
	log            *slog.Logger
	restricted     bool           // an allowlist is configured: everything else is rejected
	allow          []netip.Prefix // resolved restapi.allowlist
	includeMembers bool
	certRequired   bool   // HTTPS with verify_client optional/required
	authKey        []byte // base64("user:password"); nil: no Basic auth

	resolver *hostCache
}

const realmHeader = `Basic realm="Patroni"`

func newAccess(cfg Config) *access {
	a := &access{
		log:            cfg.Logger,
		restricted:     len(cfg.Allowlist) > 0 || cfg.AllowlistIncludeMembers,
		includeMembers: cfg.AllowlistIncludeMembers,
		certRequired:   cfg.TLS.Enabled() && cfg.TLS.VerifyClient != VerifyNone,
		resolver:       &hostCache{ttl: 10 * time.Second, entries: map[string]hostEntry{}},
	}
	if cfg.Auth.Username != "" || cfg.Auth.Password != "" {
		a.authKey = []byte(base64.StdEncoding.EncodeToString([]byte(cfg.Auth.Username + ":" + cfg.Auth.Password)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, entry := range cfg.Allowlist {
		prefixes, err := resolveAllowEntry(ctx, entry)
		if err != nil {
			// Patroni logs and skips the entry; the list stays restrictive (fail closed).
			cfg.Logger.Error("restapi allowlist entry ignored", "entry", entry, "err", err)
			continue
		}
		a.allow = append(a.allow, prefixes...)
	}
	return a
}

// resolveAllowEntry turns an allowlist entry (CIDR, IP or hostname) into prefixes.
func resolveAllowEntry(ctx context.Context, entry string) ([]netip.Prefix, error) {
	entry = strings.TrimSpace(entry)
	if strings.Contains(entry, "/") {
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return nil, err
		}
		return []netip.Prefix{p.Masked()}, nil
	}
	if ip, err := netip.ParseAddr(entry); err == nil {
		return []netip.Prefix{netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())}, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", entry)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, ip := range addrs {
		out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
	}
	return out, nil
}

// check returns a non-zero status and text when the request is refused.
// memberURLs lists the members' api_url (used when allowlist_include_members).
func (a *access) check(r *http.Request, memberURLs []string) (int, string) {
	if a.restricted && !a.allowed(r, memberURLs) {
		return http.StatusForbidden, "Access is denied"
	}
	if a.certRequired && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0) {
		return http.StatusForbidden, "client certificate required"
	}
	if a.authKey != nil {
		h, present := r.Header["Authorization"]
		if !present || len(h) == 0 {
			return http.StatusUnauthorized, "no auth header received"
		}
		got, isBasic := strings.CutPrefix(h[0], "Basic ")
		if !isBasic || subtle.ConstantTimeCompare([]byte(got), a.authKey) != 1 {
			return http.StatusUnauthorized, "not authenticated"
		}
	}
	return 0, ""
}

func (a *access) allowed(r *http.Request, memberURLs []string) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range a.allow {
		if p.Contains(ip) {
			return true
		}
	}
	if !a.includeMembers {
		return false
	}
	for _, raw := range memberURLs {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			continue
		}
		for _, m := range a.resolver.lookup(r.Context(), u.Hostname(), a.log) {
			if m == ip {
				return true
			}
		}
	}
	return false
}

// hostCache resolves member hostnames for allowlist_include_members. Patroni
// re-resolves per request; pgnoded caches answers briefly so an unsafe request
// costs at most one bounded lookup per host and health checks never resolve.
type hostCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]hostEntry
}

type hostEntry struct {
	addrs []netip.Addr
	at    time.Time
}

func (c *hostCache) lookup(ctx context.Context, host string, log *slog.Logger) []netip.Addr {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}
	}
	c.mu.Lock()
	e, ok := c.entries[host]
	c.mu.Unlock()
	if ok && time.Since(e.at) < c.ttl {
		return e.addrs
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		log.Warn("restapi: cannot resolve member host for the allowlist", "host", host, "err", err)
		return nil
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	c.mu.Lock()
	c.entries[host] = hostEntry{addrs: addrs, at: time.Now()}
	c.mu.Unlock()
	return addrs
}
