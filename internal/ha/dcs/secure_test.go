package dcs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/pki"
)

// TestUsernamePasswordAuth: with etcd auth enabled (as Pigsty runs it) a
// member whose role covers only its cluster's prefix works end to end, and bad
// credentials fail New at once instead of retrying.
func TestUsernamePasswordAuth(t *testing.T) {
	e := testenv.StartEtcd(t)
	base := basePath(t)
	c := e.Client()
	ctx := ctxT(t)
	for _, step := range []func() error{
		func() error { _, err := c.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.RoleAdd(ctx, "pg"); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, "pg", base+"/", clientv3.GetPrefixRangeEnd(base+"/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := c.UserAdd(ctx, "pgnoded", "secret"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "pgnoded", "pg"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("auth setup: %v", err)
		}
	}

	cfg := Config{Endpoints: []string{e.Endpoint()}, Username: "pgnoded", Password: "wrong", BasePath: base, Name: "pg1",
		// etcd checks passwords with bcrypt: on a loaded machine that takes
		// longer than a tight retry_timeout, which would end in a deadline instead.
		TTL: 10 * time.Second, RetryTimeout: 10 * time.Second}
	if _, err := New(ctx, cfg); !errors.Is(err, rpctypes.ErrAuthFailed) {
		t.Fatalf("New with a bad password = %v, want an authentication error", err)
	}

	cfg.Password = "secret"
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	exerciseStore(t, s)
}

// TestTLS: https endpoints with a private CA and client certificates (etcd's client-cert-auth).
func TestTLS(t *testing.T) {
	endpoint, files := startTLSEtcd(t)
	cfg := Config{Endpoints: []string{endpoint}, TLS: files, BasePath: basePath(t), Name: "pg1",
		TTL: 10 * time.Second, RetryTimeout: 2 * time.Second}
	s, err := New(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	exerciseStore(t, s)

	noCert := cfg
	noCert.TLS.Cert, noCert.TLS.Key = "", ""
	c, err := NewClient(noCert)
	if err != nil {
		t.Fatalf("NewClient without a client cert: %v", err)
	}
	defer func() { _ = c.Close() }()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.Get(sctx, "/x"); err == nil {
		t.Error("etcd accepted a client without a certificate")
	}
}

// exerciseStore runs a store through a watch, a lease and leader writes, then revokes.
func exerciseStore(t *testing.T, s *Store) {
	t.Helper()
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	ctx := ctxT(t)
	waitFor(t, 10*time.Second, "view ready", func() bool { return !s.View().ReadAt.IsZero() })
	if ok, err := s.AcquireLeader(ctx); err != nil || !ok {
		t.Fatalf("AcquireLeader = %v, %v", ok, err)
	}
	if ok, err := s.UpdateLeader(ctx); err != nil || !ok {
		t.Fatalf("UpdateLeader = %v, %v", ok, err)
	}
	if err := s.SetStatus(ctx, cluster.StatusKey{Optime: 7}); err != nil {
		t.Fatal(err)
	}
	from := time.Now()
	waitFor(t, 10*time.Second, "watch confirmed", func() bool { return s.View().ReadAt.After(from) })
	if err := s.Close(ctx, true); err != nil {
		t.Fatalf("Close(revoke): %v", err)
	}
	if !s.LeaseValidUntil().IsZero() {
		t.Error("LeaseValidUntil after revoke is not zero")
	}
}

// startTLSEtcd starts an embedded etcd serving https with client-cert-auth.
func startTLSEtcd(t *testing.T) (string, TLSFiles) {
	t.Helper()
	dir := t.TempDir()
	files := writeTestPKI(t, dir)
	clientURL := fmt.Sprintf("https://127.0.0.1:%d", testenv.FreePort(t))
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	cfg := embed.NewConfig()
	cfg.Name = fmt.Sprintf("tls%d", os.Getpid())
	cfg.Dir = filepath.Join(dir, "data")
	cu, _ := url.Parse(clientURL)
	pu, _ := url.Parse(peerURL)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + peerURL
	cfg.ClientTLSInfo.CertFile = filepath.Join(dir, "server.pem")
	cfg.ClientTLSInfo.KeyFile = filepath.Join(dir, "server-key.pem")
	cfg.ClientTLSInfo.TrustedCAFile = files.CACert
	cfg.ClientTLSInfo.ClientCertAuth = true
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start TLS etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	select {
	case <-srv.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("TLS etcd not ready")
	}
	return clientURL, files
}

// writeTestPKI writes a CA, a server cert for 127.0.0.1 and a client cert.
func writeTestPKI(t *testing.T, dir string) TLSFiles {
	t.Helper()
	ca := pki.New(t, "test CA")
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", ca.PEM)
	localhost := []net.IP{net.ParseIP("127.0.0.1")}
	for _, c := range []struct {
		name  string
		usage x509.ExtKeyUsage
	}{{"server", x509.ExtKeyUsageServerAuth}, {"client", x509.ExtKeyUsageClientAuth}} {
		cert, key := ca.Issue(t, c.name, nil, localhost, c.usage)
		write(c.name+".pem", cert)
		write(c.name+"-key.pem", key)
	}
	return TLSFiles{CACert: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client-key.pem")}
}
