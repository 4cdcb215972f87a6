package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
)

// ipCmd runs iproute2 and returns its output, or an error quoting it.
func ipCmd(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// listNamespaces returns the named network namespaces starting with prefix.
func listNamespaces(ctx context.Context, prefix string) []string {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names
}

// netnsPIDs lists the processes inside a named namespace.
func netnsPIDs(ctx context.Context, ns string) []int {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pickSubnet returns the first 10.213.x.0/24 that no route of this host overlaps.
func pickSubnet(ctx context.Context) (netip.Prefix, error) {
	out, err := exec.CommandContext(ctx, "ip", "-j", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ip route: %w", err)
	}
	var routes []struct {
		Dst string `json:"dst"`
	}
	_ = json.Unmarshal(out, &routes)
	var taken []netip.Prefix
	for _, r := range routes {
		if p, err := netip.ParsePrefix(r.Dst); err == nil {
			taken = append(taken, p)
		} else if a, err := netip.ParseAddr(r.Dst); err == nil {
			taken = append(taken, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	base := netip.MustParsePrefix(defaultNet).Addr().As4()
	for x := int(base[2]); x < 256; x++ {
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1], byte(x), 0}), 24)
		free := true
		for _, t := range taken {
			if t.Bits() > 0 && t.Overlaps(cand) {
				free = false
				break
			}
		}
		if free {
			return cand, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("every 10.213.x.0/24 overlaps a route of this host")
}

// createTopology makes the namespaces: a bridge in pgdemo-sw and one veth per
// member namespace plugged into it. Nothing is added to the host's own namespace.
func createTopology(ctx context.Context, s *State) error {
	if _, err := ipCmd(ctx, "netns", "add", switchNS); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", switchNS, "link", "add", "br0", "type", "bridge"},
		{"-n", switchNS, "link", "set", "br0", "up"},
	}
	type member struct{ ns, ip, port string }
	members := []member{{clientNS, hostIn(s.Subnet, 2), "client"}, {etcdNS, strings.Split(s.EtcdAddr, ":")[0], "etcd"}}
	for _, n := range s.Nodes {
		members = append(members, member{n.NS, n.IP, n.Name})
	}
	for _, m := range members {
		if _, err := ipCmd(ctx, "netns", "add", m.ns); err != nil {
			return err
		}
		steps = append(steps,
			[]string{"-n", m.ns, "link", "add", ifname, "type", "veth", "peer", "name", m.port, "netns", switchNS},
			[]string{"-n", switchNS, "link", "set", m.port, "master", "br0", "up"},
			[]string{"-n", m.ns, "link", "set", "lo", "up"},
			[]string{"-n", m.ns, "addr", "add", m.ip + "/" + strconv.Itoa(s.VIPPrefix), "dev", ifname},
			[]string{"-n", m.ns, "link", "set", ifname, "up"})
	}
	for _, st := range steps {
		if _, err := ipCmd(ctx, st...); err != nil {
			return err
		}
	}
	return nil
}

// hostIn returns the address .h of a /24 subnet.
func hostIn(subnet string, h byte) string {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return ""
	}
	b := p.Addr().As4()
	b[3] = h
	return netip.AddrFrom4(b).String()
}

// deleteNamespaces removes the named namespaces (their links go with them).
func deleteNamespaces(ctx context.Context, names []string) error {
	var errs []string
	for _, ns := range names {
		if _, err := ipCmd(ctx, "netns", "del", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove namespaces: %s", strings.Join(errs, "; "))
	}
	return nil
}

// vipOn reports whether addr is on the namespace's demo interface.
func vipOn(ctx context.Context, ns, addr string) bool {
	out, err := exec.CommandContext(ctx, "ip", "-n", ns, "-j", "-4", "addr", "show", "dev", ifname).Output()
	if err != nil {
		return false
	}
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if json.Unmarshal(out, &links) != nil {
		return false
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if a.Local == addr {
				return true
			}
		}
	}
	return false
}
