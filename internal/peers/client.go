package peers

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgnoded/pgnoded/internal/buildinfo"
	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha"
)

// Timeout is how long one peer may take to answer GET /patroni during a
// leader race (Patroni: 2 s, no retry).
const Timeout = ha.PeerTimeout

// maxDoc caps a document read from a peer.
const maxDoc = 1 << 20

// Reasons a peer request failed, the values of pgnoded_peer_errors_total{reason}.
const (
	ReasonUnauthorized = "unauthorized" // 401: Basic auth missing or wrong
	ReasonForbidden    = "forbidden"    // 403: allowlist or client certificate refused
	ReasonTLS          = "tls"          // handshake failed (certificate not verified, refused by the peer)
	ReasonTimeout      = "timeout"      // no answer in time
	ReasonConnect      = "connect"      // connection refused, unreachable
	ReasonBadResponse  = "bad_response" // an answer that is not what the endpoint sends
)

// Reasons lists every reason, in the order metrics report them.
var Reasons = []string{ReasonUnauthorized, ReasonForbidden, ReasonTLS, ReasonTimeout, ReasonConnect, ReasonBadResponse}

var (
	_ ha.Peers            = (*Client)(nil)
	_ ha.FailsafeAsker    = (*Client)(nil)
	_ ha.PeerErrorCounter = (*Client)(nil)
)

// Client sends pgnoded's requests to the other members. It is safe for
// concurrent use; Apply swaps its settings while requests run (a request
// uses the settings it started with).
type Client struct {
	log     *slog.Logger
	timeout time.Duration
	cur     atomic.Pointer[transport]

	errs [6]atomic.Uint64 // by index in Reasons

	mu   sync.Mutex
	last map[string]string // member -> reason of its last failure ("" after a success)
}

// transport is one generation of settings: the HTTP client and the Authorization header.
type transport struct {
	client   *http.Client
	auth     string // "user:password" set as Basic auth; empty: none
	settings Settings
}

// New builds a client from s; log receives one line per change of a member's state.
func New(s Settings, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{log: log, timeout: Timeout, last: map[string]string{}}
	if err := c.Apply(s); err != nil {
		return nil, err
	}
	return c, nil
}

// Apply rebuilds the client from s (a configuration reload). On error the
// previous settings stay in use.
func (c *Client) Apply(s Settings) error {
	tc, err := tlsConfig(s)
	if err != nil {
		return err
	}
	tr := &http.Transport{
		Proxy:               nil, // members are reached directly, as Patroni's urllib3 pool does
		DialContext:         (&net.Dialer{Timeout: Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: Timeout,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 like Patroni's server
	}
	next := &transport{client: &http.Client{Transport: tr}, settings: s}
	if s.Username != "" || s.Password != "" {
		next.auth = s.Username + ":" + s.Password
	}
	if old := c.cur.Swap(next); old != nil {
		old.client.CloseIdleConnections()
	}
	return nil
}

// Settings returns the settings in use.
func (c *Client) Settings() Settings { return c.cur.Load().settings }

// Close drops idle connections.
func (c *Client) Close() { c.cur.Load().client.CloseIdleConnections() }

// ErrorCounts implements ha.PeerErrorCounter: failed requests by reason, every reason present.
func (c *Client) ErrorCounts() map[string]uint64 {
	out := make(map[string]uint64, len(Reasons))
	for i, r := range Reasons {
		out[r] = c.errs[i].Load()
	}
	return out
}

// do sends one request with the current settings and returns the status and
// body, or the reason it failed.
func (c *Client) do(ctx context.Context, method, url string, body []byte) (int, []byte, string, error) {
	t := c.cur.Load()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, ReasonBadResponse, fmt.Errorf("bad api_url: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if t.auth != "" {
		u, p, _ := strings.Cut(t.auth, ":")
		req.SetBasicAuth(u, p)
	}
	req.Header.Set("User-Agent", "pgnoded/"+buildinfo.Version)
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, nil, classify(ctx, err), err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDoc))
	if err != nil {
		return resp.StatusCode, nil, classify(ctx, err), err
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return resp.StatusCode, b, ReasonUnauthorized, fmt.Errorf("401 %s", strings.TrimSpace(string(b)))
	case http.StatusForbidden:
		return resp.StatusCode, b, ReasonForbidden, fmt.Errorf("403 %s", strings.TrimSpace(string(b)))
	}
	return resp.StatusCode, b, "", nil
}

// classify names the reason of a transport error.
func classify(ctx context.Context, err error) string {
	var (
		verr  *tls.CertificateVerificationError
		alert tls.AlertError
		rec   tls.RecordHeaderError
		nerr  net.Error
		oerr  *net.OpError
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &alert), errors.As(err, &rec):
		return ReasonTLS
	case strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:"):
		return ReasonTLS
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || errors.As(err, &nerr) && nerr.Timeout():
		return ReasonTimeout
	case errors.As(err, &oerr) && oerr.Op == "dial":
		return ReasonConnect
	}
	return ReasonBadResponse
}

// note records the outcome of a request to member: a failure is counted; a
// change of the member's state (a new reason, or answering again) is logged once.
func (c *Client) note(member, reason string, err error) {
	if reason != "" {
		for i, r := range Reasons {
			if r == reason {
				c.errs[i].Add(1)
			}
		}
	}
	c.mu.Lock()
	prev, seen := c.last[member]
	c.last[member] = reason
	c.mu.Unlock()
	if prev == reason || (!seen && reason == "") {
		return
	}
	switch {
	case reason == "":
		c.log.Info("peer answers again", "peer", member, "was", prev)
	case reason == ReasonUnauthorized || reason == ReasonForbidden || reason == ReasonTLS:
		c.log.Warn("peer refused our request", "peer", member, "reason", reason, "err", err)
	default:
		c.log.Info("peer request failed", "peer", member, "reason", reason, "err", err)
	}
}

// Status implements ha.Peers: GET <api_url> of every member in parallel,
// each bounded by Timeout; one PeerStatus per member in the same order
// (unreachable on any error).
func (c *Client) Status(ctx context.Context, members []cluster.Member) []ha.PeerStatus {
	out := make([]ha.PeerStatus, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = c.status(ctx, m)
		}()
	}
	wg.Wait()
	return out
}

func (c *Client) status(ctx context.Context, m cluster.Member) ha.PeerStatus {
	st := ha.PeerStatus{Name: m.Name}
	if m.APIURL == "" {
		return st
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, body, reason, err := c.do(ctx, http.MethodGet, m.APIURL, nil)
	if reason == "" {
		parsed, perr := ParseStatus(m.Name, body)
		if perr != nil {
			reason, err = ReasonBadResponse, perr
		} else {
			st = parsed
		}
	}
	c.note(m.Name, reason, err)
	return st
}

// failsafeBody is the POST /failsafe document (Patroni's field names).
type failsafeBody struct {
	Name    string           `json:"name"`
	ConnURL string           `json:"conn_url"`
	APIURL  string           `json:"api_url"`
	Slots   map[string]int64 `json:"slots,omitempty"`
}

// AskFailsafe implements ha.FailsafeAsker: POST <base of api_url>/failsafe
// to every target in parallel, each attempt bounded by timeout, retried once
// after a transport error or an unexpected status (Patroni: retries=1); a
// member accepts with 200.
func (c *Client) AskFailsafe(ctx context.Context, req ha.FailsafeRequest, targets map[string]string,
	timeout time.Duration) map[string]bool {
	body, err := json.Marshal(failsafeBody{Name: req.Name, ConnURL: req.ConnURL, APIURL: req.APIURL, Slots: req.Slots})
	out := make(map[string]bool, len(targets))
	if err != nil {
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, apiURL := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := false
			var reason string
			var rerr error
			for attempt := 0; attempt < 2 && !ok && ctx.Err() == nil; attempt++ {
				var final bool
				ok, final, reason, rerr = c.postFailsafe(ctx, failsafeURL(apiURL), body, timeout)
				if final {
					break
				}
			}
			if apiURL != "" {
				c.note(name, reason, rerr)
			}
			mu.Lock()
			out[name] = ok
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// postFailsafe makes one attempt; final reports an answer not worth retrying
// (accepted, "Running as a leader", failsafe mode disabled there, or refused).
func (c *Client) postFailsafe(ctx context.Context, url string, body []byte, timeout time.Duration) (ok, final bool, reason string, err error) {
	if url == "" {
		return false, true, "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	code, text, reason, err := c.do(ctx, http.MethodPost, url, body)
	switch {
	case reason == ReasonUnauthorized || reason == ReasonForbidden || reason == ReasonTLS:
		return false, true, reason, err
	case reason != "":
		return false, false, reason, err
	case code == http.StatusOK:
		return true, true, "", nil
	case code == http.StatusInternalServerError, code == http.StatusBadGateway:
		return false, true, "", nil // a primary, or failsafe_mode off there: an answer, not an error
	}
	return false, false, ReasonBadResponse, fmt.Errorf("%d %s", code, strings.TrimSpace(string(text)))
}

// failsafeURL turns a member's api_url (http://host:8008/patroni) into its POST /failsafe URL.
func failsafeURL(apiURL string) string {
	if apiURL == "" {
		return ""
	}
	scheme, rest, ok := strings.Cut(apiURL, "://")
	if !ok {
		return ""
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host + "/failsafe"
}
