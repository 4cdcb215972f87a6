//go:build integration

package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// A Topology is a private L2 network of network namespaces: a bridge in a
// "switch" namespace, and one namespace per node, per etcd member and for the
// client, each joined to the bridge by a veth pair. Addresses come from a /24
// derived from the pid and exist only inside these namespaces.
//
// How the test process reaches them: it never enters a namespace itself.
// Long-running programs (pgnoded, etcd) are started with `ip netns exec`;
// the test's own traffic (REST, SQL, etcd client) is dialled by NetNS.DialContext,
// which creates the socket on a locked OS thread switched into the client
// namespace (a socket belongs to the namespace it was created in, whatever
// thread uses it later). Interface state is read with netlink handles bound
// to each namespace.
//
// Everything is removed by t.Cleanup, even on failure: every process inside
// the namespaces is SIGKILLed, the namespaces (and with them the veths and
// the bridge) deleted, the working directory removed, and a final check fails
// the test if a namespace or link carrying the topology's tag survived.
type Topology struct {
	t testing.TB
	// Tag is the unique part of every name ("<pid>x<seq>").
	Tag string
	// Dir is the working directory (node and etcd data, logs); removed at cleanup.
	Dir string
	// Subnet is the /24 of the namespaces.
	Subnet netip.Prefix
	// Switch holds the bridge.
	Switch *NetNS
	// Nodes, Etcd and Client are the namespaces by role.
	Nodes  []*NetNS
	Etcd   []*NetNS
	Client *NetNS

	bridge string

	mu         sync.Mutex
	procs      []*Proc
	all        []*NetNS
	nftTables  map[string]bool // namespaces with the partition table
	etcdMembs  []*EtcdMember
	torndown   bool
	onTeardown []func()
}

// TopologyOptions sizes a Topology.
type TopologyOptions struct {
	// Nodes is the number of node namespaces (default 3, at most 9).
	Nodes int
	// Etcd is the number of etcd namespaces (default 1, at most 9).
	Etcd int
}

// NetNS is one namespace of a Topology and its interface to the bridge.
type NetNS struct {
	// Name is the namespace's name for `ip netns`.
	Name string
	// Path is /run/netns/<Name>.
	Path string
	// Role is "n1".., "e1".., "c" or "s".
	Role string
	// Ifname is its veth inside the namespace ("" for the switch).
	Ifname string
	// IP is its address on the bridge (invalid for the switch).
	IP netip.Addr
	// MAC is Ifname's hardware address.
	MAC string

	peer string // the veth end on the bridge, in the switch namespace
	nl   *netlink.Handle
	// tls is the client TLS of HTTPClient (nil: plain HTTP), set for the
	// client namespace when the cluster's REST API uses HTTPS.
	tls *tls.Config
}

// topologySeq numbers the topologies of this process.
var topologySeq atomic.Int64

// Addresses inside the /24: nodes .11+, etcd .21+, client .31, VIP .100.
const (
	hostNode1  = 11
	hostEtcd1  = 21
	hostClient = 31
	hostVIP    = 100
)

// NewTopology builds the network; everything is removed when the test ends.
func NewTopology(t testing.TB, opts TopologyOptions) *Topology {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s is not installed (scripts/ensure-deps.sh installs iproute2 and nftables)", tool)
		}
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Etcd == 0 {
		opts.Etcd = 1
	}
	if opts.Nodes > 9 || opts.Etcd > 9 {
		t.Fatalf("topology: at most 9 nodes and 9 etcd members, got %d and %d", opts.Nodes, opts.Etcd)
	}
	sweepStale(t)
	pid := os.Getpid()
	tp := &Topology{
		t:         t,
		Tag:       fmt.Sprintf("%dx%s", pid, strconv.FormatInt(topologySeq.Add(1), 36)),
		Subnet:    netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + pid%50), byte(pid % 250), 0}), 24),
		nftTables: map[string]bool{},
	}
	// Cleanups run last-registered first: teardown, then the directory's
	// removal (testenv.PGDir), then the check that nothing of ours survived.
	t.Cleanup(tp.verifyGone)
	tp.Dir = testenv.PGDir(t)
	t.Cleanup(tp.teardown)

	tp.Switch = tp.addNS("s")
	tp.bridge = "b" + tp.Tag
	tp.ipCmd("-n", tp.Switch.Name, "link", "add", tp.bridge, "type", "bridge")
	tp.ipCmd("-n", tp.Switch.Name, "link", "set", tp.bridge, "up")
	for i := range opts.Nodes {
		tp.Nodes = append(tp.Nodes, tp.addHost(fmt.Sprintf("n%d", i+1), hostNode1+i))
	}
	for i := range opts.Etcd {
		tp.Etcd = append(tp.Etcd, tp.addHost(fmt.Sprintf("e%d", i+1), hostEtcd1+i))
	}
	tp.Client = tp.addHost("c", hostClient)
	return tp
}

// Addr is the address of host number h in the subnet.
func (tp *Topology) Addr(h int) netip.Addr {
	a := tp.Subnet.Addr().As4()
	a[3] = byte(h)
	return netip.AddrFrom4(a)
}

// VIP is the address the node configs use as their VIP (with the /24).
func (tp *Topology) VIP() netip.Prefix { return netip.PrefixFrom(tp.Addr(hostVIP), 24) }

// Prefix is the start of every namespace name of this topology.
func (tp *Topology) Prefix() string { return "pgt" + tp.Tag }

// addNS creates a namespace with lo up.
func (tp *Topology) addNS(role string) *NetNS {
	ns := &NetNS{Name: tp.Prefix() + role, Role: role}
	ns.Path = "/run/netns/" + ns.Name
	tp.ipCmd("netns", "add", ns.Name)
	tp.mu.Lock()
	tp.all = append(tp.all, ns)
	tp.mu.Unlock()
	tp.ipCmd("-n", ns.Name, "link", "set", "lo", "up")
	h, err := netns.GetFromPath(ns.Path)
	if err != nil {
		tp.t.Fatalf("open namespace %s: %v", ns.Name, err)
	}
	defer h.Close()
	if ns.nl, err = netlink.NewHandleAt(h); err != nil {
		tp.t.Fatalf("netlink in %s: %v", ns.Name, err)
	}
	_ = ns.nl.SetSocketTimeout(2 * time.Second)
	return ns
}

// addHost creates a namespace with a veth to the bridge and address host.
func (tp *Topology) addHost(role string, host int) *NetNS {
	ns := tp.addNS(role)
	ns.Ifname, ns.peer, ns.IP = "v"+tp.Tag+role, "w"+tp.Tag+role, tp.Addr(host)
	tp.ipCmd("-n", ns.Name, "link", "add", ns.Ifname, "type", "veth", "peer", "name", ns.peer, "netns", tp.Switch.Name)
	tp.ipCmd("-n", tp.Switch.Name, "link", "set", ns.peer, "master", tp.bridge, "up")
	tp.ipCmd("-n", ns.Name, "addr", "add", netip.PrefixFrom(ns.IP, 24).String(), "dev", ns.Ifname)
	tp.ipCmd("-n", ns.Name, "link", "set", ns.Ifname, "up")
	l, err := ns.nl.LinkByName(ns.Ifname)
	if err != nil {
		tp.t.Fatalf("link %s in %s: %v", ns.Ifname, ns.Name, err)
	}
	ns.MAC = l.Attrs().HardwareAddr.String()
	return ns
}

// ipCmd runs `ip args...` and fails the test on error.
func (tp *Topology) ipCmd(args ...string) string {
	tp.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		tp.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Run runs argv inside ns (`ip netns exec`) and returns its combined output.
func (ns *NetNS) Run(ctx context.Context, argv ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, argv...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", ns.Name, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Do runs fn on an OS thread switched into ns, then switches the thread back
// (or, if that fails, leaves it locked so the runtime discards it).
func (ns *NetNS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		h, err := netns.GetFromPath(ns.Path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open namespace %s: %w", ns.Name, err)
			return
		}
		err = netns.Set(h)
		h.Close()
		if err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns.Name, err)
			return // still locked: the thread may be half switched
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// DialContext dials addr from inside ns; the returned connection is usable from any goroutine.
func (ns *NetNS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient returns a client whose connections are dialled from inside ns.
func (ns *NetNS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext:         ns.DialContext,
		TLSClientConfig:     ns.tls,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// LinkUp reports whether ns's veth is administratively and operationally up.
func (ns *NetNS) LinkUp() (bool, error) {
	l, err := ns.nl.LinkByName(ns.Ifname)
	if err != nil {
		return false, fmt.Errorf("link %s in %s: %w", ns.Ifname, ns.Name, err)
	}
	return l.Attrs().Flags&net.FlagUp != 0 && l.Attrs().OperState == netlink.OperUp, nil
}

// HasAddr reports whether ns's veth holds p (address and prefix length).
func (ns *NetNS) HasAddr(p netip.Prefix) (bool, error) {
	l, err := ns.nl.LinkByName(ns.Ifname)
	if err != nil {
		return false, fmt.Errorf("link %s in %s: %w", ns.Ifname, ns.Name, err)
	}
	addrs, err := ns.nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return false, fmt.Errorf("addresses of %s in %s: %w", ns.Ifname, ns.Name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if ok && netip.PrefixFrom(ip.Unmap(), ones) == p {
			return true, nil
		}
	}
	return false, nil
}

// Neigh returns ns's neighbour entry for addr: MAC and state ("" when none).
func (ns *NetNS) Neigh(addr netip.Addr) (mac, state string, err error) {
	l, err := ns.nl.LinkByName(ns.Ifname)
	if err != nil {
		return "", "", fmt.Errorf("link %s in %s: %w", ns.Ifname, ns.Name, err)
	}
	list, err := ns.nl.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		return "", "", fmt.Errorf("neighbours in %s: %w", ns.Name, err)
	}
	for _, n := range list {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == addr {
			return n.HardwareAddr.String(), neighState(n.State), nil
		}
	}
	return "", "", nil
}

func neighState(s int) string {
	names := map[int]string{netlink.NUD_INCOMPLETE: "INCOMPLETE", netlink.NUD_REACHABLE: "REACHABLE",
		netlink.NUD_STALE: "STALE", netlink.NUD_DELAY: "DELAY", netlink.NUD_PROBE: "PROBE",
		netlink.NUD_FAILED: "FAILED", netlink.NUD_NOARP: "NOARP", netlink.NUD_PERMANENT: "PERMANENT"}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", s)
}
