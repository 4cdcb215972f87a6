//go:build integration

package test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
	"github.com/pgnoded/pgnoded/internal/testenv/pki"
)

// restPKI is a private CA for the REST API of a secure cluster (as Pigsty
// renders with patroni_ssl_enabled): one server certificate per node for its
// IP, a client certificate for the nodes' ctl section and one for the test.
type restPKI struct {
	t      testing.TB
	dir    string
	ca     *pki.CA
	caFile string

	ctlCert, ctlKey string          // the nodes' ctl.certfile/keyfile
	testCert        tls.Certificate // the test's own REST client
}

// restAPIUser and restAPIPassword are Pigsty's default REST API credentials.
const (
	restAPIUser     = "postgres"
	restAPIPassword = "Patroni.API"
)

func newRESTPKI(t testing.TB, dir string) *restPKI {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := &restPKI{t: t, dir: dir, ca: pki.New(t, "pgnoded test REST CA")}
	p.caFile = p.write("ca.crt", p.ca.PEM)
	p.ctlCert, p.ctlKey = p.issue("ctl", nil, x509.ExtKeyUsageClientAuth)
	cert, keyFile := p.issue("test-client", nil, x509.ExtKeyUsageClientAuth)
	var err error
	if p.testCert, err = tls.LoadX509KeyPair(cert, keyFile); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *restPKI) write(name string, b []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// issue writes a certificate and key signed by the CA and returns their paths.
func (p *restPKI) issue(name string, ips []net.IP, usage ...x509.ExtKeyUsage) (certFile, keyFile string) {
	cert, key := p.ca.Issue(p.t, name, nil, ips, usage...)
	return p.write(name+".crt", cert), p.write(name+".key", key)
}

// forNode issues ns's server certificate and returns its template data.
func (p *restPKI) forNode(ns *NetNS) *nodeconf.Security {
	cert, key := p.issue("node-"+ns.Role, []net.IP{net.IP(ns.IP.AsSlice())}, x509.ExtKeyUsageServerAuth)
	return &nodeconf.Security{User: restAPIUser, Password: restAPIPassword, ServerCert: cert, ServerKey: key,
		CA: p.caFile, ClientCert: p.ctlCert, ClientKey: p.ctlKey}
}

// clientTLS is the test's REST client: the CA as root, its own client certificate.
func (p *restPKI) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.ca.Pool(), Certificates: []tls.Certificate{p.testCert}, MinVersion: tls.VersionTLS12}
}
