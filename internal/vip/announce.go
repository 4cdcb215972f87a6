package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// writeTimeout bounds one announcement write.
const writeTimeout = time.Second

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zeroMAC      = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	allNodes     = netip.MustParseAddr("ff02::1")
)

// sender sends one announcement of the VIP.
type sender interface {
	send() error
	close() error
}

// announcer is the goroutine repeating announcements after the first.
type announcer struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// announce sends the first announcement now and starts the repeats; m.mu is held.
func (m *Manager) announce(link netlink.Link) error {
	attrs := link.Attrs()
	if attrs.Flags&net.FlagLoopback != 0 || len(attrs.HardwareAddr) != 6 {
		m.log.Info("vip: interface has no Ethernet address, not announcing", "interface", attrs.Name)
		return nil
	}
	ifi := &net.Interface{Index: attrs.Index, MTU: attrs.MTU, Name: attrs.Name,
		HardwareAddr: attrs.HardwareAddr, Flags: attrs.Flags}
	var s sender
	err := m.inNetns(func() error {
		var err error
		s, err = m.openSender(ifi)
		return err
	})
	if err != nil {
		return err
	}
	if err := s.send(); err != nil {
		_ = s.close()
		return err
	}
	m.log.Info("vip: announced", "interface", attrs.Name, "mac", attrs.HardwareAddr.String(),
		"repeats", m.cfg.ARPCount-1, "interval", m.cfg.ARPInterval)
	if m.cfg.ARPCount <= 1 {
		return s.close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &announcer{cancel: cancel, done: make(chan struct{})}
	m.ann = a
	go func() {
		defer close(a.done)
		defer func() { _ = s.close() }()
		m.repeat(ctx, s, attrs.Name)
	}()
	return nil
}

// repeat sends the remaining ARPCount-1 announcements, one per ARPInterval.
func (m *Manager) repeat(ctx context.Context, s sender, ifname string) {
	t := time.NewTicker(m.cfg.ARPInterval)
	defer t.Stop()
	for i := 1; i < m.cfg.ARPCount; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.send(); err != nil {
			m.log.Warn("vip: announcement failed", "interface", ifname, "err", err)
		}
	}
}

// stopAnnounce cancels the repeats and waits for them; m.mu is held.
func (m *Manager) stopAnnounce() {
	if m.ann == nil {
		return
	}
	m.ann.cancel()
	<-m.ann.done
	m.ann = nil
}

// openSender opens the raw socket for the VIP's family on ifi.
func (m *Manager) openSender(ifi *net.Interface) (sender, error) {
	vip := m.prefix.Addr()
	if vip.Is4() {
		c, err := arp.Dial(ifi)
		if err != nil {
			return nil, fmt.Errorf("open ARP socket on %s: %w", ifi.Name, explainPerm(err, capNetRaw))
		}
		return &arpSender{c: c, mac: ifi.HardwareAddr, ip: vip}, nil
	}
	// Bound to the VIP itself, as Linux does for its own unsolicited
	// advertisements: it is never tentative (added with NODAD), unlike a
	// link-local address on an interface that just came up.
	c, _, err := ndp.Listen(ifi, ndp.Addr(vip.String()))
	if err != nil {
		return nil, fmt.Errorf("open ICMPv6 socket on %s: %w", ifi.Name, explainPerm(err, capNetRaw))
	}
	return &naSender{c: c, mac: ifi.HardwareAddr, ip: vip}, nil
}

// inNetns runs fn in the Manager's network namespace (or directly without one).
// fn runs on a goroutine locked to its thread and never unlocked, so the
// thread, switched into the namespace, is discarded when the goroutine ends.
// Sockets fn opens stay in the namespace they were created in.
func (m *Manager) inNetns(fn func() error) error {
	if !m.ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(m.ns); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", m.cfg.NetnsPath, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// arpSender sends a broadcast gratuitous ARP request and reply, because
// switches and hosts differ in which one they honour.
type arpSender struct {
	c   *arp.Client
	mac net.HardwareAddr
	ip  netip.Addr
}

func (s *arpSender) send() error {
	// RFC 5227 announcement: a request with sender = target = VIP.
	req, err := arp.NewPacket(arp.OperationRequest, s.mac, s.ip, zeroMAC, s.ip)
	if err != nil {
		return fmt.Errorf("build ARP request: %w", err)
	}
	// Reply form: Linux only treats a reply as gratuitous when the target
	// hardware address equals the sender's.
	rep, err := arp.NewPacket(arp.OperationReply, s.mac, s.ip, s.mac, s.ip)
	if err != nil {
		return fmt.Errorf("build ARP reply: %w", err)
	}
	if err := s.c.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("ARP write deadline: %w", err)
	}
	return errors.Join(wrapSend("ARP request", s.c.WriteTo(req, broadcastMAC)),
		wrapSend("ARP reply", s.c.WriteTo(rep, broadcastMAC)))
}

func (s *arpSender) close() error { return s.c.Close() }

// naSender sends an unsolicited neighbour advertisement (override set) to all nodes.
type naSender struct {
	c   *ndp.Conn
	mac net.HardwareAddr
	ip  netip.Addr
}

func (s *naSender) send() error {
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: s.ip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      s.mac,
		}},
	}
	if err := s.c.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("NA write deadline: %w", err)
	}
	return wrapSend("neighbour advertisement", s.c.WriteTo(na, nil, allNodes))
}

func (s *naSender) close() error { return s.c.Close() }

func wrapSend(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("send %s: %w", what, err)
}
