package main

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/config"
)

func testState(t *testing.T, mode Mode) *State {
	t.Helper()
	bins := Bins{Pgnoded: "/x/bin/pgnoded", Pgnodectl: "/x/bin/pgnodectl", Etcd: "/x/bin/etcd", Demo: "/x/bin/demo", PGBin: findPGBin()}
	s, err := newState(mode, t.TempDir(), netip.MustParsePrefix(defaultNet), bins)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The generated configurations must be accepted by pgnoded's own loader.
func TestConfigsValidate(t *testing.T) {
	if findPGBin() == "" {
		t.Skip("skipping: PostgreSQL server binaries not found (apt-get install -y postgresql-15)")
	}
	for _, mode := range []Mode{ModeNetns, ModeLoopback} {
		s := testState(t, mode)
		if err := prepareNodes(s); err != nil {
			t.Fatal(err)
		}
		for _, n := range s.Nodes {
			warnings, err := config.Validate(n.Config(), os.Environ())
			if err != nil {
				b, _ := os.ReadFile(n.Config())
				t.Fatalf("%s %s: %v\n%s", mode, n.Name, err, b)
			}
			for _, w := range warnings {
				t.Logf("%s %s: warning %s", mode, n.Name, w)
			}
			b, _ := os.ReadFile(n.Config())
			if got := strings.Contains(string(b), "address: "+s.VIP+"/24"); got != (mode == ModeNetns) {
				t.Errorf("%s: VIP section present=%v", mode, got)
			}
		}
	}
}

func TestLayout(t *testing.T) {
	s := testState(t, ModeNetns)
	if s.VIP != "10.213.0.100" || s.EtcdAddr != "10.213.0.10:2379" || s.Nodes[2].IP != "10.213.0.13" || s.Nodes[0].NS != "pgdemo-n1" {
		t.Errorf("netns layout: %+v", s)
	}
	if len(s.Namespace) != 6 {
		t.Errorf("namespaces: %v", s.Namespace)
	}
	if k := s.LeaderKey(); k != "/service/pgdemo/leader" {
		t.Errorf("leader key %q, want Patroni's /service/pgdemo/leader", k)
	}
	l := testState(t, ModeLoopback)
	ports := map[int]bool{}
	for _, n := range l.Nodes {
		for _, p := range []int{n.PGPort, n.APIPort, n.MetricPort} {
			if ports[p] {
				t.Errorf("port %d used twice", p)
			}
			ports[p] = true
		}
	}
	if l.VIP != "" || len(l.Namespace) != 0 || l.Nodes[0].IP != "127.0.0.1" {
		t.Errorf("loopback layout: %+v", l)
	}
}

func TestParseEvents(t *testing.T) {
	log := `2026-11-27 03:06:48 +0000 INFO: lease granted member=n3 component=dcs lease_id=6a ttl_s=10
2026-11-27 03:07:08 +0000 INFO: promoted to primary member=n3 component=ha member=n3 manual=false timeline_before=1
garbage
2026-11-27 03:07:09 +0000 WARNING: postmaster exited unexpectedly member=n3
2026-11-27 03:07:10 +0000 INFO: role changed member=n3 component=ha from=replica to=primary reason="x y"`
	ev := parseEvents("n3", log)
	want := []string{"promoted to primary manual=false timeline_before=1", "WARNING: postmaster exited unexpectedly",
		`role changed from=replica to=primary reason="x y"`}
	if len(ev) != len(want) {
		t.Fatalf("events %+v", ev)
	}
	for i, w := range want {
		if ev[i].Text != w || ev[i].Node != "n3" {
			t.Errorf("event %d = %q, want %q", i, ev[i].Text, w)
		}
	}
	if ev[0].At.Format(time.TimeOnly) != "03:07:08" {
		t.Errorf("time %v", ev[0].At)
	}
}

func TestParseFenceEvents(t *testing.T) {
	log := `time=2026-11-27T03:23:09.119Z level=INFO msg="fence client disconnected while armed; the deadline stands" component=fence-guard
time=2026-11-27T03:23:14.508Z level=WARN msg="fence deadline passed without a pat: stopping postgres" component=fence-guard socket=/x data_dir=/y late_ms=3
time=2026-11-27T03:23:14.509Z level=WARN msg="fence: VIP released" component=fence-guard component=fence-guard address=10.213.0.100/24`
	ev := parseFenceEvents("n2", log)
	want := []string{"WARN: fence guard: fence deadline passed without a pat: stopping postgres late_ms=3",
		"WARN: fence guard: fence: VIP released address=10.213.0.100/24"}
	if len(ev) != len(want) {
		t.Fatalf("events %+v", ev)
	}
	for i, w := range want {
		if ev[i].Text != w {
			t.Errorf("event %d = %q, want %q", i, ev[i].Text, w)
		}
	}
}

func healthySnap() Snapshot {
	return Snapshot{EtcdUp: true, Leader: "n1", Nodes: []NodeStatus{
		{Name: "n1", PgnodedPID: 1, PostmasterPID: 2, APIUp: true, Role: "master", State: "running", Timeline: 1, VIP: true},
		{Name: "n2", PgnodedPID: 3, PostmasterPID: 4, APIUp: true, Role: "replica", State: "running", ReplState: "streaming", Lag: "0 B"},
		{Name: "n3", PgnodedPID: 5, PostmasterPID: 6, APIUp: true, Role: "replica", State: "running", ReplState: "streaming", Lag: "0 B"},
	}}
}

func TestSnapshotVerdicts(t *testing.T) {
	s := healthySnap()
	if !s.Healthy(true) || s.Primary() != "n1" || s.Streaming() != 2 {
		t.Fatalf("healthy snapshot judged %q", s.Summary(true))
	}
	s.Nodes[1].VIP = true // the VIP on two nodes is not healthy
	if s.Healthy(true) || !s.Healthy(false) {
		t.Errorf("VIP on two nodes: %q", s.Summary(true))
	}
	s = healthySnap()
	s.Leader = ""
	if s.Healthy(false) || !strings.Contains(s.Summary(false), "no leader key") {
		t.Errorf("no leader: %q", s.Summary(false))
	}
	s = healthySnap()
	s.Nodes[0].PostmasterPID = 0 // leader key held, postgres gone
	if s.Primary() != "" {
		t.Errorf("primary without postmaster")
	}
	s = healthySnap()
	s.Nodes[2].ReplState = ""
	if s.Healthy(false) || !strings.Contains(s.Summary(false), "1 of 2 replicas streaming") {
		t.Errorf("one replica down: %q", s.Summary(false))
	}
}

func TestScreen(t *testing.T) {
	st := testState(t, ModeNetns)
	v := newViewer(&strings.Builder{}, false, st, time.Now().Add(-5*time.Second))
	snap := healthySnap()
	snap.At = time.Now()
	out := v.screen(snap, []Event{{At: snap.At, Node: "n1", Text: "role changed from=replica to=primary"}}, false)
	for _, want := range []string{
		"n1      10.213.0.11:5432  primary", "healthy: primary n1",
		"ip netns exec pgdemo-client env PGPASSWORD=" + st.Password + " psql -h 10.213.0.100 -U postgres postgres",
		"kill-primary    (= kill -9 1 2: n1's pgnoded and postmaster)",
		"switchover --candidate n2 --force", "role changed from=replica to=primary",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("screen lacks %q:\n%s", want, out)
		}
	}
	line := v.statusLine(snap)
	if !strings.HasPrefix(line, "n1=primary/running/tl1 n2=replica/streaming/lag 0 B") || !strings.Contains(line, "vip=n1") {
		t.Errorf("status line %q", line)
	}
}

func TestHumanBytes(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 16 << 20: "16.0 MiB"} {
		if got := humanBytes(in); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", in, got, want)
		}
	}
	if got := formatLag("unknown"); got != "unknown" {
		t.Errorf("formatLag = %q", got)
	}
}

func TestWithin(t *testing.T) {
	if !within("/tmp/a/b", "/tmp/a") || within("/tmp/ab", "/tmp/a") || !within("/tmp/a", "/tmp/a") {
		t.Error("within")
	}
}
