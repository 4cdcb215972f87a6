//go:build integration

package test

import (
	"os/exec"
	"strings"
)

// SetLink brings ns's veth up or down (a pulled cable: the address stays, nothing passes).
func (tp *Topology) SetLink(ns *NetNS, up bool) {
	tp.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	tp.ipCmd("-n", ns.Name, "link", "set", ns.Ifname, state)
}

// Partition drops, inside from's namespace, all IPv4 traffic to and from the
// given namespaces (nftables); from stays reachable by everyone else. Calls
// accumulate until Heal.
func (tp *Topology) Partition(from *NetNS, peers ...*NetNS) {
	tp.t.Helper()
	if len(peers) == 0 {
		return
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if !tp.nftTables[from.Name] {
		rules := `table inet pgtest {
  set blocked { type ipv4_addr; }
  chain in { type filter hook input priority 0; policy accept; ip saddr @blocked drop; }
  chain out { type filter hook output priority 0; policy accept; ip daddr @blocked drop; }
}
`
		cmd := exec.Command("ip", "netns", "exec", from.Name, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			tp.t.Fatalf("nft in %s: %v: %s", from.Name, err, out)
		}
		tp.nftTables[from.Name] = true
	}
	ips := make([]string, len(peers))
	for i, p := range peers {
		ips[i] = p.IP.String()
	}
	out, err := exec.Command("ip", "netns", "exec", from.Name, "nft", "add", "element", "inet", "pgtest", "blocked",
		"{ "+strings.Join(ips, ", ")+" }").CombinedOutput()
	if err != nil {
		tp.t.Fatalf("nft add element in %s: %v: %s", from.Name, err, out)
	}
}

// PartitionGroups cuts every namespace of a from every namespace of b (both directions).
func (tp *Topology) PartitionGroups(a, b []*NetNS) {
	tp.t.Helper()
	for _, x := range a {
		tp.Partition(x, b...)
	}
}

// Heal removes every partition rule inside ns.
func (tp *Topology) Heal(ns *NetNS) {
	tp.t.Helper()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if !tp.nftTables[ns.Name] {
		return
	}
	if out, err := exec.Command("ip", "netns", "exec", ns.Name, "nft", "delete", "table", "inet", "pgtest").CombinedOutput(); err != nil {
		tp.t.Fatalf("nft delete table in %s: %v: %s", ns.Name, err, out)
	}
	delete(tp.nftTables, ns.Name)
}

// HealAll removes every partition rule of the topology.
func (tp *Topology) HealAll() {
	tp.t.Helper()
	for _, ns := range tp.all {
		tp.Heal(ns)
	}
}
