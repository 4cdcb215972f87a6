package restapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// recordingActions counts the calls that reach the HA loop: a body the REST
// layer rejects (4xx) must never get there, so it changes nothing.
type recordingActions struct {
	NotImplemented
	mu    sync.Mutex
	calls []string
}

func (r *recordingActions) record(name string) {
	r.mu.Lock()
	r.calls = append(r.calls, name)
	r.mu.Unlock()
}

func (r *recordingActions) Switchover(context.Context, SwitchoverRequest) (cluster.OpResult, error) {
	r.record("switchover")
	return cluster.Done("Successfully switched over"), nil
}

func (r *recordingActions) Failover(context.Context, SwitchoverRequest) (cluster.OpResult, error) {
	r.record("failover")
	return cluster.Done("Successfully failed over"), nil
}

func (r *recordingActions) Restart(context.Context, RestartRequest) (cluster.OpResult, error) {
	r.record("restart")
	return cluster.Done("restarted successfully"), nil
}

func (r *recordingActions) Reinitialize(context.Context, ReinitializeRequest) (cluster.OpResult, error) {
	r.record("reinitialize")
	return cluster.Done("reinitialize started"), nil
}

func (r *recordingActions) PatchConfig(context.Context, map[string]any) ([]byte, error) {
	r.record("patch")
	return []byte("{}"), nil
}

func (r *recordingActions) Failsafe(context.Context, FailsafeRequest) (cluster.OpResult, error) {
	r.record("failsafe")
	return cluster.Done("Accepted"), nil
}

// fuzzBody sends body to method path on a fresh server and checks the rules:
// no panic (the fuzzer reports one), a status, and no action behind a 4xx.
func fuzzBody(t *testing.T, method, path, body string) {
	snap := primaryLeader()
	snap.Config.FailsafeMode = true
	acts := &recordingActions{}
	s, err := New(Config{Listen: "127.0.0.1:0", Now: func() time.Time { return testNow }}, newSource(snap), acts)
	if err != nil {
		t.Fatal(err)
	}
	rec := do(t, s.Handler(), method, path, body)
	if rec.Code < 200 || rec.Code > 599 {
		t.Fatalf("%s %s %q: status %d", method, path, body, rec.Code)
	}
	if rec.Code >= 400 && rec.Code < 500 && len(acts.calls) > 0 {
		t.Fatalf("%s %s %q: rejected with %d %q but reached the HA loop (%v)", method, path, body, rec.Code,
			strings.TrimSpace(rec.Body.String()), acts.calls)
	}
	if len(acts.calls) > 1 {
		t.Fatalf("%s %s %q: %d actions for one request", method, path, body, len(acts.calls))
	}
}

var bodySeeds = []string{
	``, `{}`, `[]`, `null`, `{"leader":"pg-test-1","candidate":"pg-test-2"}`,
	`{"leader":"pg-test-1","candidate":"pg-test-2","scheduled_at":"2026-05-01T12:30:00+00:00"}`,
	`{"candidate":"pg-test-2"}`, `{"leader":""}`, `{"scheduled_at":"not a time"}`,
	`{"schedule":"2026-05-01T12:30:00Z","role":"master","postgres_version":"15.2","timeout":"30s","restart_pending":true}`,
	`{"role":"bogus"}`, `{"timeout":-1}`, `{"force":true,"from_leader":"yes"}`,
	`{"synchronous_mode":true}`, `{"ttl":20,"postgresql":{"parameters":{"work_mem":"8MB"}}}`, `{"standby_cluster":{"host":"x"}}`,
	`{"name":"pg-test-2","conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","slots":{"a":1}}`,
	`{"name":""}`, `{"slots":[]}`, `{"a":1,"a":2}`, `{"a":1} trailing`, "{\"\xff\":1}", `{"leader":1e999}`,
}

func addSeeds(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add(s)
	}
}

func FuzzSwitchoverBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body string) { fuzzBody(t, http.MethodPost, "/switchover", body) })
}

func FuzzFailoverBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body string) { fuzzBody(t, http.MethodPost, "/failover", body) })
}

func FuzzRestartBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body string) { fuzzBody(t, http.MethodPost, "/restart", body) })
}

func FuzzReinitializeBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body string) { fuzzBody(t, http.MethodPost, "/reinitialize", body) })
}

func FuzzPatchConfigBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body string) { fuzzBody(t, http.MethodPatch, "/config", body) })
}

func FuzzFailsafeBody(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body string) { fuzzBody(t, http.MethodPost, "/failsafe", body) })
}
