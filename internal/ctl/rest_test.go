package ctl

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// call is one request a fake member received.
type call struct {
	member, method, path, body, user, pass string
}

// reply is what a fake member answers to METHOD /path.
type reply struct {
	status int
	text   string
}

// fakeMembers serves one REST API per member of the fixture cluster and
// records every request.
type fakeMembers struct {
	mu      sync.Mutex
	calls   []call
	replies map[string]func(member string) reply // "POST /switchover" -> reply
	view    cluster.View
}

func newFakeMembers(t *testing.T, v cluster.View, replies map[string]func(string) reply) *fakeMembers {
	t.Helper()
	f := &fakeMembers{replies: replies, view: v}
	for name, m := range v.Members {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			user, pass, _ := r.BasicAuth()
			f.mu.Lock()
			f.calls = append(f.calls, call{member: name, method: r.Method, path: r.URL.Path, body: string(body), user: user, pass: pass})
			h := f.replies[r.Method+" "+r.URL.Path]
			f.mu.Unlock()
			rep := reply{status: http.StatusNotFound, text: "not found"}
			if h != nil {
				rep = h(name)
			}
			w.WriteHeader(rep.status)
			io.WriteString(w, rep.text)
		}))
		t.Cleanup(srv.Close)
		m.APIURL = srv.URL + "/patroni"
		f.view.Members[name] = m
	}
	return f
}

func (f *fakeMembers) store() *fakeStore {
	return &fakeStore{views: map[string]cluster.View{"pg-test": f.view}}
}

func (f *fakeMembers) recorded() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func fixed(status int, text string) func(string) reply {
	return func(string) reply { return reply{status, text} }
}

const authConfig = "restapi:\n  authentication:\n    username: postgres\n    password: Patroni.API\n"

func cloneView(v cluster.View) cluster.View {
	members := map[string]cluster.Member{}
	for k, m := range v.Members {
		members[k] = m
	}
	v.Members = members
	return v
}

func TestSwitchover(t *testing.T) {
	cfg := writeConfig(t, authConfig)
	f := newFakeMembers(t, cloneView(fixtureView()), map[string]func(string) reply{
		"POST /switchover": fixed(200, `Successfully switched over to "pg-test-2"`),
	})
	r := runCtl(t, f.store(), "", nil, "-c", cfg, "switchover", "--candidate", "pg-test-2", "--force")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := []call{{member: "pg-test-1", method: "POST", path: "/switchover",
		body: `{"leader":"pg-test-1","candidate":"pg-test-2"}`, user: "postgres", pass: "Patroni.API"}}
	if got := f.recorded(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %+v\nwant %+v", got, want)
	}
	if !strings.Contains(r.stdout, "Current cluster topology\n+ Cluster: pg-test") ||
		!strings.Contains(r.stdout, "2024-05-01 12:00:00.00000 Successfully switched over to \"pg-test-2\"\n") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

func TestSwitchoverScheduledAndPrompts(t *testing.T) {
	cfg := writeConfig(t, authConfig)
	f := newFakeMembers(t, cloneView(fixtureView()), map[string]func(string) reply{
		"POST /switchover": fixed(202, "Switchover scheduled"),
	})
	// Answers: primary (default), candidate, time, confirmation.
	r := runCtl(t, f.store(), "\npg-test-2\n2024-05-01T14:00+02:00\ny\n", nil, "-c", cfg, "switchover")
	if r.code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	calls := f.recorded()
	if len(calls) != 1 || calls[0].body != `{"leader":"pg-test-1","candidate":"pg-test-2","scheduled_at":"2024-05-01T14:00:00+02:00"}` {
		t.Fatalf("calls %+v", calls)
	}
	for _, s := range []string{
		"Primary [pg-test-1]: ",
		"Candidate ['pg-test-2'] []: ",
		"When should the switchover take place (e.g. 2024-05-01T13:00 )  [now]: ",
		"Are you sure you want to schedule switchover of cluster pg-test at 2024-05-01T14:00:00+02:00, demoting current leader pg-test-1? [y/N]: ",
		"Switchover scheduled\n",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
}

func TestSwitchoverRefused(t *testing.T) {
	cfg := writeConfig(t, authConfig)
	noLeader := cloneView(fixtureView())
	noLeader.Leader = nil
	paused := cloneView(fixtureView())
	paused.Config = &cluster.DynamicConfig{Pause: true}
	cases := []struct {
		name string
		view cluster.View
		args []string
		err  string
	}{
		{"unknown candidate", fixtureView(), []string{"switchover", "--candidate", "n4", "--force"}, `candidate "n4" does not exist in cluster pg-test`},
		{"nofailover candidate", fixtureView(), []string{"switchover", "--candidate", "pg-test-3", "--force"}, `candidate "pg-test-3" has the nofailover tag and cannot be promoted`},
		{"candidate is leader", fixtureView(), []string{"switchover", "--candidate", "pg-test-1", "--force"}, "Switchover target and source are the same."},
		{"wrong leader", fixtureView(), []string{"switchover", "--leader", "pg-test-2", "--force"}, "Member pg-test-2 is not the leader of cluster pg-test"},
		{"no leader", noLeader, []string{"switchover", "--force"}, "This cluster has no leader"},
		{"scheduled while paused", paused, []string{"switchover", "--candidate", "pg-test-2", "--scheduled", "2030-01-01T00:00Z", "--force"}, "Can't schedule switchover in the paused state"},
		{"bad schedule", fixtureView(), []string{"switchover", "--candidate", "pg-test-2", "--scheduled", "tomorrow", "--force"}, "Unable to parse scheduled timestamp (tomorrow). It should be in an unambiguous format (e.g. ISO 8601)"},
		{"failover without candidate", fixtureView(), []string{"failover", "--force"}, "Failover could be performed only to a specific candidate"},
		{"declined", fixtureView(), []string{"switchover", "--candidate", "pg-test-2", "--scheduled", "now"}, "Aborting switchover"},
		{"no answer", fixtureView(), []string{"switchover", "--candidate", "pg-test-2"}, "no answer on standard input (use --force to skip questions)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeMembers(t, cloneView(c.view), nil)
			stdin := ""
			if c.name == "declined" {
				stdin = "\nn\n" // primary: the default; confirm: no
			}
			r := runCtl(t, f.store(), stdin, nil, append([]string{"-c", cfg}, c.args...)...)
			want := "pgnodectl: " + c.args[0] + ": " + c.err + "\n"
			if r.code == 0 || r.stderr != want {
				t.Errorf("exit %d, stderr %q, want %q", r.code, r.stderr, want)
			}
			if calls := f.recorded(); len(calls) != 0 {
				t.Errorf("requests were sent: %+v", calls)
			}
		})
	}
}

func TestSwitchoverServerRefusesOrIsDown(t *testing.T) {
	cfg := writeConfig(t, authConfig)
	f := newFakeMembers(t, cloneView(fixtureView()), map[string]func(string) reply{
		"POST /switchover": fixed(412, "candidate does not exists"),
	})
	r := runCtl(t, f.store(), "", nil, "-c", cfg, "switchover", "--candidate", "pg-test-2", "--force")
	if r.code != 1 || r.stderr != "pgnodectl: switchover: Switchover failed, details: 412, candidate does not exists\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}

	// An unreachable leader API: the request goes into the failover key.
	v := cloneView(fixtureView())
	m := v.Members["pg-test-1"]
	m.APIURL = "http://127.0.0.1:1/patroni"
	v.Members["pg-test-1"] = m
	st := &fakeStore{views: map[string]cluster.View{"pg-test": v}}
	r = runCtl(t, st, "", nil, "-c", cfg, "switchover", "--candidate", "pg-test-2", "--force")
	if r.code != 0 || !strings.Contains(r.stdout, "Could not switchover using Patroni api, falling back to DCS") {
		t.Fatalf("exit %d, stderr %q, stdout %s", r.code, r.stderr, r.stdout)
	}
	if want := []cluster.Failover{{Leader: "pg-test-1", Member: "pg-test-2"}}; !reflect.DeepEqual(st.failovers, want) {
		t.Errorf("failover key writes %+v", st.failovers)
	}
}

func TestFailoverWithoutLeader(t *testing.T) {
	cfg := writeConfig(t, "ctl:\n  authentication:\n    username: admin\n    password: secret\n"+authConfig)
	v := cloneView(fixtureView())
	v.Leader = nil
	f := newFakeMembers(t, v, map[string]func(string) reply{
		"POST /failover": fixed(200, `Successfully failed over to "pg-test-2"`),
	})
	r := runCtl(t, f.store(), "", nil, "-c", cfg, "failover", "--candidate", "pg-test-2", "--force")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := []call{{member: "pg-test-2", method: "POST", path: "/failover", body: `{"candidate":"pg-test-2"}`, user: "admin", pass: "secret"}}
	if got := f.recorded(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %+v\nwant %+v", got, want)
	}
}
