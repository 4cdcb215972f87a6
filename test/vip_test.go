//go:build integration

package test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVIPFailover proves that the VIP follows the leader, in network namespaces:
// three pgnoded nodes, one etcd and a client on a bridge, with the VIP enabled.
//
//  1. The VIP sits on the leader's interface only, and the client reaches the
//     primary through it.
//  2. The leader's machine dies (every process SIGKILLed, link down): the VIP
//     moves to the new primary, the client's neighbour entry follows (the
//     gratuitous ARP), and the next connection through the VIP lands there.
//  3. The new leader is cut off from etcd only (nftables in its namespace):
//     the VIP leaves it before its lease can expire, and moves on.
//
// A checker samples all namespaces every 50 ms throughout: the VIP must never
// be live on two nodes, nor on a node whose postgres (SQL) or REST role says
// it is not a primary.
func TestVIPFailover(t *testing.T) {
	tp := NewTopology(t, TopologyOptions{Nodes: 3, Etcd: 1})
	tp.StartEtcd()
	c := tp.StartPGCluster(ClusterOptions{Timing: Fast, VIP: true})
	vip := tp.VIP()
	t.Logf("topology %s: subnet %s, VIP %s, etcd %s, timing ttl=%d loop_wait=%d retry_timeout=%d",
		tp.Prefix(), tp.Subnet, vip, tp.EtcdHosts(), Fast.TTL, Fast.LoopWait, Fast.RetryTimeout)

	p := c.WaitPrimary(bootTimeout, nil)
	c.WaitHealthyReplicas(bootTimeout, p)
	chk := StartVIPChecker(t, c)

	// 1. The VIP on the leader only; the client lands on the primary through it.
	WaitFor(t, 30*time.Second, "the VIP on the leader "+p.Name, func() bool { return ipAddrHas(t, p.NS, vip) })
	for _, n := range c.Others(p) {
		if ipAddrHas(t, n.NS, vip) {
			t.Errorf("the VIP is also on replica %s", n.Name)
		}
	}
	if got := viaVIP(t, c, 5*time.Second); got != p {
		t.Fatalf("connection through the VIP landed on %v, want the primary %s", nodeName(got), p.Name)
	}
	if mac := clientNeighMAC(t, tp, vip.Addr()); mac != p.NS.MAC {
		t.Errorf("client's neighbour entry for the VIP = %q, want the leader's MAC %s", mac, p.NS.MAC)
	}

	// 2. The leader's machine dies.
	killAt := time.Now()
	p.Crash()
	np, boundAt := waitVIPMoves(t, c.Others(p), 60*time.Second)
	if !np.Writable(context.Background()) {
		t.Errorf("the VIP moved to %s, whose postgres is not a writable primary", np.Name)
	}
	// No traffic to the VIP yet: only the gratuitous ARP can move the client's entry.
	var garpAt time.Time
	WaitFor(t, 10*time.Second, "the client's neighbour entry for the VIP to move to "+np.Name, func() bool {
		if clientNeighMAC(t, tp, vip.Addr()) == np.NS.MAC {
			garpAt = time.Now()
			return true
		}
		return false
	})
	got := viaVIP(t, c, 10*time.Second)
	answeredAt := time.Now()
	if got != np {
		t.Fatalf("connection through the VIP after the failover landed on %v, want the new primary %s", nodeName(got), np.Name)
	}
	t.Logf("leader %s killed (machine crash): VIP bound on %s after %.2fs, client's neighbour entry on the new MAC %s after %.2fs, VIP answering (SQL on the new primary) after %.2fs",
		p.Name, np.Name, boundAt.Sub(killAt).Seconds(), np.NS.MAC, garpAt.Sub(killAt).Seconds(), answeredAt.Sub(killAt).Seconds())
	if l := np.LogLine("promoted to primary"); l != "" {
		t.Logf("%s's log: %s", np.Name, l)
	}
	c.WaitHealthyReplicas(bootTimeout, np, p)

	// 3. The new leader loses etcd but stays reachable by clients.
	ctx := context.Background()
	before := time.Now()
	leader, ttlLeft := c.LeaderLease(ctx)
	if leader != np.Name || ttlLeft < 0 {
		t.Fatalf("leader key = %q with %ds left, want %s", leader, ttlLeft, np.Name)
	}
	tp.Partition(np.NS, tp.Etcd...)
	cutAt := time.Now()
	// The lease cannot expire before `before + ttlLeft` (etcd truncates the remaining seconds).
	expiresNoEarlierThan := before.Add(time.Duration(ttlLeft) * time.Second)
	var goneAt time.Time
	WaitFor(t, time.Duration(Fast.TTL+5)*time.Second, "the VIP to leave the leader cut off from etcd", func() bool {
		if has, _ := np.HasVIP(); !has {
			goneAt = time.Now()
			return true
		}
		return false
	})
	t.Logf("leader %s cut off from etcd: VIP gone after %.2fs; its lease (ttl %ds, %ds left at the cut) expires no earlier than %.2fs after the cut",
		np.Name, goneAt.Sub(cutAt).Seconds(), Fast.TTL, ttlLeft, expiresNoEarlierThan.Sub(cutAt).Seconds())
	if !goneAt.Before(expiresNoEarlierThan) {
		t.Errorf("the VIP left %s %.2fs after the cut, not before its lease could expire (%.2fs)",
			np.Name, goneAt.Sub(cutAt).Seconds(), expiresNoEarlierThan.Sub(cutAt).Seconds())
	}
	if ipAddrHas(t, np.NS, vip) {
		t.Errorf("ip addr still shows the VIP on %s", np.Name)
	}
	if code := np.Check("/health"); code == 0 {
		t.Errorf("%s's REST API is unreachable from the client during the etcd cut; the partition must be etcd-only", np.Name)
	}
	third := c.Others(p, np)[0]
	moved, movedAt := waitVIPMoves(t, []*Node{third}, 60*time.Second)
	if got := viaVIP(t, c, 10*time.Second); got != third {
		t.Errorf("connection through the VIP landed on %v, want %s", nodeName(got), third.Name)
	}
	t.Logf("VIP on %s %.2fs after the cut", moved.Name, movedAt.Sub(cutAt).Seconds())

	// The cut-off node rejoins as a replica once etcd is back, without the VIP.
	tp.Heal(np.NS)
	c.WaitHealthyReplicas(bootTimeout, third, p)
	if ipAddrHas(t, np.NS, vip) {
		t.Errorf("the VIP is on %s again after it rejoined as a replica", np.Name)
	}

	rep := chk.Stop()
	t.Logf("VIP checker: %s", rep)
	if rep.Violations() > 0 {
		t.Errorf("the VIP broke the rules %d times (see above)", rep.Violations())
	}
	if rep.Errors > 0 {
		t.Errorf("the checker could not read the VIP state %d times", rep.Errors)
	}
}

// waitVIPMoves polls (every 10 ms) until one of nodes holds the VIP and
// returns it with the time it was first seen there.
func waitVIPMoves(t testing.TB, nodes []*Node, timeout time.Duration) (*Node, time.Time) {
	t.Helper()
	var holder *Node
	var at time.Time
	if pollEvery(timeout, 10*time.Millisecond, func() bool {
		for _, n := range nodes {
			if has, _ := n.HasVIP(); has {
				holder, at = n, time.Now()
				return true
			}
		}
		return false
	}) {
		return holder, at
	}
	t.Fatalf("the VIP did not appear on any of %d nodes within %v", len(nodes), timeout)
	return nil, time.Time{}
}

// ipAddrHas reports whether `ip -n NS addr show dev IF` lists p.
func ipAddrHas(t testing.TB, ns *NetNS, p netip.Prefix) bool {
	t.Helper()
	out, err := exec.Command("ip", "-j", "-n", ns.Name, "addr", "show", "dev", ns.Ifname).Output()
	if err != nil {
		t.Fatalf("ip -n %s addr show dev %s: %v", ns.Name, ns.Ifname, err)
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatalf("ip -j addr: %v: %s", err, out)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if a.Local == p.Addr().String() && a.PrefixLen == p.Bits() {
				return true
			}
		}
	}
	return false
}

// clientNeighMAC is the client's neighbour entry for addr per `ip -n client neigh` ("" if none).
func clientNeighMAC(t testing.TB, tp *Topology, addr netip.Addr) string {
	t.Helper()
	out, err := exec.Command("ip", "-j", "-n", tp.Client.Name, "neigh", "show", "to", addr.String(), "dev", tp.Client.Ifname).Output()
	if err != nil {
		t.Fatalf("ip -n %s neigh: %v", tp.Client.Name, err)
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return ""
	}
	var entries []struct {
		LLAddr string `json:"lladdr"`
	}
	if err := json.Unmarshal(out, &entries); err != nil {
		t.Fatalf("ip -j neigh: %v: %s", err, out)
	}
	if len(entries) == 0 {
		return ""
	}
	return entries[0].LLAddr
}

// viaVIP connects to postgres through the VIP from the client namespace,
// retrying until timeout, and returns the node it landed on: a primary
// (pg_is_in_recovery() false) that sees the VIP as its server address.
func viaVIP(t testing.TB, c *Cluster, timeout time.Duration) *Node {
	t.Helper()
	vip := c.Topo.VIP().Addr()
	var landed *Node
	var last string
	if pollEvery(timeout, 20*time.Millisecond, func() bool { landed, last = tryVIP(c, vip); return landed != nil }) {
		return landed
	}
	t.Errorf("no primary answered through the VIP within %v: %s", timeout, last)
	return nil
}

func tryVIP(c *Cluster, vip netip.Addr) (*Node, string) {
	ctx := context.Background()
	conn, err := c.ConnTo(ctx, vip.String(), 500*time.Millisecond)
	if err != nil {
		return nil, err.Error()
	}
	defer conn.Close(ctx)
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var rec bool
	var server, dataDir string
	err = conn.QueryRow(qctx, "select pg_is_in_recovery(), host(inet_server_addr()), current_setting('data_directory')").Scan(&rec, &server, &dataDir)
	switch {
	case err != nil:
		return nil, err.Error()
	case rec:
		return nil, "landed on a replica (" + dataDir + ")"
	case server != vip.String():
		return nil, "inet_server_addr() = " + server
	}
	for _, n := range c.Nodes {
		if filepath.Join(n.Dir, "data") == dataDir {
			return n, ""
		}
	}
	return nil, "unknown data directory " + dataDir
}

func nodeName(n *Node) string {
	if n == nil {
		return "no node"
	}
	return n.Name
}

// TestVIPLeavesLeaderWithDeadPgnoded kills the leader's pgnoded and
// postmaster while its machine stays up (link up, fence guard alive), lets a
// new primary take the VIP, then restarts the old pgnoded as systemd would.
// The VIP must never be live on two nodes.
// The fence guard, which outlives pgnoded, releases the VIP when it fences,
// before the lease can end and the new primary binds it.
func TestVIPLeavesLeaderWithDeadPgnoded(t *testing.T) {
	tp := NewTopology(t, TopologyOptions{Nodes: 3, Etcd: 1})
	tp.StartEtcd()
	c := tp.StartPGCluster(ClusterOptions{Timing: Fast, VIP: true})
	p := c.WaitPrimary(bootTimeout, nil)
	c.WaitHealthyReplicas(bootTimeout, p)
	chk := StartVIPChecker(t, c)
	WaitFor(t, 30*time.Second, "the VIP on the leader "+p.Name, func() bool { has, _ := p.HasVIP(); return has })

	killAt := time.Now()
	p.KillPgnoded()
	p.KillPostmaster()
	np := c.WaitPrimary(60*time.Second, p)
	WaitFor(t, 30*time.Second, "the VIP on "+np.Name, func() bool { has, _ := np.HasVIP(); return has })
	boundAt := time.Now()
	stale, _ := p.HasVIP()
	p.Start()
	WaitFor(t, 60*time.Second, "the restarted pgnoded on "+p.Name+" to drop the VIP", func() bool { has, _ := p.HasVIP(); return !has })
	t.Logf("pgnoded+postmaster of %s killed: VIP on %s after %.2fs; still on %s then: %v; gone from it %.2fs after its pgnoded restarted",
		p.Name, np.Name, boundAt.Sub(killAt).Seconds(), p.Name, stale, time.Since(boundAt).Seconds())
	rep := chk.Stop()
	t.Logf("VIP checker: %s", rep)
	if len(rep.Dual) > 0 {
		t.Errorf("the VIP was live on two nodes in %d rounds (%v)", len(rep.Dual), time.Duration(len(rep.Dual))*vipCheckInterval)
	}
}
