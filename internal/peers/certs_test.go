package peers

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgnoded/pgnoded/internal/testenv/pki"
)

// serverTLS is a server config with cert/key that requires client certificates from clientCA (nil: none asked).
func serverTLS(t *testing.T, certPEM, keyPEM []byte, clientCA *pki.CA) *tls.Config {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{pair}}
	if clientCA != nil {
		tc.ClientCAs, tc.ClientAuth = clientCA.Pool(), tls.RequireAndVerifyClientCert
	}
	return tc
}

// writeFile writes b into dir/name and returns the path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
