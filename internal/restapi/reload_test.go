package restapi

import (
	"net/http"
	"slices"
	"testing"
)

func TestReloadAppliesAuthAndNamesRestartKeys(t *testing.T) {
	base := func(c *Config) { c.Auth = AuthConfig{Username: "postgres", Password: "old"} }
	srv, _ := actionServer(t, primaryLeader(), base)
	h := srv.Handler()
	post := func(pw string) int {
		return doFrom(t, h, http.MethodPost, "/reload", "127.0.0.1:1", "", "postgres", pw).Code
	}
	if post("old") != 202 || post("new") != 401 {
		t.Fatal("before reload")
	}
	cfg := srv.cfg
	cfg.Auth.Password = "new"
	restart, err := srv.Reload(cfg)
	if err != nil || len(restart) != 0 {
		t.Fatalf("Reload: %v %v", restart, err)
	}
	if post("old") != 401 || post("new") != 202 {
		t.Error("the new password is not in force after Reload")
	}
	cfg.Listen = "127.0.0.1:1"
	cfg.TLS.CertFile = "/nonexistent"
	restart, err = srv.Reload(cfg)
	if err != nil || !slices.Contains(restart, "restapi.listen") || len(restart) != 2 {
		t.Errorf("listen and TLS on: restart %v, err %v", restart, err)
	}
	cfg = srv.cfg
	cfg.TLS.VerifyClient = "sometimes"
	if _, err := srv.Reload(cfg); err == nil {
		t.Error("a bad verify_client was accepted")
	}
}

func TestReloadSwitchesClientVerification(t *testing.T) {
	pki := newPKI(t)
	srv, _ := actionServer(t, primaryLeader(), func(c *Config) {
		c.TLS = TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, CAFile: pki.caFile, VerifyClient: VerifyNone}
	})
	runServer(t, srv)
	base := "https://" + srv.Addr()
	anon := pki.httpClient(false)
	defer anon.CloseIdleConnections()
	get := func() error {
		res, err := anon.Get(base + "/patroni")
		if err == nil {
			res.Body.Close()
		}
		anon.CloseIdleConnections()
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("verify_client none: %v", err)
	}
	cfg := srv.cfg
	cfg.TLS.VerifyClient = VerifyRequired
	if restart, err := srv.Reload(cfg); err != nil || len(restart) != 0 {
		t.Fatalf("Reload: %v %v", restart, err)
	}
	if err := get(); err == nil {
		t.Error("a client without certificate is still served after verify_client became required")
	}
}
