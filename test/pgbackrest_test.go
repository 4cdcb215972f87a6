//go:build integration

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// TestPgbackrestReplicasAndRestore proves create_replica_methods and the
// custom bootstrap with Debian's pgBackRest, against real etcd and postgres:
//   - a primary archives its WAL to a posix repository and a full backup is taken;
//   - with create_replica_methods [pgbackrest, basebackup] a new replica is
//     made by `pgbackrest restore` (its log says so) and streams;
//   - on a replica whose pgbackrest fails (a stanza that does not exist) the
//     failure is logged with the command and exit status, and basebackup takes over;
//   - a second cluster bootstrapped by bootstrap.method pgbackrest to a restore
//     point of the first has the rows up to that point and none after, and
//     post_bootstrap ran once against it.
func TestPgbackrestReplicasAndRestore(t *testing.T) {
	testenv.RequireRoot(t)
	br := newBackrest(t)
	net := newLoopback(t)
	scope := fmt.Sprintf("it%d-br%d", os.Getpid(), time.Now().UnixNano()%100000)
	c := newCluster(t, net, scope, DaemonPgnoded, 3, ClusterOptions{Timing: Fast}, func(o *nodeconf.Options) {
		o.PGParams = br.archiving()
		stanza := br.Stanza
		if o.Name == "n3" {
			stanza += "-missing" // pgbackrest fails here: basebackup must take over
		}
		if o.Name != "n1" {
			o.PGExtra = br.replicaMethod(o, stanza, "pgbackrest, basebackup")
		}
	})
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	br.writeConf(n1)
	n1.Start()
	p := c.WaitPrimary(60*time.Second, nil)
	if p != n1 {
		t.Fatalf("primary is %s, want n1", p.Name)
	}
	br.run("stanza-create")
	execSQL(t, n1, "CREATE TABLE br_rows (id int PRIMARY KEY)", "INSERT INTO br_rows SELECT generate_series(1, 100)")
	br.run("--type=full", "backup")
	t.Log("full backup taken from n1")

	// Replicas: n2 by pgbackrest, n3 by basebackup after its pgbackrest fails.
	n2.Start()
	n3.Start()
	c.WaitStreaming(120*time.Second, n1)
	if line := n2.LogLine("replica has been created"); !strings.Contains(line, "pgbackrest") {
		t.Errorf("n2 was not created by pgbackrest: %q", line)
	}
	if line := n2.LogLine("creating replica"); !strings.Contains(line, "--delta restore") {
		t.Errorf("n2's log does not show the pgbackrest restore command: %q", line)
	}
	if line := n3.LogLine("replica method failed"); !strings.Contains(line, "pgbackrest") || !strings.Contains(line, "exited with status") {
		t.Errorf("n3's log does not name the failed pgbackrest command and its exit status: %q", line)
	}
	if line := n3.LogLine("replica has been created"); !strings.Contains(line, "basebackup") {
		t.Errorf("n3 was not created by basebackup: %q", line)
	}
	execSQL(t, n1, "INSERT INTO br_rows SELECT generate_series(101, 150)")
	for _, r := range []*Node{n2, n3} {
		WaitFor(t, 30*time.Second, r.Name+" replays the new rows", func() bool {
			s, err := r.QueryString("SELECT count(*)::text FROM br_rows")
			return err == nil && s == "150"
		})
	}

	// A restore point between two batches of rows; the second batch must not come back.
	execSQL(t, n1, "SELECT pg_create_restore_point('br_rp1')", "INSERT INTO br_rows SELECT generate_series(1001, 1100)")
	switchAndArchive(t, n1)

	scope2 := scope + "-restored"
	marker := filepath.Join(testenv.PGDir(t), "post_bootstrap.out")
	script := filepath.Join(filepath.Dir(marker), "post_bootstrap.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1\" >> "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c2 := newCluster(t, net, scope2, DaemonPgnoded, 1, ClusterOptions{Timing: Fast}, nil)
	r1 := c2.Nodes[0]
	// The bootstrap section starts with the custom method.
	r1.EditConfig(t, "\nbootstrap:\n", "\nbootstrap:\n"+fmt.Sprintf(`  method: pgbackrest
  pgbackrest:
    command: %s --pg1-path=%s/data restore
    no_params: true
    recovery_conf:
      restore_command: '%s'
      recovery_target_name: br_rp1
      recovery_target_action: promote
  post_bootstrap: %s`, "pgbackrest --config="+br.Conf+" --stanza="+br.Stanza, r1.Dir,
		br.cmd("--pg1-path="+r1.Dir+"/data", "archive-get", "%f", `"%p"`), script)+"\n")
	r1.Start()
	if p := c2.WaitPrimary(180*time.Second, nil); p != r1 {
		t.Fatalf("restored cluster's primary is %v", p)
	}
	if line := r1.LogLine("running custom bootstrap script"); !strings.Contains(line, "restore") {
		t.Errorf("r1's log does not show the bootstrap command: %q", line)
	}
	got, err := r1.QueryString("SELECT count(*) || ' ' || max(id) FROM br_rows")
	if err != nil {
		t.Fatal(err)
	}
	if got != "150 150" {
		t.Errorf("restored rows (count, max) = %s, want 150 150: only the rows before the restore point", got)
	}
	WaitFor(t, 30*time.Second, "the restored primary accepts writes", func() bool { return r1.Writable(t.Context()) })
	// post_bootstrap runs at the end of the bootstrap, which may still be
	// finishing when /primary first answers.
	var b []byte
	pollFor(30*time.Second, func() bool { b, err = os.ReadFile(marker); return err == nil && len(b) > 0 })
	if err != nil || strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), "dbname=") {
		t.Errorf("post_bootstrap did not run once with a connection string: %q, %v", b, err)
	}
	// The source cluster is untouched: n1 still has every row.
	if s, _ := n1.QueryString("SELECT count(*)::text FROM br_rows"); s != "250" {
		t.Errorf("n1 has %s rows, want 250", s)
	}
}

// TestPgbackrestReplicaWithoutLeader: with the only primary gone (node loss,
// its leader key expired), a new node whose create_replica_methods has a
// no_leader method builds itself from the backup alone ("bootstrap (without
// leader)", an empty --connstring) and runs; a node without such a method
// keeps waiting for a leader.
func TestPgbackrestReplicaWithoutLeader(t *testing.T) {
	testenv.RequireRoot(t)
	br := newBackrest(t)
	scope := fmt.Sprintf("it%d-brnl%d", os.Getpid(), time.Now().UnixNano()%100000)
	c := newCluster(t, newLoopback(t), scope, DaemonPgnoded, 3, ClusterOptions{Timing: Fast}, func(o *nodeconf.Options) {
		o.PGParams = br.archiving()
		switch o.Name {
		case "n2":
			o.PGExtra = br.replicaMethod(o, br.Stanza, "basebackup, pgbackrest")
			// The restored replica reaches consistency from the archive (postgresql.recovery_conf
			// is not written by pgnoded: the key table says to use postgresql.parameters).
			o.PGParams += "\n    restore_command: '" + br.cmd("--pg1-path="+o.Dir+"/data", "archive-get", "%f", `"%p"`) + "'"
		case "n3":
			o.PGExtra = "  create_replica_methods: [basebackup]"
		}
	})
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	br.writeConf(n1)
	n1.Start()
	if p := c.WaitPrimary(60*time.Second, nil); p != n1 {
		t.Fatalf("primary is %v, want n1", p)
	}
	br.run("stanza-create")
	execSQL(t, n1, "CREATE TABLE br_rows (id int PRIMARY KEY)", "INSERT INTO br_rows SELECT generate_series(1, 10)")
	br.run("--type=full", "backup")
	n1.NodeLoss()
	WaitFor(t, 60*time.Second, "the leader key to expire", func() bool { return c.LeaderKey() == "" })

	n2.Start()
	n3.Start()
	WaitFor(t, 120*time.Second, "n2 built from the backup and running", func() bool {
		return strings.Contains(n2.LogLine("replica has been created"), "method=pgbackrest") &&
			n2.Status()["state"] == "running"
	})
	if n2.LogCount("trying to bootstrap (without leader)") == 0 {
		t.Error("n2 did not log Patroni's \"trying to bootstrap (without leader)\"")
	}
	if s, err := n2.QueryString("SELECT count(*)::text FROM br_rows"); err != nil || s != "10" {
		t.Errorf("n2 rows = %q, %v; want the backup's 10", s, err)
	}
	if n3.LogCount("replica has been created") != 0 || n3.LogCount("waiting for leader to bootstrap") == 0 {
		t.Errorf("n3 (basebackup only) must wait for a leader: %q", n3.LogLine("waiting for"))
	}
}
