package restapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

// runServer starts srv.Run in the background and stops it at cleanup.
func runServer(t testing.TB, srv *Server) (stop func() error) {
	t.Helper()
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once bool
	var result error
	stop = func() error {
		if !once {
			once = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(15 * time.Second):
				result = errors.New("Run did not return after cancel")
			}
		}
		return result
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// rawRequest sends req on a new TCP connection and returns everything read until close.
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(out)
}

func TestRealSocketHAProxyStyleChecks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port := testenv.FreePort(t)
	srv, err := New(Config{Listen: "127.0.0.1:" + strconv.Itoa(port), Now: func() time.Time { return testNow }},
		newSource(primaryLeader()), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runServer(t, srv)
	if srv.Addr() != "127.0.0.1:"+strconv.Itoa(port) {
		t.Fatalf("Addr %q", srv.Addr())
	}
	for _, tc := range []struct{ req, status string }{
		{"OPTIONS /primary HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK"},
		{"OPTIONS / HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK"},
		{"OPTIONS /replica HTTP/1.0\r\n\r\n", "HTTP/1.0 503 Service Unavailable"},
		{"HEAD /read-only HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK"},
		{"OPTIONS * HTTP/1.0\r\n\r\n", "HTTP/1.0 503 Service Unavailable"},
		{"OPTIONS /replica?lag=10MB HTTP/1.0\r\n\r\n", "HTTP/1.0 503 Service Unavailable"},
		{"POST /switchover HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 411 Length Required"},
	} {
		out := rawRequest(t, srv.Addr(), tc.req)
		line, rest, _ := strings.Cut(out, "\r\n")
		if line != tc.status {
			t.Errorf("%q: status line %q, want %q", tc.req, line, tc.status)
		}
		if strings.HasPrefix(tc.req, "OPTIONS") || strings.HasPrefix(tc.req, "HEAD") {
			if _, bodyPart, _ := strings.Cut(rest, "\r\n\r\n"); bodyPart != "" {
				t.Errorf("%q: unexpected body %q", tc.req, bodyPart)
			}
		}
	}
	// GET over HTTP/1.0 carries the JSON document and a Content-Length.
	out := rawRequest(t, srv.Addr(), "GET /patroni HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.0 200 OK") || !strings.Contains(out, "Content-Length: ") ||
		!strings.Contains(out, `"role":"master"`) {
		t.Errorf("GET /patroni: %q", out)
	}

	if err := stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

// blockingActions blocks a switchover until its context ends (as a real poll would).
type blockingActions struct {
	NotImplemented
	started chan struct{}
}

func (b *blockingActions) Switchover(ctx context.Context, _ SwitchoverRequest) (cluster.OpResult, error) {
	close(b.started)
	<-ctx.Done()
	return cluster.OpResult{}, cluster.Refuse(cluster.OpUnavailable, "Switchover status unknown")
}

func TestGracefulShutdownEndsBlockingActions(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	acts := &blockingActions{started: make(chan struct{})}
	srv, err := New(Config{Listen: "127.0.0.1:0", Now: func() time.Time { return testNow }}, newSource(primaryLeader()), acts)
	if err != nil {
		t.Fatal(err)
	}
	stop := runServer(t, srv)

	type result struct {
		status string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		body := `{"leader":"pg1"}`
		conn, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			got <- result{err: err}
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "POST /switchover HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		line, err := bufio.NewReader(conn).ReadString('\n')
		got <- result{status: strings.TrimSpace(line), err: err}
	}()
	select {
	case <-acts.started:
	case <-time.After(10 * time.Second):
		t.Fatal("switchover never reached Actions")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	r := <-got
	if r.err != nil || r.status != "HTTP/1.1 503 Service Unavailable" {
		t.Fatalf("in-flight switchover: %q %v", r.status, r.err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	src := newSource(nil)
	for _, cfg := range []Config{
		{},
		{Listen: "8008"},
		{Listen: "127.0.0.1:99999"},
		{Listen: ":8008", TLS: TLSConfig{VerifyClient: "sometimes"}},
		{Listen: ":8008", TLS: TLSConfig{KeyFile: "/x"}},
		{Listen: ":8008", TLS: TLSConfig{CertFile: "/nonexistent.crt"}},
	} {
		if _, err := New(cfg, src, nil); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{Listen: "*:8008"}, src, nil); err != nil {
		t.Errorf(`"*:8008" means all interfaces: %v`, err)
	}
	if _, err := New(Config{Listen: ":8008"}, nil, nil); err == nil {
		t.Errorf("nil source accepted")
	}
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv, err := New(Config{Listen: ln.Addr().String()}, SourceFunc(func() *cluster.Snapshot { return nil }), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run on a busy port: %v", err)
	}
}

func TestActionsReturningUntypedErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		text string
	}{
		{errors.New("boom"), "boom"},
		{&cluster.OpError{Kind: 99, Text: "odd kind"}, "odd kind"},
	} {
		srv, err := New(Config{Listen: "127.0.0.1:0", Now: func() time.Time { return testNow }},
			newSource(primaryLeader()), errActions{err: tc.err})
		if err != nil {
			t.Fatal(err)
		}
		if rec := do(t, srv.Handler(), http.MethodPost, "/reload", ""); rec.Code != http.StatusInternalServerError ||
			rec.Body.String() != tc.text {
			t.Fatalf("%v from Actions: %d %q", tc.err, rec.Code, rec.Body.String())
		}
	}
}

// errActions answers POST /reload with err.
type errActions struct {
	NotImplemented
	err error
}

func (a errActions) Reload(context.Context) (cluster.OpResult, error) {
	return cluster.OpResult{}, a.err
}
