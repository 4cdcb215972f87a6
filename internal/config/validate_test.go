package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCertPair writes a self-signed certificate and its key into dir.
func writeCertPair(t *testing.T, dir, prefix string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgnoded-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath = writeFile(t, dir, prefix+".crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyPath = writeFile(t, dir, prefix+".key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	return certPath, keyPath
}

// validateDoc writes minimal with its data_dir replaced plus extra, and validates it.
func validateDoc(t *testing.T, dataDir, extra string) (string, []Warning, error) {
	t.Helper()
	doc := strings.Replace(minimal, "/tmp/pgnoded-test-data", dataDir, 1) + extra
	path := writeFile(t, t.TempDir(), "pgnoded.yml", doc)
	warns, err := Validate(path, nil)
	return path, warns, err
}

func TestValidateMissingFilesWarn(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	extra := "  bin_dir: " + missing + "/bin\n  callbacks:\n    on_role_change: " + missing + "/cb.sh\n" +
		"log:\n  dir: " + missing + "/log\n" +
		"exporter:\n  config: " + missing + "/pg_exporter.yml\n" +
		"etcd3:\n  host: 127.0.0.1\n  cacert: " + missing + "/ca.crt\n  cert: " + missing + "/c.crt\n  key: " + missing + "/c.key\n"
	_, warns, err := validateDoc(t, missing+"/data", extra)
	if err != nil {
		t.Fatalf("missing files must not be errors: %v", err)
	}
	want := []string{"postgresql.data_dir", "postgresql.bin_dir", "postgresql.callbacks.on_role_change", "log.dir",
		"exporter.config", "etcd3.cacert", "etcd3.cert", "etcd3.key"}
	got := map[string]Warning{}
	for _, w := range warns {
		got[w.Key] = w
	}
	for _, k := range want {
		w, ok := got[k]
		if !ok || !strings.Contains(w.Msg, "does not exist on this machine") || w.Line == 0 {
			t.Errorf("no missing-file warning with a line for %s: %+v", k, w)
		}
	}
}

func TestValidateExistingFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCertPair(t, dir, "server")
	otherCert, _ := writeCertPair(t, dir, "other")
	notPEM := writeFile(t, dir, "garbage.crt", "hello\n")
	dataFile := writeFile(t, dir, "data-is-a-file", "")
	emptyBin := filepath.Join(dir, "bin")
	if err := os.Mkdir(emptyBin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := writeFile(t, dir, "cb.sh", "#!/bin/sh\n")
	goodBin := filepath.Join(dir, "goodbin")
	if err := os.Mkdir(goodBin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(goodBin, "postgres"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		dataDir string
		extra   string
		key     string // "" = no error expected
		msg     string
	}{
		{"good pair and dirs", dir, "  bin_dir: " + goodBin + "\nrestapi:\n  listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008\n  certfile: " + cert + "\n  keyfile: " + key + "\n  cafile: " + cert + "\n", "", ""},
		{"combined cert file", dir, "restapi:\n  listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008\n  certfile: " + combined(t, dir, cert, key) + "\n", "", ""},
		{"mismatched pair", dir, "etcd3:\n  host: 127.0.0.1\n  cert: " + otherCert + "\n  key: " + key + "\n", "etcd3.cert", "do not form a usable pair"},
		{"not PEM", dir, "etcd3:\n  host: 127.0.0.1\n  cacert: " + notPEM + "\n", "etcd3.cacert", "does not contain a PEM certificate"},
		{"key is a cert", dir, "ctl:\n  certfile: " + cert + "\n  keyfile: " + cert + "\n", "ctl.keyfile", "PEM private key"},
		{"cert without key", dir, "etcd3:\n  host: 127.0.0.1\n  cert: " + cert + "\n", "etcd3.key", "holds no private key"},
		{"data_dir is a file", dataFile, "", "postgresql.data_dir", "is not a directory"},
		{"bin_dir without postgres", dir, "  bin_dir: " + emptyBin + "\n", "postgresql.bin_dir", "no executable postgres"},
		{"callback not executable", dir, "  callbacks:\n    on_start: " + script + " arg\n", "postgresql.callbacks.on_start", "not an executable"},
		{"pre_promote not executable", dir, "  pre_promote: " + script + "\n", "postgresql.pre_promote", "not an executable"},
		{"before_stop Patroni cannot split", dir, "  before_stop: \"/bin/echo 'a b\"\n", "postgresql.before_stop", "no closing quotation"},
		{"unlisted replica method Patroni cannot split", dir, "  pgbackrest:\n    command: \"pgbackrest 'restore\"\n", "postgresql.pgbackrest.command", "no closing quotation"},
		{"log dir is a file", dir, "log:\n  dir: " + script + "\n", "log.dir", "is not a directory"},
		{"load errors too", dir, "bootstrap:\n  dcs:\n    ttl: 10\n", "bootstrap.dcs", "timing rule"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, _, err := validateDoc(t, tc.dataDir, tc.extra)
			if tc.key == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			for _, e := range Errors(err) {
				if e.Key == tc.key && strings.Contains(e.Msg, tc.msg) {
					if e.File != path || e.Line == 0 {
						t.Errorf("error not located in the file: %v", e)
					}
					return
				}
			}
			t.Errorf("no error for %s containing %q in: %v", tc.key, tc.msg, err)
		})
	}
}

// combined writes one file holding both the certificate and the key.
func combined(t *testing.T, dir, cert, key string) string {
	t.Helper()
	c, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "combined.pem", string(c)+string(k))
}

func TestValidatePigstyAwayFromNode(t *testing.T) {
	warns, err := Validate("testdata/pigsty.yml", nil)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if len(warns) == 0 {
		t.Errorf("expected missing-file warnings for /pg/... paths on this machine")
	}
	for _, w := range warns {
		if !strings.Contains(w.Msg, "does not exist on this machine") && w.Key != "postgresql.create_replica_methods" {
			t.Errorf("unexpected warning: %v", w)
		}
	}
}
