//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// showSSN is synchronous_standby_names on n ("<error>" when it cannot be read).
func showSSN(n *Node) string {
	v, err := n.QueryString("SHOW synchronous_standby_names")
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return v
}

// enableSync turns synchronous mode on through PATCH /config (no restart) and
// waits until the sync key names p and a streaming standby, and p's
// synchronous_standby_names lists exactly that standby.
func enableSync(t *testing.T, c *Cluster, p *Node, patch map[string]any) *Node {
	t.Helper()
	if code, text := p.Call(t, "PATCH", "/config", patch); code != 200 {
		t.Fatalf("PATCH /config %v: %d %s", patch, code, text)
	}
	standby := c.WaitSyncListed(t, p, 60*time.Second)
	raw, _ := c.EtcdKey(context.Background(), "sync")
	want := plan.FormatSSN([]string{standby.Name}, false, false, nil)
	WaitFor(t, 10*time.Second, "synchronous_standby_names on the primary = "+want, func() bool { return showSSN(p) == want })
	t.Logf("sync key %s; synchronous_standby_names on %s = %q", raw, p.Name, want)
	return standby
}

// Synchronous mode on a running cluster: the primary publishes a streaming
// standby in the sync key and lists it in synchronous_standby_names; when the
// primary's node dies (kill -9 of pgnoded and postgres), the sync standby is
// promoted (the async replica may not) with every acknowledged write.
func TestSyncCoreNodeLossPromotesSyncStandby(t *testing.T) {
	c := StartCluster(t, 3, Fast)
	p := c.WaitPrimary(90*time.Second, nil)
	c.WaitHealthyReplicas(60*time.Second, p)
	s := enableSync(t, c, p, map[string]any{"synchronous_mode": true})

	w := StartWriter(t, c, p)
	chk := StartSplitBrainChecker(t, c)
	WaitFor(t, 10*time.Second, "some writes", func() bool { return w.Acked() > 50 })
	killedAt := time.Now()
	p.NodeLoss()
	np := c.WaitPrimary(time.Duration(Fast.TTL)*time.Second+60*time.Second, p)
	promotedIn := time.Since(killedAt)
	if np != s {
		t.Errorf("%s was promoted; only the sync standby %s may be", np.Name, s.Name)
	}
	resumed := w.WaitWritesResume(t, 60*time.Second, killedAt)
	t.Logf("node loss with synchronous_mode (ttl %d): %s answers /primary %.2fs after the kill; first write sent after the kill acknowledged %.2fs after it",
		Fast.TTL, np.Name, promotedIn.Seconds(), resumed.Sub(killedAt).Seconds())
	if overlaps := chk.Stop(); len(overlaps) > 0 {
		t.Errorf("two writable primaries: %v", overlaps)
	}
	acked := w.Acked()
	if lost := w.Lost(t, np); len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes lost: %v", len(lost), acked, lost[:min(len(lost), 20)])
	}
	// The new primary keeps the key: it leads it and, once the other replica follows it, lists it.
	WaitFor(t, 60*time.Second, "the new primary to lead the sync key with a standby", func() bool {
		k, ok := c.SyncKey(context.Background())
		sb := k.Standbys()
		return ok && k.Leader == np.Name && len(sb) == 1 && sb[0] != p.Name
	})

	// Turned off: the key is deleted and synchronous_standby_names is empty again.
	if code, text := np.Call(t, "PATCH", "/config", map[string]any{"synchronous_mode": false}); code != 200 {
		t.Fatalf("PATCH synchronous_mode false: %d %s", code, text)
	}
	WaitFor(t, 30*time.Second, "the sync key deleted and the GUC cleared", func() bool {
		_, has := c.EtcdKey(context.Background(), "sync")
		return !has && showSSN(np) == ""
	})
}

// A cluster bootstrapped with synchronous_mode and synchronous_mode_strict in
// bootstrap.dcs: the first primary starts with synchronous_standby_names '*'
// and still creates its roles (pgnoded's own commits are local), the replicas
// clone and connect, one is published as sync standby, writes flow, and a
// node loss promotes that standby with nothing lost.
func TestSyncCoreStrictFromBootstrap(t *testing.T) {
	testenv.RequireRoot(t)
	c := newCluster(t, newLoopback(t), fmt.Sprintf("it%d-%d", os.Getpid(), time.Now().UnixNano()%100000),
		DaemonPgnoded, 3, ClusterOptions{Timing: Fast, Sync: &nodeconf.Sync{Strict: true}}, nil)
	c.StartAll()
	p := c.WaitPrimary(120*time.Second, nil)
	c.WaitHealthyReplicas(90*time.Second, p)
	s := c.WaitSyncListed(t, p, 60*time.Second)
	// The key is narrowed before the GUC (internal/ha/sync.go): strict's "*"
	// gives way to the listed standby once postgres has reloaded.
	var got string
	if !pollFor(10*time.Second, func() bool { got = showSSN(p); return got == s.Name }) {
		t.Errorf("synchronous_standby_names on %s = %q, want %q", p.Name, got, s.Name)
	}
	w := StartWriter(t, c, p)
	WaitFor(t, 20*time.Second, "some writes", func() bool { return w.Acked() > 50 })
	killedAt := time.Now()
	p.NodeLoss()
	np := c.WaitPrimary(time.Duration(Fast.TTL)*time.Second+60*time.Second, p)
	if np != s {
		t.Errorf("%s was promoted; only the sync standby %s may be", np.Name, s.Name)
	}
	resumed := w.WaitWritesResume(t, 60*time.Second, killedAt)
	t.Logf("strict from bootstrap: %s promoted, writes resumed %.2fs after the kill", np.Name, resumed.Sub(killedAt).Seconds())
	acked := w.Acked()
	if lost := w.Lost(t, np); len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes lost: %v", len(lost), acked, lost[:min(len(lost), 20)])
	}
}
