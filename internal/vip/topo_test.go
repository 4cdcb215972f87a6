package vip

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/vishvananda/netns"
)

// topo is a test network: a bridge in a "switch" namespace and one namespace
// per role ("a", "b": nodes, "c": client), each with a veth to the bridge.
// Everything is created with iproute2 inside the namespaces and removed by
// t.Cleanup (deleting a namespace deletes its veth and the peer).
type topo struct {
	t      *testing.T
	prefix string // namespace name prefix, "pgv<pid><tag>"
	net4   [3]byte
	net6   string
	nodes  map[string]*node
}

// node is one namespace with its interface to the bridge.
type node struct {
	ns     string // namespace name
	path   string // /run/netns/<ns>
	ifname string
	ip4    netip.Addr
	ip6    netip.Addr
	mac    string
}

// pidTag is the process-unique part of every name the tests create.
var pidTag = fmt.Sprint(os.Getpid())

// newTopo builds the network; tag keeps the namespaces of different tests apart.
func newTopo(t *testing.T, tag string) *topo {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: iproute2 (ip) is not installed")
	}
	pid := os.Getpid()
	tp := &topo{t: t, prefix: "pgv" + pidTag + tag,
		net4:  [3]byte{10, byte(200 + pid%50), byte(pid % 250)},
		net6:  fmt.Sprintf("fd7a:%x:", pid%0x10000),
		nodes: map[string]*node{}}
	sw := tp.addNS("s")
	ip(t, "-n", sw, "link", "add", "br0", "type", "bridge")
	ip(t, "-n", sw, "link", "set", "br0", "up")
	for i, role := range []string{"a", "b", "c"} {
		n := &node{ns: tp.addNS(role), ifname: "v" + pidTag + role,
			ip4: tp.ip4(byte(i + 1)), ip6: tp.ip6(i + 1)}
		n.path = "/run/netns/" + n.ns
		peer := "w" + pidTag + role
		ip(t, "-n", n.ns, "link", "add", n.ifname, "type", "veth", "peer", "name", peer, "netns", sw)
		ip(t, "-n", sw, "link", "set", peer, "master", "br0", "up")
		ip(t, "-n", n.ns, "link", "set", "lo", "up")
		ip(t, "-n", n.ns, "addr", "add", n.ip4.String()+"/24", "dev", n.ifname)
		ip(t, "-n", n.ns, "addr", "add", n.ip6.String()+"/64", "dev", n.ifname, "nodad")
		ip(t, "-n", n.ns, "link", "set", n.ifname, "up")
		n.mac = tp.mac(n.ns, n.ifname)
		tp.nodes[role] = n
	}
	return tp
}

// addNS creates a namespace and registers its deletion.
func (tp *topo) addNS(role string) string {
	name := tp.prefix + role
	ip(tp.t, "netns", "add", name)
	tp.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tp.t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

func (tp *topo) ip4(host byte) netip.Addr {
	return netip.AddrFrom4([4]byte{tp.net4[0], tp.net4[1], tp.net4[2], host})
}

func (tp *topo) ip6(host int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("%s:%x", tp.net6, host))
}

// vip4 and vip6 are the VIPs used by the tests.
func (tp *topo) vip4() netip.Prefix { return netip.PrefixFrom(tp.ip4(100), 24) }
func (tp *topo) vip6() netip.Prefix { return netip.PrefixFrom(tp.ip6(0x100), 64) }

// manager makes a Manager for n's namespace and closes it at cleanup.
func (tp *topo) manager(n *node, cfg Config) *Manager {
	tp.t.Helper()
	cfg.NetnsPath = n.path
	if cfg.Interface == "" && cfg.LocalIP == nil {
		cfg.Interface = n.ifname
	}
	m, err := New(cfg)
	if err != nil {
		tp.t.Fatalf("New: %v", err)
	}
	tp.t.Cleanup(func() { _ = m.Close() })
	return m
}

// addrs lists "addr/len" of ifname in ns (iproute2's view).
func (tp *topo) addrs(ns, ifname string) []string {
	tp.t.Helper()
	var out []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	ipJSON(tp.t, &out, "-n", ns, "addr", "show", "dev", ifname)
	var res []string
	for _, l := range out {
		for _, a := range l.AddrInfo {
			res = append(res, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
		}
	}
	return res
}

// count reports how many times p is on ifname in ns.
func (tp *topo) count(ns, ifname string, p netip.Prefix) int {
	n := 0
	for _, a := range tp.addrs(ns, ifname) {
		if a == p.String() {
			n++
		}
	}
	return n
}

func (tp *topo) mac(ns, ifname string) string {
	tp.t.Helper()
	var out []struct {
		Address string `json:"address"`
	}
	ipJSON(tp.t, &out, "-n", ns, "link", "show", "dev", ifname)
	if len(out) != 1 {
		tp.t.Fatalf("link %s in %s: %v", ifname, ns, out)
	}
	return out[0].Address
}

// neigh returns the client's neighbour entry for addr: MAC and state ("" if none).
func (tp *topo) neigh(n *node, addr netip.Addr) (mac, state string) {
	tp.t.Helper()
	var out []struct {
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	ipJSON(tp.t, &out, "-n", n.ns, "neigh", "show", "to", addr.String(), "dev", n.ifname)
	if len(out) == 0 {
		return "", ""
	}
	return out[0].LLAddr, strings.Join(out[0].State, ",")
}

// sendUDP sends one datagram from n's namespace to dst:9 (discard), which
// makes n's kernel resolve dst's MAC.
func (tp *topo) sendUDP(n *node, dst netip.Addr) {
	tp.t.Helper()
	err := inNS(n.path, func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(dst, 9).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	})
	if err != nil {
		tp.t.Fatalf("udp from %s to %s: %v", n.ns, dst, err)
	}
}

// sysctl reads /proc/sys/net/<key> inside n's namespace (net sysctls show
// the namespace of the thread that opens them).
func (tp *topo) sysctl(n *node, key string) string {
	var v []byte
	err := inNS(n.path, func() error {
		var err error
		v, err = os.ReadFile("/proc/sys/net/" + key)
		return err
	})
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(v))
}

// inNS runs fn on a thread switched into the namespace at path; the thread
// is never unlocked, so it is discarded when the goroutine ends.
func inNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// waitFor polls cond every 2 ms until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func ipJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-j"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ip -j %s: %v", strings.Join(args, " "), err)
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		out = []byte("[]")
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("ip -j %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
