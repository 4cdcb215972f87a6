package dcs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Defaults used when a Config field is zero (Patroni 3.0.2 defaults).
const (
	DefaultTTL              = 30 * time.Second
	DefaultRetryTimeout     = 10 * time.Second
	DefaultAutoSyncInterval = 60 * time.Second
)

// TLSFiles names the PEM files of etcd's client TLS (Patroni's cacert, cert, key).
type TLSFiles struct {
	CACert string
	Cert   string
	Key    string
}

// Config describes how to reach etcd and who this node is.
type Config struct {
	Endpoints []string // client URLs (http://h:p, https://h:p) or h:p
	Username  string
	Password  string
	TLS       TLSFiles
	// UseProxies keeps the given endpoints instead of discovering the cluster's
	// client URLs from its member list (Patroni's use_proxies).
	UseProxies bool

	BasePath     string        // "/<namespace>/<scope>", normalised by the caller, no trailing slash
	Name         string        // this member's name
	TTL          time.Duration // lease TTL (Patroni ttl); rounded up to whole seconds
	RetryTimeout time.Duration // budget of every etcd request (Patroni retry_timeout)

	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now

	watchStreams *watchStreamHook // set by New: the Store hears of each Watch stream opened
}

func (c *Config) setDefaults() {
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.RetryTimeout <= 0 {
		c.RetryTimeout = DefaultRetryTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports the first problem that makes the configuration unusable.
func (c *Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("dcs: no etcd endpoints")
	}
	if !strings.HasPrefix(c.BasePath, "/") || strings.HasSuffix(c.BasePath, "/") {
		return fmt.Errorf("dcs: base path %q must start with / and not end with /", c.BasePath)
	}
	if c.Name == "" || strings.Contains(c.Name, "/") {
		return fmt.Errorf("dcs: member name %q must be non-empty and contain no /", c.Name)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return errors.New("dcs: TLS cert and key must be given together")
	}
	return nil
}

// NewClient connects a clientv3 client as cfg describes (TLS, auth, keepalives
// derived from the TTL, endpoint discovery). With username/password it
// authenticates before returning (bounded by RetryTimeout), so bad credentials surface here.
func NewClient(cfg Config) (*clientv3.Client, error) {
	cfg.setDefaults()
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	cc := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.RetryTimeout,
		DialKeepAliveTime:    max(10*time.Second, cfg.TTL/2), // gRPC enforces >= 10s on clients
		DialKeepAliveTimeout: min(max(2*time.Second, cfg.TTL/4), 10*time.Second),
		PermitWithoutStream:  true,
		TLS:                  tlsCfg,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Logger:               zap.NewNop(),
		// Reconnect to a returning etcd within a second instead of gRPC's
		// default backoff, which grows to two minutes during a long outage.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: min(max(cfg.RetryTimeout/2, time.Second), 5*time.Second),
		}),
			// Fixed flow-control windows. gRPC's default sizes them from
			// bandwidth-delay probes: a PING after received data, answered
			// by etcd, so every keepalive answer and watch event cost a second
			// round trip and two more wake-ups of an idle node. A DCS prefix's
			// reads and events are kilobytes; 1 MiB windows never hold them up.
			// (etcd's server keeps its own probes: it still PINGs after data
			// we send, and the client answers those.)
			grpc.WithStaticStreamWindowSize(dcsWindow),
			grpc.WithStaticConnWindowSize(dcsWindow),
		},
	}
	if cfg.watchStreams != nil {
		cc.DialOptions = append(cc.DialOptions, grpc.WithChainStreamInterceptor(cfg.watchStreams.intercept))
	}
	if !cfg.UseProxies {
		cc.AutoSyncInterval = DefaultAutoSyncInterval
	}
	c, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("dcs: connect to etcd %v: %w", cfg.Endpoints, err)
	}
	return c, nil
}

// dcsWindow is the gRPC flow-control window per stream and per connection to etcd.
const dcsWindow = 1 << 20

// tlsConfig builds the client TLS config from the PEM files; nil when TLS is not used.
func tlsConfig(cfg Config) (*tls.Config, error) {
	https := false
	for _, ep := range cfg.Endpoints {
		if strings.HasPrefix(ep, "https://") {
			https = true
		}
	}
	if !https && cfg.TLS == (TLSFiles{}) {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS.CACert != "" {
		pem, err := os.ReadFile(cfg.TLS.CACert)
		if err != nil {
			return nil, fmt.Errorf("dcs: read etcd CA %s: %w", cfg.TLS.CACert, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("dcs: no certificates in etcd CA %s", cfg.TLS.CACert)
		}
		tc.RootCAs = pool
	}
	if cfg.TLS.Cert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("dcs: load etcd client cert %s: %w", cfg.TLS.Cert, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Timing derived from the TTL.

// keepaliveEvery is the lease renewal period: max(100ms, TTL/4).
func keepaliveEvery(ttl time.Duration) time.Duration { return max(100*time.Millisecond, ttl/4) }

// progressEvery is how often the watch checks that it was confirmed current
// lately, and asks etcd for a progress notification when it was not: min(2s, TTL/4).
func progressEvery(ttl time.Duration) time.Duration {
	return max(100*time.Millisecond, min(2*time.Second, ttl/4))
}

// watchHold is how long a confirmation of the watch's view keeps the
// watch's staleness check quiet. After an event, a progress notification or
// a read: 1.5 × progressEvery. After a lease keepalive answered by the
// watch's own etcd member (confirmKeepAlive): until the next keepalive's
// answer is due, keepaliveEvery + progressEvery/4, where that is longer
// (ttl above 10 s; 8 s at ttl 30), so keepalives alone keep an idle watch
// from asking for progress at any ttl. At ttl 10 s and below both are
// 1.5 × progressEvery, as the hold always was. An unconfirmed watch asks for
// progress and is given up 1.5 × progressEvery after its hold ran out
// (watchGiveUp): 3 × progressEvery after a short hold, 11 s after a
// keepalive at ttl 30.
func watchHold(ttl time.Duration, byKeepalive bool) time.Duration {
	every := progressEvery(ttl)
	if byKeepalive {
		return max(every+every/2, keepaliveEvery(ttl)+every/4)
	}
	return every + every/2
}

// watchGiveUp is how long past its hold an unconfirmed watch is given up
// and re-created: 1.5 × progressEvery, time for a progress request to be
// answered (and never sooner than 1 s after the last confirmation).
func watchGiveUp(ttl time.Duration) time.Duration {
	every := progressEvery(ttl)
	return every + every/2
}

// ttlSeconds rounds a TTL up to whole seconds (etcd leases are in seconds).
func ttlSeconds(ttl time.Duration) int64 {
	return max(1, int64((ttl+time.Second-1)/time.Second))
}
