package restapi

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv/pki"
)

type testPKI struct {
	dir                   string
	caFile                string
	serverCert, serverKey string
	client                tls.Certificate
	roots                 *x509.CertPool
}

// newPKI writes a CA, a server certificate for 127.0.0.1 and a client certificate.
func newPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	ca := pki.New(t, "pgnoded test CA")
	p := testPKI{dir: dir, caFile: filepath.Join(dir, "ca.crt"),
		serverCert: filepath.Join(dir, "server.crt"), serverKey: filepath.Join(dir, "server.key"), roots: ca.Pool()}
	write := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, ca.PEM)
	sc, sk := ca.Issue(t, "server", nil, []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth)
	write(p.serverCert, sc)
	write(p.serverKey, sk)
	cc, ck := ca.Issue(t, "client", nil, nil, x509.ExtKeyUsageClientAuth)
	var err error
	if p.client, err = tls.X509KeyPair(cc, ck); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p testPKI) httpClient(withCert bool) *http.Client {
	conf := &tls.Config{RootCAs: p.roots}
	if withCert {
		conf.Certificates = []tls.Certificate{p.client}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
}

func TestTLSVerifyClientOptional(t *testing.T) {
	pki := newPKI(t)
	srv, rec := actionServer(t, primaryLeader(), func(c *Config) {
		c.TLS = TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, CAFile: pki.caFile, VerifyClient: VerifyOptional}
	})
	runServer(t, srv)
	base := "https://" + srv.Addr()

	anon := pki.httpClient(false)
	defer anon.CloseIdleConnections()
	res, err := anon.Get(base + "/patroni")
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 1 {
		t.Fatalf("GET /patroni over TLS: %d %s", res.StatusCode, res.Proto)
	}
	res, err = anon.Post(base+"/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 403 || string(body) != "client certificate required" {
		t.Fatalf("unsafe call without client cert: %d %q", res.StatusCode, body)
	}

	withCert := pki.httpClient(true)
	defer withCert.CloseIdleConnections()
	res, err = withCert.Post(base+"/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 202 || len(rec.calls) != 1 {
		t.Fatalf("unsafe call with client cert: %d %v", res.StatusCode, rec.calls)
	}
	if err := srv.ReloadCertificates(); err != nil {
		t.Fatalf("ReloadCertificates: %v", err)
	}
}

func TestTLSVerifyClientRequired(t *testing.T) {
	pki := newPKI(t)
	srv, _ := actionServer(t, primaryLeader(), func(c *Config) {
		c.TLS = TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, CAFile: pki.caFile, VerifyClient: VerifyRequired}
	})
	runServer(t, srv)
	anon := pki.httpClient(false)
	defer anon.CloseIdleConnections()
	if res, err := anon.Get("https://" + srv.Addr() + "/patroni"); err == nil {
		res.Body.Close()
		t.Fatalf("handshake without a client certificate succeeded: %d", res.StatusCode)
	}
	withCert := pki.httpClient(true)
	defer withCert.CloseIdleConnections()
	res, err := withCert.Get("https://" + srv.Addr() + "/primary")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET /primary with client cert: %d", res.StatusCode)
	}
}
