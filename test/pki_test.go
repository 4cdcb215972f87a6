//go:build integration

package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// restPKI is a private CA for the REST API of a secure cluster (as Pigsty
// renders with patroni_ssl_enabled): one server certificate per node for its
// IP, a client certificate for the nodes' ctl section and one for the test.
type restPKI struct {
	t      testing.TB
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	serial int64

	ctlCert, ctlKey string          // the nodes' ctl.certfile/keyfile
	testCert        tls.Certificate // the test's own REST client
}

// restSecurity is the template data of a secure node's restapi and ctl sections.
type restSecurity struct {
	User, Password        string
	ServerCert, ServerKey string
	CA                    string
	ClientCert, ClientKey string
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgnoded test REST CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &restPKI{t: t, dir: dir, caCert: ca, caKey: key, serial: 1, caFile: filepath.Join(dir, "ca.crt")}
	p.write("ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	p.ctlCert, p.ctlKey = p.issue("ctl", nil, x509.ExtKeyUsageClientAuth)
	cert, keyFile := p.issue("test-client", nil, x509.ExtKeyUsageClientAuth)
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.write(name+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		p.write(name+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// forNode issues ns's server certificate and returns its template data.
func (p *restPKI) forNode(ns *NetNS) *restSecurity {
	cert, key := p.issue("node-"+ns.Role, []net.IP{net.IP(ns.IP.AsSlice())}, x509.ExtKeyUsageServerAuth)
	return &restSecurity{User: restAPIUser, Password: restAPIPassword, ServerCert: cert, ServerKey: key,
		CA: p.caFile, ClientCert: p.ctlCert, ClientKey: p.ctlKey}
}

// clientTLS is the test's REST client: the CA as root, its own client certificate.
func (p *restPKI) clientTLS() *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(p.caCert)
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{p.testCert}, MinVersion: tls.VersionTLS12}
}
