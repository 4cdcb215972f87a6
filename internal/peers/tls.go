package peers

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// tlsConfig builds the client side of peer requests (patroni/request.py with
// insecure=True): with a client certificate, present it and verify the
// peer's chain against CAFile (system roots when empty) but not its host
// name; without one, verify nothing.
func tlsConfig(s Settings) (*tls.Config, error) {
	// Verification is done by verifyChain below, never by crypto/tls (which
	// would also check the host name).
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if s.CertFile == "" {
		return tc, nil
	}
	cert, err := loadKeyPair(s.CertFile, s.KeyFile, s.KeyPassword)
	if err != nil {
		return nil, err
	}
	tc.Certificates = []tls.Certificate{cert}
	var roots *x509.CertPool
	if s.CAFile != "" {
		b, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("peer CA %s: %w", s.CAFile, err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("peer CA %s: no PEM certificates", s.CAFile)
		}
	} else if roots, err = x509.SystemCertPool(); err != nil {
		return nil, fmt.Errorf("peer CA: system roots: %w", err)
	}
	tc.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(cs, roots) }
	return tc, nil
}

// verifyChain checks the peer's certificate chain up to roots, for server
// authentication, without a host name (OpenSSL's CERT_REQUIRED with
// check_hostname off, as urllib3 does with assert_hostname=False).
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("peer sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

// loadKeyPair reads the client certificate and its key (from certFile when
// keyFile is empty), decrypting a PEM key encrypted with password (the
// "Proc-Type: 4,ENCRYPTED" form; encrypted PKCS#8 is refused with a reason).
func loadKeyPair(certFile, keyFile, password string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("peer client certificate: %w", err)
	}
	keyPEM := certPEM
	if keyFile != "" {
		if keyPEM, err = os.ReadFile(keyFile); err != nil {
			return tls.Certificate{}, fmt.Errorf("peer client key: %w", err)
		}
	}
	if password != "" {
		if keyPEM, err = decryptKey(keyPEM, password); err != nil {
			return tls.Certificate{}, fmt.Errorf("peer client key %s: %w", first(keyFile, certFile), err)
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("peer client certificate %s: %w", certFile, err)
	}
	return cert, nil
}

// decryptKey returns the first private key block of data, decrypted when it is encrypted.
func decryptKey(data []byte, password string) ([]byte, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no private key found")
		}
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted PKCS#8 keys are not supported; use a PEM key encrypted with a Proc-Type header, or an unencrypted key")
		case x509.IsEncryptedPEMBlock(b): // legacy PEM encryption: what keyfile_password protects in Patroni's configs
			der, err := x509.DecryptPEMBlock(b, []byte(password))
			if err != nil {
				return nil, fmt.Errorf("decrypt with keyfile_password: %w", err)
			}
			return pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: der}), nil
		case b.Type == "PRIVATE KEY" || b.Type == "RSA PRIVATE KEY" || b.Type == "EC PRIVATE KEY":
			return pem.EncodeToMemory(b), nil
		}
	}
}
