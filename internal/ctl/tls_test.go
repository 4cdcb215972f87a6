package ctl

import (
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// TestRESTOverTLS checks that ctl.cacert is trusted, that an unknown
// certificate is refused, and that -k skips the check.
func TestRESTOverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, _ := r.BasicAuth(); r.URL.Path != "/reload" || user != "postgres" || pass != "Patroni.API" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "reload scheduled")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	v := cloneView(fixtureView())
	m := v.Members["pg-test-2"]
	m.APIURL = srv.URL + "/patroni"
	v.Members["pg-test-2"] = m
	st := &fakeStore{views: map[string]cluster.View{"pg-test": v}}
	ok := "Reload request received for member pg-test-2 and will be processed within 10 seconds\n"

	trusted := writeConfig(t, authConfig+"ctl:\n  cacert: "+ca+"\n")
	if r := runCtl(t, st, "", nil, "-c", trusted, "reload", "pg-test-2", "--force"); r.code != 0 || !strings.HasSuffix(r.stdout, ok) {
		t.Errorf("with ctl.cacert: exit %d, stderr %q, stdout %s", r.code, r.stderr, r.stdout)
	}
	plain := writeConfig(t, authConfig)
	r := runCtl(t, st, "", nil, "-c", plain, "reload", "pg-test-2", "--force")
	if r.code != 1 || !strings.Contains(r.stdout, "Failed: reload for member pg-test-2, (") || !strings.Contains(r.stdout, "certificate") {
		t.Errorf("unknown CA: exit %d, stdout %s", r.code, r.stdout)
	}
	if r := runCtl(t, st, "", nil, "-k", "-c", plain, "reload", "pg-test-2", "--force"); r.code != 0 || !strings.HasSuffix(r.stdout, ok) {
		t.Errorf("-k: exit %d, stderr %q, stdout %s", r.code, r.stderr, r.stdout)
	}
}
