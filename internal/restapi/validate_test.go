package restapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// recorder is an Actions fake that records what reached it.
type recorder struct {
	NotImplemented
	mu         sync.Mutex
	calls      []string
	switchover SwitchoverRequest
	restart    RestartRequest
	reinit     ReinitializeRequest
	failsafe   FailsafeRequest
	config     map[string]any
}

func (r *recorder) record(name string) {
	r.mu.Lock()
	r.calls = append(r.calls, name)
	r.mu.Unlock()
}

func (r *recorder) Switchover(_ context.Context, req SwitchoverRequest) (cluster.OpResult, error) {
	r.record("switchover")
	r.switchover = req
	return cluster.Done(`Successfully switched over to "` + req.Candidate + `"`), nil
}

func (r *recorder) Failover(_ context.Context, req SwitchoverRequest) (cluster.OpResult, error) {
	r.record("failover")
	r.switchover = req
	return cluster.Done(`Successfully failed over to "` + req.Candidate + `"`), nil
}

func (r *recorder) Restart(_ context.Context, req RestartRequest) (cluster.OpResult, error) {
	r.record("restart")
	r.restart = req
	if !req.Schedule.IsZero() {
		return cluster.Scheduled("Restart scheduled"), nil
	}
	return cluster.Done("restarted successfully"), nil
}

func (r *recorder) Reinitialize(_ context.Context, req ReinitializeRequest) (cluster.OpResult, error) {
	r.record("reinitialize")
	r.reinit = req
	return cluster.Done("reinitialize started"), nil
}

func (r *recorder) PatchConfig(_ context.Context, patch map[string]any) ([]byte, error) {
	r.record("patch")
	r.config = patch
	return []byte(`{"ttl":20}`), nil
}

func (r *recorder) Failsafe(_ context.Context, req FailsafeRequest) (cluster.OpResult, error) {
	r.record("failsafe")
	r.failsafe = req
	return cluster.Done("Accepted"), nil
}

func (r *recorder) Reload(context.Context) (cluster.OpResult, error) {
	r.record("reload")
	return cluster.Scheduled("reload scheduled"), nil
}

func actionServer(t *testing.T, snap *cluster.Snapshot, mutate ...func(*Config)) (*Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg := Config{Listen: "127.0.0.1:0", Now: func() time.Time { return testNow }}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := New(cfg, newSource(snap), rec)
	if err != nil {
		t.Fatal(err)
	}
	return srv, rec
}

func paused(f func() *cluster.Snapshot) func() *cluster.Snapshot {
	return func() *cluster.Snapshot { s := f(); s.Paused = true; return s }
}

func compat4(f func() *cluster.Snapshot) func() *cluster.Snapshot {
	return func() *cluster.Snapshot { s := f(); s.Compat = cluster.Compat4; return s }
}

const (
	future = "2024-08-28T20:30:00+00:00"
	past   = "2024-08-28T19:00:00+00:00"
)

func TestSwitchoverValidation(t *testing.T) {
	cases := []struct {
		name    string
		snap    func() *cluster.Snapshot
		path    string
		body    string
		code    int
		text    string
		reached string // the Actions method called, "" = none
	}{
		{"failover needs candidate", primaryLeader, "/failover", `{"leader":"pg1"}`, 400, "Failover could be performed only to a specific candidate", ""},
		{"switchover needs leader", primaryLeader, "/switchover", `{"candidate":"pg2"}`, 400, "Switchover could be performed only from a specific leader", ""},
		{"empty strings are missing", primaryLeader, "/switchover", `{"leader":"","candidate":"pg2"}`, 400, "Switchover could be performed only from a specific leader", ""},
		{"member alias", primaryLeader, "/failover", `{"member":"pg2"}`, 200, `Successfully failed over to "pg2"`, "failover"},
		{"3.0.2 scheduled failover needs leader", primaryLeader, "/failover", `{"candidate":"pg2","scheduled_at":"` + future + `"}`, 400, "Scheduled failover is possible only from a specific leader", ""},
		{"3.0.2 scheduled while paused", paused(primaryLeader), "/switchover", `{"leader":"pg1","candidate":"pg2","scheduled_at":"` + future + `"}`, 400, "Can't schedule switchover in the paused state", ""},
		{"no timezone", primaryLeader, "/switchover", `{"leader":"pg1","scheduled_at":"2024-08-28T20:30:00"}`, 400, "Timezone information is mandatory for the scheduled switchover", ""},
		{"in the past", primaryLeader, "/switchover", `{"leader":"pg1","scheduled_at":"` + past + `"}`, 422, "Cannot schedule switchover in the past", ""},
		{"unparsable", primaryLeader, "/switchover", `{"leader":"pg1","scheduled_at":"tomorrow-ish"}`, 422, msgUnparsableSchedule, ""},
		{"not a string", primaryLeader, "/switchover", `{"leader":"pg1","scheduled_at":12345}`, 422, msgUnparsableSchedule, ""},
		{"3.0.2 paused without candidate", paused(primaryLeader), "/switchover", `{"leader":"pg1"}`, 400, "Switchover is possible only to a specific candidate in a paused state", ""},
		{"scheduled ok", primaryLeader, "/switchover", `{"leader":"pg1","candidate":"pg2","scheduled_at":"2024-08-28 20:30:00.5+00:00"}`, 200, `Successfully switched over to "pg2"`, "switchover"},
		{"3.0.2 failover naming a leader stays a failover", primaryLeader, "/failover", `{"leader":"pg1","candidate":"pg2"}`, 200, `Successfully failed over to "pg2"`, "failover"},
		{"3.0.2 same leader and candidate reaches HA", primaryLeader, "/switchover", `{"leader":"pg1","candidate":"pg1"}`, 200, `Successfully switched over to "pg1"`, "switchover"},

		{"4.x failover can't be scheduled", compat4(primaryLeader), "/failover", `{"candidate":"pg2","scheduled_at":"` + future + `"}`, 400, "Failover can't be scheduled", ""},
		{"4.x scheduled while paused", compat4(paused(primaryLeader)), "/switchover", `{"leader":"pg1","scheduled_at":"` + future + `"}`, 400, "Can't schedule switchover in the paused state", ""},
		{"4.x paused without candidate", compat4(paused(primaryLeader)), "/switchover", `{"leader":"pg1"}`, 400, "Switchover is possible only to a specific candidate in a paused state", ""},
		{"4.x failover with leader becomes switchover", compat4(primaryLeader), "/failover", `{"leader":"pg1","candidate":"pg2"}`, 200, `Successfully switched over to "pg2"`, "switchover"},
		{"4.x same source and target", compat4(primaryLeader), "/switchover", `{"leader":"pg1","candidate":"pg1"}`, 400, "Switchover target and source are the same", ""},
		{"4.x past", compat4(primaryLeader), "/switchover", `{"leader":"pg1","scheduled_at":"` + past + `"}`, 422, "Cannot schedule switchover in the past", ""},

		{"not an object", primaryLeader, "/switchover", `["pg1"]`, 400, "Bad request: body is not a JSON object", ""},
		{"empty object", primaryLeader, "/switchover", `{}`, 400, "Bad request: empty JSON object", ""},
		{"broken JSON", primaryLeader, "/switchover", `{"leader":`, 400, "", ""},
		{"trailing garbage", primaryLeader, "/switchover", `{"leader":"pg1"} x`, 400, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, rec := actionServer(t, tc.snap())
			res := do(t, srv.Handler(), http.MethodPost, tc.path, tc.body, "Content-Length", itoa(len(tc.body)))
			if res.Code != tc.code || (tc.text != "" && res.Body.String() != tc.text) {
				t.Fatalf("got %d %q, want %d %q", res.Code, res.Body.String(), tc.code, tc.text)
			}
			if got := strings.Join(rec.calls, ","); got != tc.reached {
				t.Fatalf("actions reached: %q, want %q", got, tc.reached)
			}
		})
	}

	srv, rec := actionServer(t, primaryLeader())
	body := `{"leader":"pg1","member":"pg2","scheduled_at":"2024-08-28T22:30:00+02:00"}`
	do(t, srv.Handler(), http.MethodPost, "/switchover", body, "Content-Length", itoa(len(body)))
	want := SwitchoverRequest{Leader: "pg1", Candidate: "pg2", ScheduledAt: time.Date(2024, 8, 28, 20, 30, 0, 0, time.UTC)}
	if !rec.switchover.ScheduledAt.Equal(want.ScheduledAt) || rec.switchover.Leader != "pg1" || rec.switchover.Candidate != "pg2" {
		t.Fatalf("request passed on: %+v", rec.switchover)
	}
}

func TestRestartValidation(t *testing.T) {
	cases := []struct {
		name string
		snap func() *cluster.Snapshot
		body string
		code int
		text string
	}{
		{"no body", primaryLeader, "", 200, "restarted successfully"},
		{"empty object", primaryLeader, `{}`, 200, "restarted successfully"},
		{"paused with schedule", paused(primaryLeader), `{"schedule":"` + future + `"}`, 500, "Can't schedule restart in the paused state"},
		{"paused without schedule", paused(primaryLeader), `{"role":"replica"}`, 200, "restarted successfully"},
		{"scheduled", primaryLeader, `{"schedule":"` + future + `"}`, 202, "Restart scheduled"},
		{"schedule in the past", primaryLeader, `{"schedule":"` + past + `"}`, 422, "Cannot schedule restart in the past"},
		{"schedule without zone", primaryLeader, `{"schedule":"2024-08-28 20:30"}`, 400, "Timezone information is mandatory for the scheduled restart"},
		{"3.0.2 role master", primaryLeader, `{"role":"master"}`, 200, "restarted successfully"},
		{"3.0.2 bad role", primaryLeader, `{"role":"standby_leader"}`, 400, "PostgreSQL role should be either primary or replica"},
		{"4.x role master refused", compat4(primaryLeader), `{"role":"master"}`, 400, "PostgreSQL role should be either primary, standby_leader, or replica"},
		{"4.x standby_leader", compat4(primaryLeader), `{"role":"standby_leader"}`, 200, "restarted successfully"},
		{"version ok", primaryLeader, `{"postgres_version":"15.8"}`, 200, "restarted successfully"},
		{"version 9.6 two parts", primaryLeader, `{"postgres_version":"9.6"}`, 400, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"},
		{"version letters", primaryLeader, `{"postgres_version":"a.b.c"}`, 400, "Invalid PostgreSQL version: a.b.c"},
		{"version single", primaryLeader, `{"postgres_version":"16"}`, 400, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 16"},
		{"timeout zero", primaryLeader, `{"timeout":0}`, 400, "Timeout should be a positive number of seconds"},
		{"timeout text", primaryLeader, `{"timeout":"soon"}`, 400, "Timeout should be a positive number of seconds"},
		{"timeout bool", primaryLeader, `{"timeout":true}`, 400, "Timeout should be a positive number of seconds"},
		{"timeout with unit", primaryLeader, `{"timeout":"2min"}`, 200, "restarted successfully"},
		{"timeout sub-second rounds to 0", primaryLeader, `{"timeout":"400ms"}`, 400, "Timeout should be a positive number of seconds"},
		{"unknown key", primaryLeader, `{"force":true}`, 400, "Unknown filter for the scheduled restart: force"},
		{"first bad key in body order wins", primaryLeader, `{"zzz":1,"role":"bogus"}`, 400, "Unknown filter for the scheduled restart: zzz"},
		{"first bad key in body order wins (2)", primaryLeader, `{"role":"bogus","zzz":1}`, 400, "PostgreSQL role should be either primary or replica"},
		{"not an object", primaryLeader, `"restart"`, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := actionServer(t, tc.snap())
			var hdr []string
			if tc.body != "" {
				hdr = []string{"Content-Length", itoa(len(tc.body))}
			}
			res := do(t, srv.Handler(), http.MethodPost, "/restart", tc.body, hdr...)
			if res.Code != tc.code || (tc.text != "" && res.Body.String() != tc.text) {
				t.Fatalf("got %d %q, want %d %q", res.Code, res.Body.String(), tc.code, tc.text)
			}
		})
	}

	srv, rec := actionServer(t, primaryLeader())
	body := `{"schedule":"` + future + `","role":"replica","postgres_version":"16.4","timeout":"90","restart_pending":true}`
	do(t, srv.Handler(), http.MethodPost, "/restart", body, "Content-Length", itoa(len(body)))
	got := rec.restart
	if got.Role != "replica" || got.PostgresVersion != "16.4" || got.Timeout != 90*time.Second || !got.RestartPending ||
		!got.Schedule.Equal(time.Date(2024, 8, 28, 20, 30, 0, 0, time.UTC)) {
		t.Fatalf("restart request passed on: %+v", got)
	}
}

func TestOtherActions(t *testing.T) {
	srv, rec := actionServer(t, replicaStreaming())
	h := srv.Handler()
	body := `{"force":"yes","from_leader":1}`
	if res := do(t, h, http.MethodPost, "/reinitialize", body, "Content-Length", itoa(len(body))); res.Code != 200 || !rec.reinit.Force || !rec.reinit.FromLeader {
		t.Fatalf("reinitialize: %d %+v", res.Code, rec.reinit)
	}
	if res := do(t, h, http.MethodPost, "/reinitialize", ""); res.Code != 200 || rec.reinit.Force {
		t.Fatalf("reinitialize without body: %d %+v", res.Code, rec.reinit)
	}
	if res := do(t, h, http.MethodPost, "/reload", ""); res.Code != 202 || res.Body.String() != "reload scheduled" {
		t.Fatalf("reload: %d %q", res.Code, res.Body.String())
	}
	body = `{"ttl":20,"postgresql":{"parameters":{"work_mem":null}}}`
	res := do(t, h, http.MethodPatch, "/config", body, "Content-Length", itoa(len(body)))
	if res.Code != 200 || res.Header().Get("Content-Type") != "application/json" || rec.config["ttl"] != float64(20) {
		t.Fatalf("patch config: %d %q %v", res.Code, res.Header().Get("Content-Type"), rec.config)
	}
	if res := do(t, h, http.MethodPatch, "/config", "", "Content-Length", "0"); res.Code != 400 {
		t.Fatalf("patch with empty body: %d", res.Code)
	}
	if res := do(t, h, http.MethodPut, "/config", `{"ttl":30}`, "Content-Length", "10"); res.Code != 503 {
		t.Fatalf("NotImplemented put config: %d", res.Code)
	}
	for _, path := range []string{"/restart", "/switchover"} {
		if res := do(t, h, http.MethodDelete, path, ""); res.Code != 503 || res.Body.String() != "not implemented yet" {
			t.Fatalf("DELETE %s on NotImplemented: %d %q", path, res.Code, res.Body.String())
		}
	}
	body = `{"a":1}`
	if res := do(t, h, http.MethodPost, "/citus", body, "Content-Length", itoa(len(body))); res.Code != 200 || res.Body.String() != "OK" {
		t.Fatalf("citus: %d", res.Code)
	}
	if res := do(t, h, http.MethodPost, "/sigterm", ""); res.Code != 202 {
		t.Fatalf("sigterm: %d", res.Code)
	}
}

func TestFailsafePost(t *testing.T) {
	good := `{"name":"pg1","conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","slots":{"pg2":83886000}}`
	withMode := func(on bool, f func() *cluster.Snapshot) func() *cluster.Snapshot {
		return func() *cluster.Snapshot { s := f(); s.Config.FailsafeMode = on; return s }
	}
	cases := []struct {
		name string
		snap func() *cluster.Snapshot
		body string
		code int
	}{
		{"disabled", withMode(false, replicaStreaming), good, 502},
		{"accepted", withMode(true, replicaStreaming), good, 200},
		{"missing name", withMode(true, replicaStreaming), `{"api_url":"http://x"}`, 400},
		{"name not a string", withMode(true, replicaStreaming), `{"name":5}`, 400},
		{"slots not an object", withMode(true, replicaStreaming), `{"name":"pg1","slots":[1]}`, 400},
		{"slot not a number", withMode(true, replicaStreaming), `{"name":"pg1","slots":{"pg2":"x"}}`, 400},
		{"malformed JSON", withMode(true, replicaStreaming), `{"name":`, 400},
		{"empty", withMode(true, replicaStreaming), `{}`, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, rec := actionServer(t, tc.snap())
			res := do(t, srv.Handler(), http.MethodPost, "/failsafe", tc.body, "Content-Length", itoa(len(tc.body)))
			if res.Code != tc.code {
				t.Fatalf("got %d %q, want %d", res.Code, res.Body.String(), tc.code)
			}
			if tc.code != 200 && len(rec.calls) != 0 {
				t.Fatalf("a refused request reached the HA loop: %v", rec.calls)
			}
			if tc.code == 200 {
				if rec.failsafe.Name != "pg1" || rec.failsafe.Slots["pg2"] != 83886000 {
					t.Fatalf("request passed on: %+v", rec.failsafe)
				}
				if res.Header().Get("lsn") != itoa(testOptime) {
					t.Fatalf("lsn header: %q", res.Header().Get("lsn"))
				}
			}
		})
	}
}

func TestParseUnitInt(t *testing.T) {
	for _, tc := range []struct {
		in, base string
		want     int64
		ok       bool
	}{
		{"1024", "B", 1024, true}, {"10MB", "B", 10 << 20, true}, {"1kB", "B", 1024, true},
		{"1TB", "B", 1 << 40, true}, {"  16 MB ", "B", 16 << 20, true}, {"0x400", "B", 1024, true},
		{"010", "B", 8, true}, {"1.5MB", "B", 1536 << 10, true}, {"1e3", "B", 1000, true},
		{".5kB", "B", 512, true}, {"10mb", "B", 0, false}, {"10 XB", "B", 0, false}, {"abc", "B", 0, false},
		{"", "B", 0, false}, {"08", "B", 0, false}, {"-1", "B", -1, true}, {"2.5", "B", 2, true},
		{"30", "s", 30, true}, {"2min", "s", 120, true}, {"1h", "s", 3600, true}, {"1d", "s", 86400, true},
		{"1500ms", "s", 2, true}, {"400ms", "s", 0, true}, {"30.5", "s", 30, true},
		{"99999999999999999999999", "B", 1<<63 - 1, true},
	} {
		got, ok := parseUnitInt(tc.in, tc.base)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseUnitInt(%q, %q) = %d, %v; want %d, %v", tc.in, tc.base, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPythonFormatting(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{pyEpochSeconds(time.Date(2024, 8, 28, 19, 39, 26, 352526000, time.UTC)), "1724873966.352526"},
		{pyEpochSeconds(time.Unix(1724873966, 0)), "1724873966.0"},
		{pyTagString(true), "true"}, {pyTagString(1.5), "1.5"}, {pyTagString(2.0), "2"}, {pyTagString("Yes"), "Yes"},
		{pyTagString(map[string]any{"A": "B"}), "{'a': 'b'}"},
		{paddedVersion("3.0.2"), "030002"}, {paddedVersion("4.1.4"), "040104"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
