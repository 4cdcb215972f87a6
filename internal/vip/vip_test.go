package vip

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/pgnoded/pgnoded/internal/ha"
)

var _ ha.VIP = (*Manager)(nil)

// moveVIP binds vip on A, lets the client learn A's MAC by sending to it,
// moves vip to B, and waits for the client's neighbour entry to change to
// B's MAC with the client sending nothing; it returns how long that took.
func moveVIP(t *testing.T, tp *topo, vip netip.Prefix) time.Duration {
	a, b, c := tp.nodes["a"], tp.nodes["b"], tp.nodes["c"]
	ma := tp.manager(a, Config{Address: vip.String()})
	mb := tp.manager(b, Config{Address: vip.String()})
	ctx := context.Background()

	if err := mb.Ensure(ctx, false); err != nil {
		t.Fatalf("Ensure(false) on B with nothing bound: %v", err)
	}
	for i := range 2 { // the second call must change nothing
		if err := ma.Ensure(ctx, true); err != nil {
			t.Fatalf("Ensure(true) #%d on A: %v", i+1, err)
		}
		if n := tp.count(a.ns, a.ifname, vip); n != 1 {
			t.Fatalf("after Ensure(true) #%d: %s is %d times on A (%v)", i+1, vip, n, tp.addrs(a.ns, a.ifname))
		}
	}
	if n := tp.count(b.ns, b.ifname, vip); n != 0 {
		t.Fatalf("%s is on B before it was bound there", vip)
	}
	if ok, err := ma.Bound(ctx); !ok || err != nil {
		t.Fatalf("A Bound = %v, %v; want true", ok, err)
	}
	if ok, err := mb.Bound(ctx); ok || err != nil {
		t.Fatalf("B Bound = %v, %v; want false", ok, err)
	}

	waitFor(t, 5*time.Second, "client to resolve the VIP to A's MAC", func() bool {
		if mac, _ := tp.neigh(c, vip.Addr()); mac == a.mac {
			return true
		}
		tp.sendUDP(c, vip.Addr())
		return false
	})
	_, state := tp.neigh(c, vip.Addr())
	t.Logf("client's entry for %s: %s (%s) after traffic", vip.Addr(), a.mac, state)

	for range 2 {
		if err := ma.Ensure(ctx, false); err != nil {
			t.Fatalf("Ensure(false) on A: %v", err)
		}
	}
	if n := tp.count(a.ns, a.ifname, vip); n != 0 {
		t.Fatalf("%s still on A after Ensure(false): %v", vip, tp.addrs(a.ns, a.ifname))
	}
	start := time.Now()
	if err := mb.Ensure(ctx, true); err != nil {
		t.Fatalf("Ensure(true) on B: %v", err)
	}
	waitFor(t, 5*time.Second, "client's entry to change to B's MAC "+b.mac, func() bool {
		mac, _ := tp.neigh(c, vip.Addr())
		return mac == b.mac
	})
	took := time.Since(start)
	_, state = tp.neigh(c, vip.Addr())
	t.Logf("client's entry for %s changed to B's MAC %s (%s) %v after Ensure(true) on B began",
		vip.Addr(), b.mac, state, took)
	if n := tp.count(b.ns, b.ifname, vip); n != 1 {
		t.Fatalf("%s is %d times on B", vip, n)
	}
	return took
}

func TestMoveIPv4GratuitousARP(t *testing.T) {
	tp := newTopo(t, "m")
	c := tp.nodes["c"]
	t.Logf("client sysctls: arp_accept=%s (all=%s)", tp.sysctl(c, "ipv4/conf/"+c.ifname+"/arp_accept"),
		tp.sysctl(c, "ipv4/conf/all/arp_accept"))
	moveVIP(t, tp, tp.vip4())
}

func TestMoveIPv6UnsolicitedNA(t *testing.T) {
	tp := newTopo(t, "6")
	c := tp.nodes["c"]
	t.Logf("client sysctls: accept_untracked_na=%s drop_unsolicited_na=%s",
		tp.sysctl(c, "ipv6/conf/"+c.ifname+"/accept_untracked_na"),
		tp.sysctl(c, "ipv6/conf/"+c.ifname+"/drop_unsolicited_na"))
	moveVIP(t, tp, tp.vip6())
}

// TestAnnouncementsOnTheWire captures, in the client namespace, what one
// Ensure(true) sends: ARPCount broadcast gratuitous requests and replies.
func TestAnnouncementsOnTheWire(t *testing.T) {
	tp := newTopo(t, "w")
	a, c := tp.nodes["a"], tp.nodes["c"]
	vip := tp.vip4()
	const count = 3
	m := tp.manager(a, Config{Address: vip.String(), ARPCount: count, ARPInterval: 50 * time.Millisecond})

	var cl *arp.Client
	err := inNS(c.path, func() error {
		ifi, err := net.InterfaceByName(c.ifname)
		if err != nil {
			return err
		}
		cl, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		t.Fatalf("capture socket: %v", err)
	}
	defer cl.Close()

	if err := m.Ensure(context.Background(), true); err != nil {
		t.Fatalf("Ensure(true): %v", err)
	}
	var requests, replies int
	deadline := time.Now().Add(5 * time.Second)
	for (requests < count || replies < count) && time.Now().Before(deadline) {
		_ = cl.SetReadDeadline(deadline)
		p, eth, err := cl.Read()
		if err != nil {
			break
		}
		if p.SenderIP != vip.Addr() || p.TargetIP != vip.Addr() || p.SenderHardwareAddr.String() != a.mac {
			continue
		}
		if eth.Destination.String() != "ff:ff:ff:ff:ff:ff" {
			t.Errorf("announcement sent to %s, want broadcast", eth.Destination)
		}
		switch p.Operation {
		case arp.OperationRequest:
			requests++
		case arp.OperationReply:
			replies++
			if p.TargetHardwareAddr.String() != a.mac {
				t.Errorf("reply target MAC %s, want the sender's %s", p.TargetHardwareAddr, a.mac)
			}
		}
	}
	if requests != count || replies != count {
		t.Fatalf("captured %d requests and %d replies, want %d of each", requests, replies, count)
	}
	if err := m.Ensure(context.Background(), false); err != nil {
		t.Fatalf("Ensure(false): %v", err)
	}
}

func TestAutoInterface(t *testing.T) {
	tp := newTopo(t, "i")
	a := tp.nodes["a"]
	dummy := "d" + pidTag
	// A second interface in A (veth pair inside A; the dummy module may be absent).
	ip(t, "-n", a.ns, "link", "add", dummy, "type", "veth", "peer", "name", "e"+pidTag)
	ip(t, "-n", a.ns, "addr", "add", "192.168.77.1/24", "dev", dummy)
	ip(t, "-n", a.ns, "link", "set", dummy, "up")
	ctx := context.Background()
	vip := tp.vip4()

	for _, tc := range []struct {
		iface, local, want string
	}{
		{"auto", a.ip4.String(), a.ifname},
		{"", a.ip6.String(), a.ifname},
		{"AUTO", "192.168.77.1", dummy},
	} {
		m := tp.manager(a, Config{Address: vip.String(), Interface: tc.iface, LocalIP: net.ParseIP(tc.local)})
		if err := m.Ensure(ctx, true); err != nil {
			t.Fatalf("interface %q local %s: Ensure(true): %v", tc.iface, tc.local, err)
		}
		if tp.count(a.ns, tc.want, vip) != 1 {
			t.Fatalf("interface %q local %s: VIP not on %s: %v", tc.iface, tc.local, tc.want, tp.addrs(a.ns, tc.want))
		}
		if err := m.Ensure(ctx, false); err != nil {
			t.Fatalf("Ensure(false): %v", err)
		}
		if tp.count(a.ns, tc.want, vip) != 0 {
			t.Fatalf("VIP left on %s", tc.want)
		}
	}

	m := tp.manager(a, Config{Address: vip.String(), LocalIP: net.ParseIP("192.168.78.9")})
	err := m.Ensure(ctx, true)
	if !errors.Is(err, ErrNoInterface) {
		t.Fatalf("local IP on no interface: Ensure(true) = %v, want interface not found", err)
	}
	t.Logf("local IP on no interface: %v", err)
	if err := m.Ensure(ctx, false); err != nil {
		t.Fatalf("Ensure(false) without interface = %v, want nil", err)
	}
	if _, err := m.Bound(ctx); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("Bound without interface = %v", err)
	}
}

// TestPrefixAndExternalChanges: the VIP is compared by address and prefix
// length, and a VIP removed behind the Manager's back is re-added and re-announced.
func TestPrefixAndExternalChanges(t *testing.T) {
	tp := newTopo(t, "p")
	a := tp.nodes["a"]
	vip := tp.vip4()
	ctx := context.Background()
	m := tp.manager(a, Config{Address: vip.String(), ARPInterval: 10 * time.Millisecond})

	host := netip.PrefixFrom(vip.Addr(), 32)
	ip(t, "-n", a.ns, "addr", "add", host.String(), "dev", a.ifname)
	if ok, err := m.Bound(ctx); ok || err != nil {
		t.Fatalf("with only %s present: Bound = %v, %v; want false", host, ok, err)
	}
	if err := m.Ensure(ctx, true); err != nil {
		t.Fatalf("Ensure(true): %v", err)
	}
	if tp.count(a.ns, a.ifname, vip) != 1 || tp.count(a.ns, a.ifname, host) != 1 {
		t.Fatalf("addresses: %v", tp.addrs(a.ns, a.ifname))
	}

	ip(t, "-n", a.ns, "addr", "del", vip.String(), "dev", a.ifname)
	if ok, err := m.Bound(ctx); ok || err != nil {
		t.Fatalf("after external removal: Bound = %v, %v", ok, err)
	}
	if err := m.Ensure(ctx, true); err != nil {
		t.Fatalf("Ensure(true) after external removal: %v", err)
	}
	if ok, err := m.Bound(ctx); !ok || err != nil {
		t.Fatalf("after re-adding: Bound = %v, %v", ok, err)
	}

	if err := m.Ensure(ctx, false); err != nil {
		t.Fatalf("Ensure(false): %v", err)
	}
	if tp.count(a.ns, a.ifname, vip) != 0 || tp.count(a.ns, a.ifname, host) != 1 {
		t.Fatalf("Ensure(false) must remove exactly %s: %v", vip, tp.addrs(a.ns, a.ifname))
	}
}

func TestMissingInterfaceAndClose(t *testing.T) {
	tp := newTopo(t, "x")
	a := tp.nodes["a"]
	ctx := context.Background()
	m := tp.manager(a, Config{Address: tp.vip4().String(), Interface: "nosuch0"})
	if err := m.Ensure(ctx, true); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("Ensure(true) on a missing interface = %v", err)
	}
	if err := m.Ensure(ctx, false); err != nil {
		t.Fatalf("Ensure(false) on a missing interface = %v, want nil", err)
	}

	// Close while repeats are running stops them (goleak in TestMain checks).
	m2 := tp.manager(a, Config{Address: tp.vip4().String(), ARPCount: 1000, ARPInterval: 5 * time.Millisecond})
	if err := m2.Ensure(ctx, true); err != nil {
		t.Fatalf("Ensure(true): %v", err)
	}
	if err := m2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m2.Ensure(ctx, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ensure after Close = %v, want ErrClosed", err)
	}
	if tp.count(a.ns, a.ifname, tp.vip4()) != 1 {
		t.Fatalf("Close must leave the address alone")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Ensure(cctx, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ensure with a cancelled context = %v", err)
	}
}
