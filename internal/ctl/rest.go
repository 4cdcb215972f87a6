package ctl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/buildinfo"
	"github.com/pgnoded/pgnoded/internal/config"
)

// restClient calls the members' REST APIs as patronictl does: Basic auth
// from ctl.authentication (else restapi.authentication), CA from ctl.cacert
// (else restapi.cafile), client certificate from ctl.certfile/keyfile (else restapi's).
type restClient struct {
	http      *http.Client
	transport *http.Transport
	auth      config.Auth
}

// response is a REST reply: status code and body text.
type response struct {
	status int
	text   string
}

func (r response) ok() bool { return r.status >= 200 && r.status < 300 }

// newRESTClient builds the client from the configuration; insecure skips certificate verification.
func newRESTClient(cfg *config.Config, insecure bool) (*restClient, error) {
	tc, err := restTLS(cfg, insecure || cfg.Ctl.Insecure)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               nil, // like patronictl: members are reached directly
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &restClient{http: &http.Client{Transport: tr}, transport: tr, auth: cfg.CtlAuth()}, nil
}

func restTLS(cfg *config.Config, insecure bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	ca := firstNonEmpty(cfg.Ctl.CACert, cfg.RESTAPI.CAFile)
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("read REST API CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates in REST API CA %s", ca)
		}
		tc.RootCAs = pool
	}
	cert, key := cfg.Ctl.CertFile, cfg.Ctl.KeyFile
	password := cfg.Ctl.KeyFilePassword
	if cert == "" {
		cert, key, password = cfg.RESTAPI.CertFile, cfg.RESTAPI.KeyFile, cfg.RESTAPI.KeyFilePassword
	}
	if cert != "" {
		if key == "" {
			key = cert // Patroni accepts a PEM file holding both
		}
		if password != "" {
			return nil, errors.New("encrypted client keys (keyfile_password) are not supported; use an unencrypted ctl.keyfile")
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("load REST API client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// do sends method /endpoint to the API at apiURL (a member's api_url; its path
// is replaced) with body as JSON when not nil, and returns the reply.
func (c *restClient) do(ctx context.Context, apiURL, method, endpoint string, body any) (response, error) {
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return response{}, fmt.Errorf("bad api_url %q", apiURL)
	}
	target := u.Scheme + "://" + u.Host + "/" + endpoint
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return response{}, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, target, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth.Username != "" {
		req.SetBasicAuth(c.auth.Username, c.auth.Password)
	}
	req.Header.Set("User-Agent", "pgnodectl/"+buildinfo.Version)
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read reply: %w", method, target, err)
	}
	return response{status: resp.StatusCode, text: strings.TrimRight(string(text), "\n")}, nil
}

func (c *restClient) close() { c.transport.CloseIdleConnections() }

// restClient builds the REST client once.
func (a *app) restClient() (*restClient, error) {
	if a.rest != nil {
		return a.rest, nil
	}
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	rc, err := newRESTClient(cfg, a.g.insecure)
	if err != nil {
		return nil, err
	}
	a.rest = rc
	return rc, nil
}

// call sends a request to a member, which must publish an api_url.
func (a *app) call(ctx context.Context, apiURL, method, endpoint string, body any) (response, error) {
	rc, err := a.restClient()
	if err != nil {
		return response{}, err
	}
	if apiURL == "" {
		return response{}, errors.New("the member publishes no api_url")
	}
	return rc.do(ctx, apiURL, method, endpoint, body)
}
