//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// Standby clusters (Patroni's docs/standby_cluster.rst): a primary site of
// one node and a standby cluster of three on the same etcd under another
// scope. The primary site archives its WAL into a pgBackRest repository (posix,
// in the test's temp dir); the standby cluster's restore_command fetches from it
// with `pgbackrest archive-get`. The standby cluster bootstraps by cloning the
// remote primary; its standby leader streams from it through a permanent slot
// of the primary site, the other two cascade from the standby leader. Rows
// written on the primary site reach every standby-cluster member; kill -9 of
// the standby leader (pgnoded and postgres) makes another member the standby
// leader, still following (the time is logged: the standby-cluster failover
// time); with streaming broken, rows written on the primary site and archived
// (pg_switch_wal) reach the standby leader through restore_command from the
// repository with no WAL receiver streaming, and its /patroni names the dead
// remote address in pgnoded_upstream_error until streaming resumes; pgnodectl
// and Debian's patronictl list the Standby Leader; `patronictl edit-config`
// removing standby_cluster promotes it and writes are accepted; under compat
// 3.0.2 the promoted cluster refuses to become a standby cluster again
// (PATCH /config, 400). Then the disaster-recovery switchback: the old primary
// site (compat 4.1.4) gets standby_cluster pointing at the promoted cluster
// through PATCH /config, demotes itself (demote-cluster), rewinds from the new
// primary (its WAL went on past the fork) and streams from it as a standby
// leader; rows written on the new primary reach it. The demote archived the
// segment holding its shutdown checkpoint into the repository first.
func TestStandbyCluster(t *testing.T) {
	testenv.RequireRoot(t)
	br := newBackrest(t)
	net := newLoopback(t)
	id := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%100000)

	// The primary site: one node pushing its WAL to the repository, keeping
	// the slot "dr"; compat 4.1.4, so that PATCH /config may turn it into a
	// standby cluster at the end.
	site := newCluster(t, net, "site"+id, DaemonPgnoded, 1, ClusterOptions{Timing: Fast, PermanentSlot: "dr"},
		func(o *nodeconf.Options) { o.PGParams, o.Compat = br.archiving(), "4.1.4" })
	br.writeConf(site.Nodes[0])
	site.StartAll()
	p := site.WaitPrimary(120*time.Second, nil)
	br.run("stanza-create")
	ctx := context.Background()
	if err := createWritesTable(ctx, p.Name, p.Conn, "dr_rows"); err != nil {
		t.Fatal(err)
	}
	insertRows(t, p, 1, 100)

	// The standby cluster: standby_cluster in bootstrap.dcs, following p through the slot "dr".
	// postgres runs restore_command in its data directory: pgbackrest's pg1-path
	// (whose pg_control it checks against the stanza) is each member's own.
	restore := br.cmd(`--pg1-path="$(pwd)"`, "archive-get", "%f", `"%p"`)
	sb := newCluster(t, net, "standby"+id, DaemonPgnoded, 3, ClusterOptions{Timing: Fast}, nil)
	for _, n := range sb.Nodes {
		n.EditConfig(t, "  dcs:\n", "  dcs:\n"+fmt.Sprintf(
			"    standby_cluster:\n      host: 127.0.0.1\n      port: %d\n      primary_slot_name: dr\n"+
				"      restore_command: '%s'\n      create_replica_methods: [basebackup]\n", p.PGPort, restore))
	}
	sb.StartAll()
	leader := waitStandbyLeader(t, sb, nil, 120*time.Second)
	waitRows(t, sb.Nodes, 100, 120*time.Second)
	for _, n := range sb.Nodes {
		if code := n.Check("/primary"); code != 503 {
			t.Errorf("%s: /primary = %d in a standby cluster, want 503", n.Name, code)
		}
		want := 503
		if n == leader {
			want = 200
		}
		if code := n.Check("/standby-leader"); code != want {
			t.Errorf("%s: /standby-leader = %d, want %d", n.Name, code, want)
		}
	}
	if n := sb.Primary(); n != nil {
		t.Fatalf("%s answers /primary in a standby cluster", n.Name)
	}
	if v, _ := p.QueryString("select active::text from pg_replication_slots where slot_name = 'dr'"); v != "true" {
		t.Errorf("the primary site's slot dr is not in use by the standby leader (active = %q)", v)
	}
	checkStandbyLeaderShown(t, sb, leader)
	ctl := newPatronictl(t, sb)
	rows := ctl.waitList(30*time.Second, sb.Scope, "patronictl lists the Standby Leader", func(rows []ctlRow) bool {
		for _, r := range rows {
			if r.Member == leader.Name && r.Role == "Standby Leader" {
				return true
			}
		}
		return false
	})
	t.Logf("patronictl list: %+v", rows)
	t.Logf("patronictl list (table):\n%s", ctl.must("list", sb.Scope))

	// kill -9 of the standby leader: another member takes over, still following the primary site.
	leader.KillPgnoded()
	leader.KillPostmaster()
	killed := time.Now()
	next := waitStandbyLeader(t, sb, leader, 90*time.Second)
	t.Logf("standby-cluster failover (ttl %d): %s is the streaming standby leader %.1fs after kill -9 of %s",
		Fast.TTL, next.Name, time.Since(killed).Seconds(), leader.Name)
	insertRows(t, p, 101, 200)
	waitRows(t, sb.Others(leader), 200, 60*time.Second)

	// A switchover inside the standby cluster hands the standby leader's key to the candidate.
	cand := sb.Others(leader, next)[0]
	WaitFor(t, 30*time.Second, cand.Name+" streaming from "+next.Name, func() bool {
		v, _ := next.QueryString(fmt.Sprintf("select count(*)::text from pg_stat_replication where application_name = '%s' and state = 'streaming'", cand.Name))
		return v == "1"
	})
	if code, text := next.Call(t, "POST", "/switchover", map[string]any{"leader": next.Name, "candidate": cand.Name}); code != 200 {
		t.Fatalf("POST /switchover in the standby cluster: %d %s", code, text)
	}
	WaitFor(t, 60*time.Second, cand.Name+" the streaming standby leader", func() bool {
		st := cand.Status()
		return st != nil && st["role"] == "standby_leader" && st["replication_state"] == "streaming" && cand.Check("/standby-leader") == 200
	})
	t.Logf("switchover in the standby cluster: %s -> %s", next.Name, cand.Name)
	next = cand
	insertRows(t, p, 201, 250)
	waitRows(t, sb.Others(leader), 250, 60*time.Second)

	// Streaming broken (the remote port points nowhere): archived WAL still arrives through restore_command.
	dead := testenv.FreePort(t)
	if code, text := next.Call(t, "PATCH", "/config", map[string]any{"standby_cluster": map[string]any{"port": dead}}); code != 200 {
		t.Fatalf("PATCH standby_cluster.port: %d %s", code, text)
	}
	WaitFor(t, 30*time.Second, next.Name+" no longer streaming", func() bool {
		st := next.Status()
		return st != nil && st["replication_state"] == nil && st["role"] == "standby_leader"
	})
	insertRows(t, p, 251, 300)
	wal := switchAndArchive(t, p)
	waitRows(t, []*Node{next}, 300, 60*time.Second)
	// Archive recovery, not streaming: no WAL receiver streams, and postgres'
	// log (restore_command's output goes there too) shows pgbackrest
	// archive-get finding the switched file in the repository and postgres
	// restoring it.
	if v, err := next.QueryString("select count(*)::text from pg_stat_wal_receiver where status = 'streaming'"); err != nil || v != "0" {
		t.Errorf("%s has a streaming WAL receiver (%q, %v) while its remote port is dead", next.Name, v, err)
	}
	pgLog := filepath.Join(next.Dir, "data", "log", "postgres.log")
	WaitFor(t, 30*time.Second, next.Name+"'s postgres log showing "+wal+" restored by pgbackrest archive-get", func() bool {
		b, _ := os.ReadFile(pgLog)
		return strings.Contains(string(b), "found "+wal+" in the repo1") &&
			strings.Contains(string(b), `restored log file "`+wal+`" from archive`)
	})
	t.Logf("rows written after streaming broke reached %s through restore_command (pgbackrest archive-get of %s)", next.Name, wal)
	WaitFor(t, 40*time.Second, next.Name+"'s log saying the remote primary is not streaming", func() bool {
		return next.LogCount("not streaming from the remote primary") > 0
	})
	t.Logf("%s logs: %s", next.Name, next.LogLine("not streaming from the remote primary"))
	// /patroni says why too (pgnoded_upstream_error, a key Patroni's clients ignore), on the standby leader only.
	deadAddr := fmt.Sprintf("127.0.0.1:%d", dead)
	WaitFor(t, 40*time.Second, next.Name+"'s /patroni naming "+deadAddr+" in pgnoded_upstream_error", func() bool {
		st := next.Status()
		why, _ := st["pgnoded_upstream_error"].(string)
		return strings.Contains(why, "not streaming from the remote primary "+deadAddr) && st["role"] == "standby_leader"
	})
	t.Logf("%s /patroni pgnoded_upstream_error: %v", next.Name, next.Status()["pgnoded_upstream_error"])
	for _, n := range sb.Others(leader, next) {
		if st := n.Status(); st != nil && st["pgnoded_upstream_error"] != nil {
			t.Errorf("%s (following the standby leader) reports an upstream error: %v", n.Name, st["pgnoded_upstream_error"])
		}
	}
	// The remote port back: streaming resumes and the field goes away.
	if code, text := next.Call(t, "PATCH", "/config", map[string]any{"standby_cluster": map[string]any{"port": p.PGPort}}); code != 200 {
		t.Fatalf("PATCH standby_cluster.port back: %d %s", code, text)
	}
	WaitFor(t, 60*time.Second, next.Name+" streaming again without pgnoded_upstream_error", func() bool {
		st := next.Status()
		_, has := st["pgnoded_upstream_error"]
		return st != nil && st["replication_state"] == "streaming" && !has
	})

	// Removing standby_cluster promotes the standby leader without a restart; writes are accepted.
	pid := next.PostmasterPID()
	t.Logf("patronictl edit-config:\n%s", ctl.must("edit-config", "--force", "-s", "standby_cluster=null", sb.Scope))
	np := sb.WaitPrimary(60*time.Second, nil)
	if np != next {
		t.Fatalf("%s became primary, want the standby leader %s", np.Name, next.Name)
	}
	if got := next.PostmasterPID(); got != pid {
		t.Errorf("the postmaster was restarted for the promotion (pid %d -> %d)", pid, got)
	}
	insertRows(t, next, 1001, 1010)
	waitRows(t, sb.Others(leader, next), 310, 60*time.Second)

	// Under compat 3.0.2 a running cluster cannot be turned into a standby cluster: 400, nothing written.
	before, _ := sb.EtcdKey(ctx, "config")
	code, text := next.Call(t, "PATCH", "/config", map[string]any{"standby_cluster": map[string]any{"host": "127.0.0.1", "port": p.PGPort}})
	if code != 400 || !strings.Contains(text, "demote-cluster") {
		t.Fatalf("PATCH standby_cluster on a running 3.0.2 cluster: %d %q, want 400 with the reason", code, text)
	}
	if after, _ := sb.EtcdKey(ctx, "config"); after != before {
		t.Fatalf("config key changed by a refused PATCH: %s -> %s", before, after)
	}
	t.Logf("PATCH /config standby_cluster on the promoted 3.0.2 cluster -> %d %s", code, text)

	// The switchback: the old primary site (compat 4.1.4) follows the promoted
	// cluster. It demotes itself into its standby leader (Patroni 4.1's
	// demote-cluster) and, its WAL having gone on past the promotion's fork
	// point (its shutdown checkpoint at least), rewinds from the new primary first.
	tl := func(n *Node) string {
		v, _ := n.QueryString("select timeline_id::text from pg_control_checkpoint()")
		return v
	}
	t.Logf("before the switchback: %s of %s on timeline %s, %s of %s on timeline %s", p.Name, site.Scope, tl(p),
		next.Name, sb.Scope, tl(next))
	if code, text := p.Call(t, "PATCH", "/config", map[string]any{"standby_cluster": map[string]any{"host": "127.0.0.1", "port": next.PGPort}}); code != 200 {
		t.Fatalf("PATCH standby_cluster on the old primary site (compat 4.1.4): %d %s", code, text)
	}
	if back := waitStandbyLeader(t, site, nil, 120*time.Second); back != p {
		t.Fatalf("%s is the site's standby leader, want %s", back.Name, p.Name)
	}
	if p.LogCount("running pg_rewind from the remote primary") == 0 || p.LogCount("pg_rewind done") == 0 {
		t.Errorf("%s did not rewind from the new primary: %q / %q", p.Name,
			p.LogLine("pg_rewind from the remote primary"), p.LogLine("pg_rewind"))
	}
	t.Logf("%s of %s: %s", p.Name, site.Scope, p.LogLine("pg_rewind done"))
	// Before that it handed the segment with its shutdown checkpoint to
	// archive_command (Patroni 4.1's demote-cluster): it is in the repository.
	archived := p.LogLine("archived the shutdown checkpoint's WAL segment")
	seg := regexp.MustCompile(`[0-9A-F]{24}`).FindString(archived)
	if seg == "" {
		t.Errorf("%s did not archive its shutdown checkpoint: %q", p.Name, p.LogLine("shutdown checkpoint"))
	} else if !br.hasWAL(seg) {
		t.Errorf("%s reports %s archived, but the repository does not hold it", p.Name, seg)
	} else {
		t.Logf("%s of %s archived its shutdown checkpoint's segment %s into the repository: %s", p.Name, site.Scope, seg, archived)
	}
	if code := p.Check("/primary"); code != 503 {
		t.Errorf("%s: /primary = %d after the switchback, want 503", p.Name, code)
	}
	checkStandbyLeaderShown(t, site, p)
	insertRows(t, next, 1011, 1020)
	waitRows(t, []*Node{p}, 320, 60*time.Second)
	if v, _ := next.QueryString(fmt.Sprintf("select state from pg_stat_replication where application_name = '%s'", p.Name)); v != "streaming" {
		t.Errorf("%s does not stream from the new primary %s (state %q)", p.Name, next.Name, v)
	}
	t.Logf("switchback: %s is the standby leader of %s following %s of %s on timeline %s", p.Name, site.Scope,
		next.Name, sb.Scope, tl(next))
}

// insertRows writes ids from..to into dr_rows on n.
func insertRows(t *testing.T, n *Node, from, to int) {
	t.Helper()
	execSQL(t, n, fmt.Sprintf("insert into dr_rows (id) select generate_series(%d, %d)", from, to))
}

// waitRows waits until every node holds want rows in dr_rows.
func waitRows(t *testing.T, nodes []*Node, want int, timeout time.Duration) {
	t.Helper()
	for _, n := range nodes {
		WaitFor(t, timeout, fmt.Sprintf("%d rows on %s", want, n.Name), func() bool {
			v, err := n.QueryString("select count(*)::text from dr_rows")
			return err == nil && v == fmt.Sprint(want)
		})
	}
}

// waitStandbyLeader waits for one member (not `not`) whose /patroni says
// standby_leader and streaming, and which answers /standby-leader with 200.
func waitStandbyLeader(t *testing.T, c *Cluster, not *Node, timeout time.Duration) *Node {
	t.Helper()
	var found *Node
	last := map[string]string{}
	defer func() {
		if found == nil {
			for name, st := range last {
				t.Logf("%s: /patroni %s", name, st)
			}
		}
	}()
	WaitFor(t, timeout, "a streaming standby leader", func() bool {
		for _, n := range c.Others(not) {
			st := n.Status()
			last[n.Name] = fmt.Sprint(st, " /standby-leader ", n.Check("/standby-leader"))
			if st != nil && st["role"] == "standby_leader" && st["replication_state"] == "streaming" &&
				n.Check("/standby-leader") == 200 {
				found = n
				return true
			}
		}
		return false
	})
	return found
}

// checkStandbyLeaderShown: the standby leader's role is standby_leader in
// GET /cluster, in its member key, and `pgnodectl list` shows "Standby Leader".
func checkStandbyLeaderShown(t *testing.T, c *Cluster, leader *Node) {
	t.Helper()
	for name, role := range leader.ClusterRoles(t) {
		want := "replica"
		if name == leader.Name {
			want = "standby_leader"
		}
		if role != want {
			t.Errorf("/cluster: %s has role %q, want %q", name, role, want)
		}
	}
	WaitFor(t, 20*time.Second, "role standby_leader in the member key of "+leader.Name, func() bool {
		v, _ := c.EtcdKey(context.Background(), "members/"+leader.Name)
		return strings.Contains(v, `"role":"standby_leader"`)
	})
	out := runPgnodectl(t, "-c", leader.ConfigPath, "list")
	if !strings.Contains(out, "| Standby Leader |") {
		t.Errorf("pgnodectl list does not show the Standby Leader:\n%s", out)
	}
	t.Logf("pgnodectl list:\n%s", out)
}
