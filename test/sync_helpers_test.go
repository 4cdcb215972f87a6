//go:build integration

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// Helpers of the synchronous replication tests (sync_*_test.go) and the
// failure suite's sync-* scenarios.

// syncState is the /sync key's value in Patroni's layout: the leader that wrote
// it and its synchronous standbys (comma-separated when synchronous_node_count
// is above 1; Patroni 4.x adds quorum).
type syncState struct {
	Leader      string `json:"leader"`
	SyncStandby string `json:"sync_standby"`
	Quorum      *int   `json:"quorum,omitempty"`
}

// Standbys lists the synchronous standbys the key names.
func (s syncState) Standbys() []string {
	var out []string
	for _, n := range strings.Split(s.SyncStandby, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Names reports whether the key lists name among its standbys.
func (s syncState) Names(name string) bool {
	for _, n := range s.Standbys() {
		if n == name {
			return true
		}
	}
	return false
}

// SyncKey reads and decodes the cluster's /sync key (false when absent or unreadable).
func (c *Cluster) SyncKey(ctx context.Context) (syncState, bool) {
	v, ok := c.EtcdKey(ctx, "sync")
	if !ok {
		return syncState{}, false
	}
	var s syncState
	if json.Unmarshal([]byte(v), &s) != nil {
		return syncState{}, false
	}
	return s, true
}

// WaitSyncListed waits until /sync names p as its leader and exactly one
// standby, one of p's replicas, and returns that standby.
func (c *Cluster) WaitSyncListed(t testing.TB, p *Node, limit time.Duration) *Node {
	t.Helper()
	var listed *Node
	WaitFor(t, limit, "the sync key to name the primary "+p.Name+" and a standby", func() bool {
		k, ok := c.SyncKey(context.Background())
		sb := k.Standbys()
		if !ok || k.Leader != p.Name || len(sb) != 1 {
			return false
		}
		for _, n := range c.Others(p) {
			if n.Name == sb[0] {
				listed = n
			}
		}
		return listed != nil
	})
	return listed
}

// forSyncDaemons runs fn as one subtest per daemon: pgnoded, and Patroni
// 3.0.2 (which has synchronous mode: the test's own check) when
// PGNODED_SYNC_PATRONI=1.
//
//	PGNODED_SYNC_PATRONI=1 go test -tags integration -count=1 -run '^TestSyncSwitchover$/patroni' -v ./test/
func forSyncDaemons(t *testing.T, fn func(t *testing.T, d Daemon)) {
	for _, d := range []Daemon{DaemonPgnoded, DaemonPatroni} {
		t.Run(d.String(), func(t *testing.T) {
			if d == DaemonPatroni && os.Getenv("PGNODED_SYNC_PATRONI") != "1" {
				t.Skip("Patroni 3.0.2 check of the test: PGNODED_SYNC_PATRONI=1")
			}
			fn(t, d)
		})
	}
}

// startSyncCluster boots n loopback nodes of daemon d with synchronous_mode
// on (sync says strict and the node count), all at once, and waits until
// one primary streams to every replica and /sync names it and a standby its
// pg_stat_replication reports synchronous. It returns the primary and that standby.
//
// Strict clusters bootstrap in strict mode, as Pigsty's crit template renders
// them. PGNODED_SYNC_STRICT_BY_PATCH=1 boots them non-strict and turns strict
// on through PATCH /config once the synchronous standby is in /sync: the same
// runtime checks without the bootstrap (to tell a bootstrap problem from one of
// strict mode itself).
func startSyncCluster(t testing.TB, d Daemon, n int, tm Timing, sync nodeconf.Sync) (c *Cluster, p, s *Node) {
	t.Helper()
	boot := sync
	byPatch := sync.Strict && os.Getenv("PGNODED_SYNC_STRICT_BY_PATCH") == "1"
	if byPatch {
		boot.Strict = false
	}
	c = startDaemonCluster(t, d, n, tm, &boot)
	p, s = c.WaitSync(bootTimeout)
	if byPatch {
		if code, text := p.Call(t, "PATCH", "/config", map[string]any{"synchronous_mode_strict": true}); code != 200 {
			t.Fatalf("PATCH strict: %d %s", code, text)
		}
		time.Sleep(time.Duration(2*tm.LoopWait) * time.Second) // two loops: every node has read the new config
		t.Logf("synchronous_mode_strict turned on through PATCH /config (PGNODED_SYNC_STRICT_BY_PATCH=1)")
	}
	t.Logf("%s cluster %s up: primary %s, synchronous standby %s (strict %v)", d, c.Scope, p.Name, s.Name, sync.Strict)
	return c, p, s
}

// startDaemonCluster writes the configs of n loopback nodes of daemon d
// (synchronous_mode as sync says; nil: asynchronous) and starts them all at once.
func startDaemonCluster(t testing.TB, d Daemon, n int, tm Timing, sync *nodeconf.Sync) *Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	version := ""
	if d == DaemonPatroni {
		version = requirePatroni(t)
	}
	c := newCluster(t, newLoopback(t), fmt.Sprintf("sy%d-%d", os.Getpid(), time.Now().UnixNano()%100000), d, n,
		ClusterOptions{Timing: tm, Sync: sync}, nil)
	c.Version = version
	c.StartAll()
	return c
}

// WaitSync waits until one node answers /primary, every other streams from
// it, and /sync names it and a standby it reports synchronous; it returns
// the primary and that standby.
func (c *Cluster) WaitSync(timeout time.Duration) (p, s *Node) {
	c.t.Helper()
	WaitFor(c.t, timeout, "a primary streaming to every replica and a synchronous standby in /sync", func() bool {
		var n int
		if p, n = primaryNoErr(c); n != 1 || StreamingReplicas(p) != len(c.Nodes)-1 {
			return false
		}
		s = c.syncStandbyOf(p)
		return s != nil
	})
	return p, s
}

// syncStandbyOf is the first standby /sync names for leader p that p's
// pg_stat_replication reports synchronous (nil when none).
func (c *Cluster) syncStandbyOf(p *Node) *Node {
	k, ok := c.SyncKey(context.Background())
	if !ok || k.Leader != p.Name {
		return nil
	}
	names, err := p.QueryString("select coalesce(string_agg(application_name, ','), '') from pg_stat_replication " +
		"where state = 'streaming' and sync_state in ('sync', 'quorum')")
	if err != nil {
		return nil
	}
	for _, n := range strings.Split(names, ",") {
		if k.Names(n) {
			for _, nd := range c.Nodes {
				if nd.Name == n {
					return nd
				}
			}
		}
	}
	return nil
}

// InRecovery reports whether the node's postgres answers and is in recovery.
func (n *Node) InRecovery() bool {
	s, err := n.QueryString("select pg_is_in_recovery()::text")
	return err == nil && s == "true"
}
