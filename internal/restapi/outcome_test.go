package restapi

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// kindActions refuses every request with an *OpError of its kind, or succeeds when ok.
type kindActions struct {
	NotImplemented
	kind cluster.OpErrorKind
	ok   bool
}

func (a kindActions) answer(text string) (cluster.OpResult, error) {
	if a.ok {
		return cluster.Done(text), nil
	}
	return cluster.OpResult{}, cluster.Refuse(a.kind, text)
}

func (a kindActions) Switchover(context.Context, SwitchoverRequest) (cluster.OpResult, error) {
	return a.answer("switchover text")
}

func (a kindActions) PatchConfig(context.Context, map[string]any) ([]byte, error) {
	if a.ok {
		return []byte(`{"ttl":20}`), nil
	}
	return nil, cluster.Refuse(a.kind, "patch text")
}

func (a kindActions) PutConfig(context.Context, map[string]any) ([]byte, error) {
	if a.ok {
		return []byte(`{"ttl":30}`), nil
	}
	return nil, cluster.Refuse(a.kind, "put text")
}

func (a kindActions) Failsafe(context.Context, FailsafeRequest) (cluster.OpResult, error) {
	return a.answer("Accepted")
}

// TestOpErrorStatus is the kind → status table: every kind has Patroni's
// status, on an ordinary endpoint and on the two that answer differently.
func TestOpErrorStatus(t *testing.T) {
	want := map[cluster.OpErrorKind]int{
		cluster.OpInternal:     500,
		cluster.OpBadRequest:   400,
		cluster.OpNotFound:     404,
		cluster.OpConflict:     409,
		cluster.OpInfeasible:   412,
		cluster.OpUnavailable:  503,
		cluster.OpFailed:       503,
		cluster.OpStoreFailed:  503,
		cluster.OpShuttingDown: 503,
	}
	if len(want) != len(cluster.OpErrorKinds) || len(opErrorStatus) != len(cluster.OpErrorKinds) {
		t.Fatalf("the table covers %d kinds, the test %d, cluster has %d", len(opErrorStatus), len(want), len(cluster.OpErrorKinds))
	}
	failsafeSnap := primaryLeader()
	failsafeSnap.Config.FailsafeMode = true
	for _, kind := range cluster.OpErrorKinds {
		t.Run(kind.String(), func(t *testing.T) {
			code, ok := want[kind]
			if !ok {
				t.Fatalf("kind %v missing from the test's table", kind)
			}
			cfg := Config{Listen: "127.0.0.1:0", Now: func() time.Time { return testNow }}
			srv, err := New(cfg, newSource(primaryLeader()), kindActions{kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			body := `{"leader":"pg1"}`
			res := do(t, srv.Handler(), http.MethodPost, "/switchover", body, "Content-Length", itoa(len(body)))
			if res.Code != code || res.Body.String() != "switchover text" {
				t.Errorf("POST /switchover: %d %q, want %d", res.Code, res.Body.String(), code)
			}
			body = `{"ttl":20}`
			res = do(t, srv.Handler(), http.MethodPatch, "/config", body, "Content-Length", itoa(len(body)))
			if res.Code != code || res.Body.String() != "patch text" || res.Header().Get("Content-Type") != ctText[0] {
				t.Errorf("PATCH /config: %d %q %q, want %d text", res.Code, res.Body.String(), res.Header().Get("Content-Type"), code)
			}
			// PUT /config: a failed DCS write is 502 (Patroni's do_PUT_config).
			putCode := code
			if kind == cluster.OpStoreFailed {
				putCode = http.StatusBadGateway
			}
			res = do(t, srv.Handler(), http.MethodPut, "/config", body, "Content-Length", itoa(len(body)))
			if res.Code != putCode || res.Body.String() != "put text" {
				t.Errorf("PUT /config: %d %q, want %d", res.Code, res.Body.String(), putCode)
			}
			// POST /failsafe: anything but "Accepted" is 500 (Patroni's do_POST_failsafe).
			fs, err := New(cfg, newSource(failsafeSnap), kindActions{kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			body = `{"name":"pg2"}`
			res = do(t, fs.Handler(), http.MethodPost, "/failsafe", body, "Content-Length", itoa(len(body)))
			if res.Code != http.StatusInternalServerError || res.Body.String() != "Accepted" {
				t.Errorf("POST /failsafe: %d %q, want 500", res.Code, res.Body.String())
			}
		})
	}
}

func TestOpResultStatus(t *testing.T) {
	for _, tc := range []struct {
		res  cluster.OpResult
		code int
	}{
		{cluster.Done("done"), http.StatusOK},
		{cluster.Scheduled("later"), http.StatusAccepted},
	} {
		if code, text := outcomeStatus(tc.res, nil); code != tc.code || text != tc.res.Text {
			t.Errorf("%+v: %d %q, want %d", tc.res, code, text, tc.code)
		}
	}
	srv, err := New(Config{Listen: "127.0.0.1:0", Now: func() time.Time { return testNow }},
		newSource(primaryLeader()), kindActions{ok: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{http.MethodPatch, http.MethodPut} {
		body := `{"ttl":20}`
		res := do(t, srv.Handler(), m, "/config", body, "Content-Length", itoa(len(body)))
		if res.Code != 200 || res.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s /config: %d %q", m, res.Code, res.Header().Get("Content-Type"))
		}
	}
}
