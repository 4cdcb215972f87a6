package restapi

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// doFrom runs a request from remote (ip:port) with optional Basic credentials.
func doFrom(t *testing.T, h http.Handler, method, target, remote, body string, auth ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = remote
	if body != "" {
		req.Header.Set("Content-Length", itoa(len(body)))
	}
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	} else if len(auth) == 1 {
		req.Header.Set("Authorization", auth[0])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAllowlist(t *testing.T) {
	srv, rec := actionServer(t, primaryLeader(), func(c *Config) {
		c.Allowlist = []string{"10.1.0.0/16", "192.0.2.7", "localhost", "not a host name !"}
	})
	h := srv.Handler()
	for _, tc := range []struct {
		remote string
		want   int
	}{
		{"10.1.2.3:5000", 202}, {"192.0.2.7:1", 202}, {"127.0.0.1:1", 202},
		{"[::ffff:10.1.0.9]:1", 202}, {"192.0.2.8:1", 403}, {"10.2.0.1:1", 403},
	} {
		res := doFrom(t, h, http.MethodPost, "/reload", tc.remote, "")
		if res.Code != tc.want {
			t.Errorf("POST /reload from %s: got %d, want %d", tc.remote, res.Code, tc.want)
		}
		if tc.want == 403 && res.Body.String() != "Access is denied" {
			t.Errorf("403 text %q", res.Body.String())
		}
	}
	if n := len(rec.calls); n != 4 {
		t.Errorf("reload reached the HA loop %d times, want 4", n)
	}
	// Reads stay open to everyone.
	for _, m := range []string{http.MethodGet, http.MethodOptions, http.MethodHead} {
		if res := doFrom(t, h, m, "/primary", "198.51.100.1:1", ""); res.Code != 200 {
			t.Errorf("%s /primary from outside the allowlist: %d", m, res.Code)
		}
	}
}

func TestAllowlistIncludeMembers(t *testing.T) {
	include := func(c *Config) { c.AllowlistIncludeMembers = true }
	srv, _ := actionServer(t, primaryLeader(), include)
	if res := doFrom(t, srv.Handler(), http.MethodPost, "/reload", "10.0.0.2:40000", ""); res.Code != 202 {
		t.Errorf("member address refused: %d", res.Code)
	}
	if res := doFrom(t, srv.Handler(), http.MethodPost, "/reload", "10.0.0.9:40000", ""); res.Code != 403 {
		t.Errorf("non-member accepted: %d", res.Code)
	}
	// With the DCS view expired there is no member list: everyone is refused.
	srv, _ = actionServer(t, dcsDownPrimary(), include)
	if res := doFrom(t, srv.Handler(), http.MethodPost, "/reload", "10.0.0.2:40000", ""); res.Code != 403 {
		t.Errorf("member accepted without a valid view: %d", res.Code)
	}
}

func TestBasicAuth(t *testing.T) {
	srv, rec := actionServer(t, primaryLeader(), func(c *Config) {
		c.Auth = AuthConfig{Username: "postgres", Password: "Patroni.API"}
		c.Allowlist = []string{"127.0.0.0/8"}
	})
	h := srv.Handler()
	for _, tc := range []struct {
		name   string
		remote string
		auth   []string
		code   int
		text   string
	}{
		{"no header", "127.0.0.1:1", nil, 401, "no auth header received"},
		{"wrong password", "127.0.0.1:1", []string{"postgres", "nope"}, 401, "not authenticated"},
		{"lowercase scheme", "127.0.0.1:1", []string{"basic cG9zdGdyZXM6UGF0cm9uaS5BUEk="}, 401, "not authenticated"},
		{"bearer", "127.0.0.1:1", []string{"Bearer x"}, 401, "not authenticated"},
		{"allowlist before auth", "10.9.9.9:1", []string{"postgres", "Patroni.API"}, 403, "Access is denied"},
		{"good", "127.0.0.1:1", []string{"postgres", "Patroni.API"}, 202, "reload scheduled"},
	} {
		res := doFrom(t, h, http.MethodPost, "/reload", tc.remote, "", tc.auth...)
		if res.Code != tc.code || res.Body.String() != tc.text {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, res.Code, res.Body.String(), tc.code, tc.text)
		}
		if tc.code == 401 && res.Header().Get("WWW-Authenticate") != `Basic realm="Patroni"` {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, res.Header().Get("WWW-Authenticate"))
		}
	}
	if len(rec.calls) != 1 {
		t.Errorf("calls: %v", rec.calls)
	}
	// GETs need no credentials.
	if res := doFrom(t, h, http.MethodGet, "/patroni", "10.9.9.9:1", ""); res.Code != 200 {
		t.Errorf("GET /patroni needs no auth: %d", res.Code)
	}
}

func TestUnsupportedAndMalformed(t *testing.T) {
	srv, rec := actionServer(t, primaryLeader(), func(c *Config) {
		c.Auth = AuthConfig{Username: "u", Password: "p"}
		c.MaxBodyBytes = 64
	})
	h := srv.Handler()
	for _, tc := range []struct {
		method, path, body string
		auth               []string
		code               int
	}{
		// Unknown unsafe paths are 501 before any access check, as in Patroni.
		{http.MethodPost, "/foo", "", nil, 501},
		{http.MethodPost, "/", "", nil, 501},
		{http.MethodPut, "/restart", "", nil, 501},
		{http.MethodDelete, "/config", "", nil, 501},
		{http.MethodPatch, "/patroni", "", nil, 501},
		{"TRACE", "/primary", "", nil, 501},
		// Known paths: auth first, then the body.
		{http.MethodPost, "/switchover", "", nil, 401},
		{http.MethodPost, "/switchover", "", []string{"u", "p"}, 411},
		{http.MethodPatch, "/config", "", []string{"u", "p"}, 411},
		{http.MethodPost, "/switchover", "{nope", []string{"u", "p"}, 400},
		{http.MethodPost, "/switchover", "42", []string{"u", "p"}, 400},
		{http.MethodPost, "/switchover", `{"leader":"` + strings.Repeat("x", 100) + `"}`, []string{"u", "p"}, 413},
		{http.MethodPost, "/restart/now", "", []string{"u", "p"}, 200}, // the first segment routes
		// GET of an action path is a health check.
		{http.MethodGet, "/reload", "", nil, 503},
		{http.MethodGet, "/switchover-primary", "", nil, 200},
	} {
		var req *http.Request
		if tc.body != "" {
			req = httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Length", itoa(len(tc.body)))
		} else {
			req = httptest.NewRequest(tc.method, tc.path, nil)
		}
		if tc.auth != nil {
			req.SetBasicAuth(tc.auth[0], tc.auth[1])
		}
		res := httptest.NewRecorder()
		h.ServeHTTP(res, req)
		if res.Code != tc.code {
			t.Errorf("%s %s %q: got %d %q, want %d", tc.method, tc.path, tc.body, res.Code, res.Body.String(), tc.code)
		}
		if res.Code >= 400 && res.Code < 500 && (res.Body.Len() == 0 || strings.Contains(res.Body.String(), "\n")) {
			t.Errorf("%s %s: 4xx needs a one-line reason, got %q", tc.method, tc.path, res.Body.String())
		}
	}
	if strings.Join(rec.calls, ",") != "restart" {
		t.Errorf("refused requests reached the HA loop: %v", rec.calls)
	}
}

// TestPromtool runs promtool check metrics when it is installed: the only
// accepted finding is the _total advice for Patroni's counters, whose names are
// kept as Patroni writes them (docs/exporter-collectors.md, "Metric names").
func TestPromtool(t *testing.T) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	for _, snap := range []*cluster.Snapshot{primaryLeader(), compat4(replicaStreaming)()} {
		srv, _ := newTestServer(t, snap)
		body := do(t, srv.Handler(), http.MethodGet, "/metrics", "").Body.String()
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		out, _ := cmd.CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.HasSuffix(line, `counter metrics should have "_total" suffix`) {
				t.Errorf("promtool (%s): %s", snap.Compat, line)
			}
		}
	}
}
