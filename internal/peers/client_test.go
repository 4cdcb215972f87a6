package peers

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/ha"
	"github.com/pgnoded/pgnoded/internal/testenv/pki"
)

// Documents as Patroni 3.0.2 serves them on GET /patroni.
const (
	primaryDoc = `{"state":"running","role":"master","xlog":{"location":67419744},"timeline":2}`
	replicaDoc = `{"state":"running","role":"replica","xlog":{"received_location":67419800,"replayed_location":67419744},"timeline":2}`
)

// syncBuf is a log sink safe for the client's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newClient(t *testing.T, s Settings) (*Client, *syncBuf) {
	t.Helper()
	var buf syncBuf
	c, err := New(s, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, &buf
}

func TestSettingsFromPrefersCtlThenRESTAPI(t *testing.T) {
	c := &config.Config{
		RESTAPI: config.RESTAPI{Authentication: config.Auth{Username: "api", Password: "apipw"},
			CertFile: "/r/cert", KeyFile: "/r/key", KeyFilePassword: "rpw", CAFile: "/r/ca"},
	}
	got := SettingsFrom(c)
	want := Settings{Username: "api", Password: "apipw", CertFile: "/r/cert", KeyFile: "/r/key", KeyPassword: "rpw", CAFile: "/r/ca"}
	if got != want {
		t.Errorf("restapi only: %+v, want %+v", got, want)
	}
	c.Ctl = config.Ctl{Authentication: config.Auth{Username: "ctl", Password: "ctlpw"},
		CertFile: "/c/cert", KeyFile: "/c/key", KeyFilePassword: "cpw", CACert: "/c/ca"}
	got = SettingsFrom(c)
	want = Settings{Username: "ctl", Password: "ctlpw", CertFile: "/c/cert", KeyFile: "/c/key", KeyPassword: "cpw", CAFile: "/c/ca"}
	if got != want {
		t.Errorf("ctl and restapi: %+v, want %+v", got, want)
	}
	// Each key on its own, as Patroni 3.0.2 reads them.
	c.Ctl = config.Ctl{CACert: "/c/ca"}
	got = SettingsFrom(c)
	want = Settings{Username: "api", Password: "apipw", CertFile: "/r/cert", KeyFile: "/r/key", KeyPassword: "rpw", CAFile: "/c/ca"}
	if got != want {
		t.Errorf("ctl.cacert only: %+v, want %+v", got, want)
	}
}

// tlsServer serves /patroni over TLS with tc; with auth set it answers 401
// unless Basic auth matches.
func tlsServer(t *testing.T, tc *tlsConfigFn, auth string) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u+":"+p != auth {
				http.Error(w, "not authenticated", http.StatusUnauthorized)
				return
			}
		}
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusOK)
			return
		}
		_, _ = w.Write([]byte(replicaDoc))
	}))
	srv.TLS = tc.cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

type tlsConfigFn struct{ cfg *tls.Config }

func TestClientTLSMatrix(t *testing.T) {
	dir := t.TempDir()
	ca, other := pki.New(t, "pg-ca"), pki.New(t, "other-ca")
	// The server's certificate names another host: Patroni's daemon checks no host name.
	srvCert, srvKey := ca.Issue(t, "elsewhere", []string{"not-this-host.example"}, nil, x509.ExtKeyUsageServerAuth)
	foreignCert, foreignKey := other.Issue(t, "foreign", nil, []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.Issue(t, "client", nil, nil, x509.ExtKeyUsageClientAuth)
	caFile := writeFile(t, dir, "ca.crt", ca.PEM)
	certFile, keyFile := writeFile(t, dir, "cli.crt", cliCert), writeFile(t, dir, "cli.key", cliKey)

	// An encrypted copy of the client key (keyfile_password).
	blk, _ := pem.Decode(cliKey)
	// The legacy format is what keyfile_password decrypts.
	enc, err := x509.EncryptPEMBlock(randReader{}, blk.Type, blk.Bytes, []byte("s3cret"), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	encKeyFile := writeFile(t, dir, "cli-enc.key", pem.EncodeToMemory(enc))

	cases := []struct {
		name       string
		server     *tls.Config
		s          Settings
		wantReason string // "" = success
	}{
		{"no client cert: nothing verified (untrusted server)", serverTLS(t, foreignCert, foreignKey, nil), Settings{}, ""},
		{"no client cert, CA set: still nothing verified", serverTLS(t, foreignCert, foreignKey, nil), Settings{CAFile: caFile}, ""},
		{"no client cert, server requires one", serverTLS(t, srvCert, srvKey, ca), Settings{}, ReasonTLS},
		{"client cert: chain verified, host name not", serverTLS(t, srvCert, srvKey, ca),
			Settings{CertFile: certFile, KeyFile: keyFile, CAFile: caFile}, ""},
		{"client cert with encrypted key", serverTLS(t, srvCert, srvKey, ca),
			Settings{CertFile: certFile, KeyFile: encKeyFile, KeyPassword: "s3cret", CAFile: caFile}, ""},
		{"client cert: server from another CA refused", serverTLS(t, foreignCert, foreignKey, nil),
			Settings{CertFile: certFile, KeyFile: keyFile, CAFile: caFile}, ReasonTLS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := tlsServer(t, &tlsConfigFn{tc.server}, "")
			c, logs := newClient(t, tc.s)
			st := c.Status(context.Background(), []cluster.Member{{Name: "m1", APIURL: srv.URL + "/patroni"}})
			if tc.wantReason == "" {
				if !st[0].Reachable || st[0].WALPosition != 67419800 {
					t.Fatalf("status %+v, want reachable replica; log: %s", st[0], logs)
				}
				return
			}
			if st[0].Reachable {
				t.Fatalf("reachable, want %s", tc.wantReason)
			}
			if n := c.ErrorCounts()[tc.wantReason]; n != 1 {
				t.Errorf("errors[%s] = %d, want 1 (%v)", tc.wantReason, n, c.ErrorCounts())
			}
			if !strings.Contains(logs.String(), "peer=m1") || !strings.Contains(logs.String(), "reason="+tc.wantReason) {
				t.Errorf("log does not name the peer and reason: %s", logs)
			}
		})
	}
	if _, err := New(Settings{CertFile: certFile, KeyFile: encKeyFile, KeyPassword: "wrong"}, nil); err == nil {
		t.Error("a wrong keyfile_password was accepted")
	}
	if _, err := New(Settings{CertFile: certFile, KeyFile: keyFile, CAFile: certFile + ".missing"}, nil); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

// randReader feeds EncryptPEMBlock's IV.
type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i * 7)
	}
	return len(p), nil
}

func TestClientBasicAuthCountsAndLogsOncePerChange(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ctl" || p != "right" {
			http.Error(w, "not authenticated", http.StatusUnauthorized)
			return
		}
		posts.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c, logs := newClient(t, Settings{Username: "ctl", Password: "wrong"})
	targets := map[string]string{"n2": srv.URL + "/patroni"}
	for range 3 {
		if got := c.AskFailsafe(context.Background(), ha.FailsafeRequest{Name: "n1"}, targets, time.Second); got["n2"] {
			t.Fatal("accepted with a wrong password")
		}
	}
	if n := c.ErrorCounts()[ReasonUnauthorized]; n != 3 {
		t.Errorf("unauthorized = %d, want 3 (one per round, no retry of a refusal)", n)
	}
	if k := strings.Count(logs.String(), "peer refused"); k != 1 {
		t.Errorf("refusal logged %d times, want once:\n%s", k, logs)
	}
	if err := c.Apply(Settings{Username: "ctl", Password: "right"}); err != nil {
		t.Fatal(err)
	}
	if got := c.AskFailsafe(context.Background(), ha.FailsafeRequest{Name: "n1"}, targets, time.Second); !got["n2"] {
		t.Fatal("refused after the password was fixed")
	}
	if !strings.Contains(logs.String(), "peer answers again") {
		t.Errorf("recovery not logged:\n%s", logs)
	}
}

func TestClientStatusAsksInParallelWithATimeout(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/primary/patroni", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(primaryDoc)) })
	mux.HandleFunc("/replica/patroni", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // health endpoints answer 503 with the same document
		_, _ = w.Write([]byte(replicaDoc))
	})
	mux.HandleFunc("/slow/patroni", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/garbage/patroni", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("nope")) })
	mux.HandleFunc("/forbidden/patroni", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "Access is denied", 403) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	p, _ := newClient(t, Settings{})
	p.timeout = 200 * time.Millisecond
	members := []cluster.Member{
		{Name: "a", APIURL: srv.URL + "/primary/patroni"},
		{Name: "b", APIURL: srv.URL + "/replica/patroni"},
		{Name: "c", APIURL: srv.URL + "/slow/patroni"},
		{Name: "d", APIURL: srv.URL + "/garbage/patroni"},
		{Name: "e"},
		{Name: "f", APIURL: "http://127.0.0.1:1/patroni"},
		{Name: "g", APIURL: srv.URL + "/forbidden/patroni"},
	}
	start := time.Now()
	got := p.Status(context.Background(), members)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v: not in parallel or not bounded", el)
	}
	if len(got) != len(members) {
		t.Fatalf("%d answers for %d members", len(got), len(members))
	}
	for i, m := range members {
		if got[i].Name != m.Name {
			t.Errorf("answer %d is for %q, want %q (same order as asked)", i, got[i].Name, m.Name)
		}
	}
	if !got[0].Reachable || got[0].Role != "master" || !got[1].Reachable || got[1].Role != "replica" {
		t.Errorf("primary %+v, replica %+v", got[0], got[1])
	}
	for _, i := range []int{2, 3, 4, 5, 6} {
		if got[i].Reachable {
			t.Errorf("%s reachable, want unreachable: %+v", members[i].Name, got[i])
		}
	}
	want := map[string]uint64{ReasonTimeout: 1, ReasonBadResponse: 1, ReasonConnect: 1, ReasonForbidden: 1}
	for _, r := range Reasons {
		if got := p.ErrorCounts()[r]; got != want[r] {
			t.Errorf("errors[%s] = %d, want %d", r, got, want[r])
		}
	}
}

func TestClientAskFailsafe(t *testing.T) {
	var got atomic.Value
	var flaky atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /failsafe", func(w http.ResponseWriter, r *http.Request) {
		var b failsafeBody
		_ = json.NewDecoder(r.Body).Decode(&b)
		got.Store(b)
		w.WriteHeader(http.StatusOK)
	})
	ok := httptest.NewServer(mux)
	defer ok.Close()
	leaderSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "Running as a leader", http.StatusInternalServerError)
	}))
	defer leaderSrv.Close()
	flakySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if flaky.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer flakySrv.Close()
	p, _ := newClient(t, Settings{})
	res := p.AskFailsafe(context.Background(), ha.FailsafeRequest{Name: "pg1", ConnURL: "postgres://x", APIURL: "http://x/patroni"},
		map[string]string{"ok": ok.URL + "/patroni", "leader": leaderSrv.URL + "/patroni", "flaky": flakySrv.URL,
			"dead": "http://127.0.0.1:1/patroni", "none": ""}, time.Second)
	want := map[string]bool{"ok": true, "leader": false, "flaky": true, "dead": false, "none": false}
	for k, v := range want {
		if res[k] != v {
			t.Errorf("%s: accepted %v, want %v", k, res[k], v)
		}
	}
	if b, _ := got.Load().(failsafeBody); b.Name != "pg1" || b.ConnURL != "postgres://x" || b.APIURL != "http://x/patroni" {
		t.Errorf("body %+v", b)
	}
	if flaky.Load() != 2 {
		t.Errorf("flaky member asked %d times, want 2 (one retry)", flaky.Load())
	}
}
