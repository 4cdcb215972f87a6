//go:build integration

package test

import (
	"context"
	"encoding/json"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// bootTimeout bounds bootstrap of a 3-node cluster (initdb + two clones) on a loaded 2-core machine.
const bootTimeout = 120 * time.Second

func bootCluster(t testing.TB, timing Timing) (*Cluster, *Node) {
	t.Helper()
	return bootClusterWith(t, timing, nil)
}

// bootClusterWith is bootCluster with extra template values per node (see startClusterWith).
func bootClusterWith(t testing.TB, timing Timing, extra configEdit) (*Cluster, *Node) {
	t.Helper()
	c := startClusterWith(t, 3, timing, extra)
	p := c.WaitPrimary(bootTimeout, nil)
	c.WaitHealthyReplicas(bootTimeout, p)
	return c, p
}

func TestBootstrapThreeNodes(t *testing.T) {
	c, p := bootCluster(t, Fast)
	ctx := context.Background()

	leader, ok := c.EtcdKey(ctx, "leader")
	if !ok || leader != p.Name {
		t.Fatalf("leader key = %q (present %v), want bare member name %q", leader, ok, p.Name)
	}
	if init, _ := c.EtcdKey(ctx, "initialize"); !regexp.MustCompile(`^\d{10,}$`).MatchString(init) {
		t.Errorf("initialize key = %q, want the system identifier", init)
	}
	cfg, _ := c.EtcdKey(ctx, "config")
	var dyn map[string]any
	if err := json.Unmarshal([]byte(cfg), &dyn); err != nil || dyn["ttl"] == nil {
		t.Errorf("config key = %q, want JSON with ttl (%v)", cfg, err)
	}
	for _, n := range c.Nodes {
		raw, ok := c.EtcdKey(ctx, "members/"+n.Name)
		if !ok {
			t.Errorf("members/%s missing", n.Name)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Errorf("members/%s is not JSON: %q", n.Name, raw)
			continue
		}
		for _, f := range []string{"conn_url", "api_url", "state", "role", "version"} {
			if _, ok := m[f]; !ok {
				t.Errorf("members/%s lacks %q: %s", n.Name, f, raw)
			}
		}
		wantRole := "replica"
		if n == p {
			wantRole = "master"
		}
		if m["role"] != wantRole || m["state"] != "running" {
			t.Errorf("members/%s role/state = %v/%v, want %s/running", n.Name, m["role"], m["state"], wantRole)
		}
	}
	// The primary has a physical slot per replica, and both replicas stream into it.
	conn, err := p.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	WaitFor(t, 30*time.Second, "both replicas streaming into their slots", func() bool {
		var active int
		err := conn.QueryRow(ctx, "select count(*) from pg_replication_slots where slot_type='physical' and active").Scan(&active)
		return err == nil && active == 2
	})
	var streaming int
	if err := conn.QueryRow(ctx, "select count(*) from pg_stat_replication where state='streaming'").Scan(&streaming); err != nil || streaming != 2 {
		t.Errorf("pg_stat_replication streaming = %d (%v), want 2", streaming, err)
	}
}

func TestKillPrimaryNodeFailsOverAndRejoins(t *testing.T) {
	c, p := bootCluster(t, Fast)
	w := StartWriter(t, c, p)
	chk := StartSplitBrainChecker(t, c)
	WaitFor(t, 10*time.Second, "some writes", func() bool { return w.Acked() > 20 })

	killedAt := time.Now()
	p.KillPgnoded()
	p.KillPostmaster()
	np := c.WaitPrimary(time.Duration(Fast.TTL)*time.Second+60*time.Second, p)
	resumed := w.WaitWritesResume(t, 30*time.Second, killedAt)
	t.Logf("node loss (ttl=%d): new primary %s, writes resumed %.2fs after the kill", Fast.TTL, np.Name, resumed.Sub(killedAt).Seconds())

	// The old node comes back and rejoins as a replica of the new primary, with the new rows.
	p.Start()
	WaitFor(t, 90*time.Second, "old primary rejoins as a streaming replica", func() bool { return p.Check("/replica") == 200 })
	if overlaps := chk.Stop(); len(overlaps) > 0 {
		t.Errorf("two writable primaries: %v", overlaps)
	}
	if lost := w.Lost(t, np); len(lost) > 0 {
		// Asynchronous replication may lose what the dead primary acknowledged but did not ship;
		// bounded by maximum_lag_on_failover. Report it; fail only on a large loss.
		t.Logf("acknowledged rows missing after unplanned failover: %d", len(lost))
	}
	WaitFor(t, 30*time.Second, "rejoined node has the rows written on the new primary", func() bool {
		return sameRowCount(t, np, p)
	})
}

func TestPostmasterCrashOnPrimaryRecovers(t *testing.T) {
	c, p := bootCluster(t, Fast)
	w := StartWriter(t, c, p)
	chk := StartSplitBrainChecker(t, c)
	WaitFor(t, 10*time.Second, "some writes", func() bool { return w.Acked() > 20 })
	crashedAt := time.Now()
	p.KillPostmaster()
	resumed := w.WaitWritesResume(t, 60*time.Second, crashedAt)
	t.Logf("postmaster crash: writes resumed %.2fs after kill -9", resumed.Sub(crashedAt).Seconds())
	if overlaps := chk.Stop(); len(overlaps) > 0 {
		t.Errorf("two writable primaries: %v", overlaps)
	}
	if np := c.WaitPrimary(30*time.Second, nil); np != p {
		t.Errorf("primary moved to %s after a postmaster crash; restart in place expected", np.Name)
	}
}

func TestPgnodedCrashOnPrimaryKeepsWritesAndLeadership(t *testing.T) {
	c, p := bootCluster(t, Fast)
	w := StartWriter(t, c, p)
	chk := StartSplitBrainChecker(t, c)
	WaitFor(t, 10*time.Second, "some writes", func() bool { return w.Acked() > 20 })
	pidBefore := p.PostmasterPID()

	p.KillPgnoded()
	time.Sleep(time.Second) // pgnoded stays dead for a while, well within ttl
	p.Start()
	WaitFor(t, 30*time.Second, "restarted pgnoded reports primary", func() bool { return p.Check("/primary") == 200 })
	before := w.Acked()
	WaitFor(t, 10*time.Second, "writes continue", func() bool { return w.Acked() > before+20 })

	if got := p.PostmasterPID(); got != pidBefore {
		t.Errorf("postmaster restarted (pid %d -> %d); a pgnoded restart must adopt it", pidBefore, got)
	}
	leader, _ := c.EtcdKey(context.Background(), "leader")
	if leader != p.Name {
		t.Errorf("leader key = %q after pgnoded restart, want %q (no failover)", leader, p.Name)
	}
	if overlaps := chk.Stop(); len(overlaps) > 0 {
		t.Errorf("two writable primaries: %v", overlaps)
	}
	if lost := w.Lost(t, p); len(lost) > 0 {
		t.Errorf("%d acknowledged rows lost", len(lost))
	}
}

func TestPrimaryLosingEtcdIsReadOnlyBeforeTTL(t *testing.T) {
	c, p := bootCluster(t, Fast)
	chk := StartSplitBrainChecker(t, c)
	stoppedAt := time.Now()
	c.Etcd.Stop()
	// Fencing is a safety property: by the time the lease could have expired the
	// primary must not accept writes any more.
	WaitFor(t, time.Duration(Fast.TTL)*time.Second, "primary read-only while etcd is down", func() bool {
		return !p.Writable(context.Background())
	})
	t.Logf("etcd lost: primary read-only %.2fs after etcd stopped (ttl %ds)", time.Since(stoppedAt).Seconds(), Fast.TTL)
	c.Etcd.Start()
	np := c.WaitPrimary(90*time.Second, nil)
	t.Logf("after etcd came back the primary is %s", np.Name)
	if overlaps := chk.Stop(); len(overlaps) > 0 {
		t.Errorf("two writable primaries: %v", overlaps)
	}
}

func TestFrozenPrimaryPgnodedIsFenced(t *testing.T) {
	c, p := bootCluster(t, Fast)
	chk := StartSplitBrainChecker(t, c)
	w := StartWriter(t, c, p)
	WaitFor(t, 10*time.Second, "some writes", func() bool { return w.Acked() > 20 })

	p.Signal(syscall.SIGSTOP)
	np := c.WaitPrimary(time.Duration(2*Fast.TTL)*time.Second+30*time.Second, p)
	time.Sleep(time.Duration(Fast.TTL) * time.Second / 2)
	p.Signal(syscall.SIGCONT)
	// The zombie leader wakes up: it must not accept writes again.
	WaitFor(t, 60*time.Second, "old primary rejoins as a replica", func() bool { return p.Check("/replica") == 200 })
	if overlaps := chk.Stop(); len(overlaps) > 0 {
		t.Errorf("two writable primaries: %v", overlaps)
	}
	if c.Primary() != np {
		t.Errorf("primary changed again after SIGCONT")
	}
}

func TestCleanSIGTERMSwitchLosesNothing(t *testing.T) {
	c, p := bootCluster(t, Fast)
	chk := StartSplitBrainChecker(t, c)
	w := StartWriter(t, c, p)
	WaitFor(t, 10*time.Second, "some writes", func() bool { return w.Acked() > 50 })

	stoppedAt := time.Now()
	p.Signal(syscall.SIGTERM)
	if !p.WaitExit(60 * time.Second) {
		t.Fatalf("pgnoded did not exit on SIGTERM")
	}
	np := c.WaitPrimary(30*time.Second, p)
	resumed := w.WaitWritesResume(t, 30*time.Second, stoppedAt)
	t.Logf("clean SIGTERM: %s took over, writes resumed %.2fs after the signal", np.Name, resumed.Sub(stoppedAt).Seconds())
	if p.PostmasterPID() != 0 && p.Writable(context.Background()) {
		t.Errorf("old primary still writable after SIGTERM")
	}
	if overlaps := chk.Stop(); len(overlaps) > 0 {
		t.Errorf("two writable primaries: %v", overlaps)
	}
	if lost := w.Lost(t, np); len(lost) > 0 {
		t.Errorf("%d acknowledged rows lost in a clean switch: %v", len(lost), lost[:min(10, len(lost))])
	}
}

// sameRowCount compares the row counts of the workload table on two nodes.
func sameRowCount(t *testing.T, a, b *Node) bool {
	ctx := context.Background()
	count := func(n *Node) int64 {
		conn, err := n.Conn(ctx)
		if err != nil {
			return -1
		}
		defer conn.Close(ctx)
		var c int64
		if err := conn.QueryRow(ctx, "select count(*) from itest_writes").Scan(&c); err != nil {
			return -2
		}
		return c
	}
	ca, cb := count(a), count(b)
	return ca >= 0 && ca == cb
}
