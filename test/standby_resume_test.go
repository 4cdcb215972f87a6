//go:build integration

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// demote-cluster's archive and pg_rewind survive a pgnoded restart between
// its stop and its start (plan.resumeDemoteCluster reads the intent from
// pg_control): a one-node primary site A archiving with a plain `cp`, a
// one-node standby cluster B following it, B promoted (a switchover to the
// disaster-recovery site), rows written on A after that (A's WAL goes past
// B's fork point). Then what demote-cluster would leave behind if pgnoded
// died after its stop: A's pgnoded killed, A's postgres stopped cleanly as a
// primary (SIGINT, "shut down"), standby_cluster pointing at B written into
// A's config key directly. A's pgnoded started again archives its shutdown
// checkpoint's segment, rewinds from B and streams from it as A's standby
// leader; rows written on B reach it; restarting A's pgnoded once more
// rewinds nothing.
func TestStandbyDemoteResumedAfterRestart(t *testing.T) {
	testenv.RequireRoot(t)
	net := newLoopback(t)
	id := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	archive := filepath.Join(testenv.PGDir(t), "archive")
	archiving := "    archive_mode: 'on'\n    archive_command: 'mkdir -p " + archive + " && test ! -f " + archive +
		"/%f && cp %p " + archive + "/%f'"

	site := newCluster(t, net, "resa"+id, DaemonPgnoded, 1, ClusterOptions{Timing: Fast},
		func(o *nodeconf.Options) { o.PGParams = archiving })
	site.StartAll()
	a := site.WaitPrimary(120*time.Second, nil)
	ctx := context.Background()
	if err := createWritesTable(ctx, a.Name, a.Conn, "dr_rows"); err != nil {
		t.Fatal(err)
	}
	insertRows(t, a, 1, 100)

	dr := newCluster(t, net, "resb"+id, DaemonPgnoded, 1, ClusterOptions{Timing: Fast}, nil)
	b := dr.Nodes[0]
	b.EditConfig(t, "  dcs:\n", "  dcs:\n"+fmt.Sprintf("    standby_cluster:\n      host: 127.0.0.1\n      port: %d\n", a.PGPort))
	dr.StartAll()
	waitStandbyLeader(t, dr, nil, 120*time.Second)
	waitRows(t, []*Node{b}, 100, 60*time.Second)

	// B promoted; A goes on writing: its WAL passes B's fork point.
	if code, text := b.Call(t, "PATCH", "/config", map[string]any{"standby_cluster": nil}); code != 200 {
		t.Fatalf("PATCH standby_cluster null on %s: %d %s", dr.Scope, code, text)
	}
	dr.WaitPrimary(60*time.Second, nil)
	insertRows(t, a, 101, 120)
	insertRows(t, b, 1001, 1005) // 105 rows on B, 120 on A

	// demote-cluster's stop done, its start not: pgnoded gone, postgres shut down as a primary.
	a.KillPgnoded()
	pid := a.PostmasterPID()
	if pid <= 0 {
		t.Fatalf("%s: no postmaster", a.Name)
	}
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		t.Fatalf("fast shutdown of %s's postmaster: %v", a.Name, err)
	}
	WaitFor(t, 60*time.Second, a.Name+"'s postmaster gone", func() bool { return syscall.Kill(pid, 0) != nil })
	raw, ok := site.EtcdKey(ctx, "config")
	if !ok {
		t.Fatalf("%s has no config key", site.Scope)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf("config key %q: %v", raw, err)
	}
	doc["standby_cluster"] = map[string]any{"host": "127.0.0.1", "port": b.PGPort}
	putConfig(t, site, doc)

	a.Start()
	if got := waitStandbyLeader(t, site, nil, 120*time.Second); got != a {
		t.Fatalf("%s is the standby leader of %s, want %s", got.Name, site.Scope, a.Name)
	}
	if a.LogCount("the data directory was shut down as a primary") == 0 {
		t.Errorf("%s did not resume demote-cluster from pg_control", a.Name)
	}
	t.Logf("%s: %s", a.Name, a.LogLine("the data directory was shut down as a primary"))
	archived := a.LogLine("archived the shutdown checkpoint's WAL segment")
	seg := regexp.MustCompile(`[0-9A-F]{24}`).FindString(archived)
	if _, err := os.Stat(filepath.Join(archive, seg)); seg == "" || err != nil {
		t.Errorf("%s's shutdown checkpoint segment %q is not in the archive (%v): %q", a.Name, seg, err, archived)
	}
	t.Logf("%s: %s", a.Name, archived)
	rewound := a.LogLine("pg_rewind done")
	if !regexp.MustCompile(`servers diverged at WAL location`).MatchString(rewound) {
		t.Errorf("%s did not rewind from %s: %q", a.Name, b.Name, rewound)
	}
	t.Logf("%s: %s", a.Name, rewound)
	insertRows(t, b, 1011, 1020)
	waitRows(t, []*Node{a}, 115, 60*time.Second) // B's rows: A's own 101..120 are rewound away

	// Restarting pgnoded again (postgres running in recovery) rewinds nothing.
	a.KillPgnoded()
	a.Start()
	if got := waitStandbyLeader(t, site, nil, 60*time.Second); got != a {
		t.Fatalf("%s is the standby leader of %s after the second restart, want %s", got.Name, site.Scope, a.Name)
	}
	if n := a.LogCount("pg_rewind done"); n != 1 {
		t.Errorf("%s ran pg_rewind %d times, want once", a.Name, n)
	}
}
