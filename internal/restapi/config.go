package restapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// VerifyClient is restapi.verify_client: whether TLS clients must present a certificate.
type VerifyClient string

// verify_client values.
const (
	VerifyNone     VerifyClient = "none"     // no client certificate requested
	VerifyOptional VerifyClient = "optional" // requested and verified if sent; unsafe endpoints require one
	VerifyRequired VerifyClient = "required" // the TLS handshake demands one for every request
)

// Defaults for the zero fields of Config.
const (
	DefaultMaxBodyBytes      = 64 << 10
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 15 * time.Second
	DefaultWriteTimeout      = 15 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultActionTimeout     = 3 * time.Minute // write deadline of the blocking action endpoints
	DefaultShutdownTimeout   = 5 * time.Second
)

// TLSConfig is restapi.certfile/keyfile/cafile/verify_client.
type TLSConfig struct {
	CertFile     string
	KeyFile      string // empty: the key is in CertFile
	CAFile       string // verifies client certificates; empty: system roots
	VerifyClient VerifyClient
}

// Enabled reports whether the API serves HTTPS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// AuthConfig is restapi.authentication; empty disables Basic auth.
type AuthConfig struct {
	Username string
	Password string
}

// Config configures the REST API server.
type Config struct {
	Listen                  string // host:port; host "" or "*" means all interfaces
	TLS                     TLSConfig
	Auth                    AuthConfig
	Allowlist               []string // IPs, CIDRs or hostnames (resolved once, in New) allowed to call unsafe endpoints
	AllowlistIncludeMembers bool     // also allow the hosts of every member's api_url
	MaxBodyBytes            int64    // request body limit (413 above it); default 64 KiB

	// StrictPrimary additionally requires a running, non-recovering postgres for
	// 200 on /primary (README.md, "Stricter where it is safer"); false keeps
	// Patroni's rule (lock only).
	StrictPrimary bool

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ActionTimeout     time.Duration
	ShutdownTimeout   time.Duration

	// ExtraMetrics, when set, appends pgnoded's own gauges (Prometheus text
	// format) to GET /metrics after Patroni's; it must not block.
	ExtraMetrics func(b []byte) []byte

	Logger *slog.Logger
	Now    func() time.Time // clock for leader/DCS freshness and schedules; default time.Now
}

// withDefaults fills zero fields and validates the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" {
		return c, errors.New("restapi: listen address is required")
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return c, fmt.Errorf("restapi: listen %q: expected <HOST>:<PORT>: %w", c.Listen, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return c, fmt.Errorf("restapi: listen %q: bad port: %w", c.Listen, err)
	}
	if host == "*" {
		c.Listen = net.JoinHostPort("", port)
	}
	switch c.TLS.VerifyClient {
	case "":
		c.TLS.VerifyClient = VerifyNone
	case VerifyNone, VerifyOptional, VerifyRequired:
	default:
		return c, fmt.Errorf("restapi: verify_client %q: want none, optional or required", c.TLS.VerifyClient)
	}
	if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
		return c, errors.New("restapi: keyfile set without certfile")
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&c.ReadTimeout, DefaultReadTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.ActionTimeout, DefaultActionTimeout)
	def(&c.ShutdownTimeout, DefaultShutdownTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// certStore holds the serving certificate so that ReloadCertificates can swap it.
type certStore struct {
	files atomic.Pointer[[2]string] // certfile, keyfile
	cur   atomic.Pointer[tls.Certificate]
}

// setFiles names the files the next reload reads.
func (c *certStore) setFiles(certFile, keyFile string) { c.files.Store(&[2]string{certFile, keyFile}) }

// get is tls.Config.GetCertificate.
func (c *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

// reload re-reads the files and swaps the certificate in.
func (c *certStore) reload() error {
	cert, err := c.load()
	if err != nil {
		return err
	}
	c.cur.Store(cert)
	return nil
}

func (c *certStore) load() (*tls.Certificate, error) {
	f := c.files.Load()
	certFile, key := f[0], f[1]
	if key == "" {
		key = certFile
	}
	cert, err := tls.LoadX509KeyPair(certFile, key)
	if err != nil {
		return nil, fmt.Errorf("restapi: load certificate %s: %w", certFile, err)
	}
	return &cert, nil
}

// buildTLS returns the server TLS config; getCert supplies the current certificate.
func buildTLS(t TLSConfig, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (*tls.Config, error) {
	conf := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCert,
		NextProtos:     []string{"http/1.1"},
	}
	switch t.VerifyClient {
	case VerifyOptional:
		conf.ClientAuth = tls.VerifyClientCertIfGiven
	case VerifyRequired:
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		conf.ClientAuth = tls.NoClientCert
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("restapi: read cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("restapi: cafile %s: no PEM certificates", t.CAFile)
		}
		conf.ClientCAs = pool
	} else if conf.ClientAuth != tls.NoClientCert {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("restapi: system cert pool: %w", err)
		}
		conf.ClientCAs = pool
	}
	return conf, nil
}
