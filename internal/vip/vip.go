package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netlinkTimeout bounds every netlink request (they do not take a context).
const netlinkTimeout = 5 * time.Second

// ErrAnnounce marks an Ensure(true) whose address is bound but whose
// gratuitous ARP/NA could not be sent; the next Ensure(true) tries again.
var ErrAnnounce = errors.New("vip: bound but not announced")

// ErrClosed is returned by a Manager after Close.
var ErrClosed = errors.New("vip: manager closed")

// ErrNoInterface means the configured interface (or one holding LocalIP) does not exist now.
var ErrNoInterface = errors.New("interface not found")

// Manager binds and releases one VIP on one interface. Its methods are safe
// for concurrent use; Ensure calls are serialised.
type Manager struct {
	cfg    Config
	prefix netip.Prefix
	log    *slog.Logger

	ns     netns.NsHandle // open only with Config.NetnsPath
	handle *netlink.Handle

	mu        sync.Mutex
	announced bool       // the current binding has been announced at least once
	ann       *announcer // repeats still running, or nil
	closed    bool
}

// New validates cfg and opens a netlink handle (in cfg.NetnsPath if set).
func New(cfg Config) (*Manager, error) {
	p, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, prefix: p, ns: netns.None(),
		log: cfg.Logger.With("vip", p.String())}
	if cfg.NetnsPath != "" {
		m.ns, err = netns.GetFromPath(cfg.NetnsPath)
		if err != nil {
			return nil, fmt.Errorf("vip: open network namespace %s: %w", cfg.NetnsPath, err)
		}
	}
	m.handle, err = netlink.NewHandleAt(m.ns, unix.NETLINK_ROUTE)
	if err == nil {
		err = m.handle.SetSocketTimeout(netlinkTimeout)
	}
	if err != nil {
		if m.handle != nil {
			m.handle.Close()
		}
		m.closeNS()
		return nil, fmt.Errorf("vip: open netlink: %w", err)
	}
	return m, nil
}

// Release takes address (a CIDR) off this node: off iface, or off the link
// holding localIP when iface is "". The fence guard's OnFence, in both
// binaries that run the guard, is this call.
func Release(ctx context.Context, address, iface, localIP string) error {
	m, err := New(Config{Address: address, Interface: iface, LocalIP: net.ParseIP(localIP)})
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Ensure(ctx, false)
}

// Address returns the VIP with its prefix length.
func (m *Manager) Address() netip.Prefix { return m.prefix }

// Ensure makes the address present (bound) or absent on the interface,
// idempotently. A transition to bound (or a binding not yet announced) sends
// the first gratuitous ARP/NA before returning and the remaining ARPCount-1
// in the background; Ensure(false) stops them before removing the address.
// Removing an address from an interface that does not exist succeeds.
func (m *Manager) Ensure(ctx context.Context, bound bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vip: ensure: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if bound {
		return m.bind()
	}
	return m.release()
}

// Bound reports whether the address is currently on the interface.
func (m *Manager) Bound(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("vip: bound: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, ErrClosed
	}
	link, err := m.link()
	if err != nil {
		return false, err
	}
	return m.present(link)
}

// Close stops any running announcement and releases the netlink handle. It
// leaves the address as it is: the caller releases it first when it should go.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.stopAnnounce()
	m.handle.Close()
	m.closeNS()
	return nil
}

func (m *Manager) closeNS() {
	if m.ns.IsOpen() {
		_ = m.ns.Close()
		m.ns = netns.None()
	}
}

// bind adds the address if needed and announces it; m.mu is held.
func (m *Manager) bind() error {
	link, err := m.link()
	if err != nil {
		return err
	}
	name := link.Attrs().Name
	present, err := m.present(link)
	if err != nil {
		return err
	}
	added := false
	if !present {
		// Someone removed it: stop any repeats before re-adding.
		m.stopAnnounce()
		m.announced = false
		err := m.handle.AddrAdd(link, m.netlinkAddr())
		switch {
		case errors.Is(err, syscall.EEXIST):
		case err != nil:
			return fmt.Errorf("vip: add %s to %s: %w", m.prefix, name, explainPerm(err, capNetAdmin))
		default:
			added = true
			m.log.Info("vip: address added", "interface", name)
		}
	}
	if !added && m.announced {
		return nil
	}
	m.stopAnnounce()
	m.announced = false
	if err := m.announce(link); err != nil {
		return fmt.Errorf("%w: %s on %s: %w", ErrAnnounce, m.prefix, name, err)
	}
	m.announced = true
	return nil
}

// release stops announcing and removes the address if present; m.mu is held.
func (m *Manager) release() error {
	m.stopAnnounce()
	m.announced = false
	link, err := m.link()
	if errors.Is(err, ErrNoInterface) {
		m.log.Debug("vip: interface absent, nothing to release", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	present, err := m.present(link)
	if err != nil || !present {
		return err
	}
	name := link.Attrs().Name
	err = m.handle.AddrDel(link, m.netlinkAddr())
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.ESRCH), errors.Is(err, syscall.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("vip: remove %s from %s: %w", m.prefix, name, explainPerm(err, capNetAdmin))
	}
	m.log.Info("vip: address removed", "interface", name)
	return nil
}

// netlinkAddr is the plain, label-less address to add or delete.
func (m *Manager) netlinkAddr() *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   m.prefix.Addr().AsSlice(),
		Mask: net.CIDRMask(m.prefix.Bits(), m.prefix.Addr().BitLen()),
	}}
	if m.prefix.Addr().Is6() {
		// Usable at once: duplicate address detection would keep it
		// tentative for a second or more, and the previous holder has
		// already released it.
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// family is the netlink address family of the VIP.
func (m *Manager) family() int {
	if m.prefix.Addr().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// present reports whether link holds the VIP with the configured prefix length.
func (m *Manager) present(link netlink.Link) (bool, error) {
	addrs, err := m.addrList(link, m.family())
	if err != nil {
		return false, fmt.Errorf("vip: list addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		if p, ok := toPrefix(a.IPNet); ok && p == m.prefix {
			return true, nil
		}
	}
	return false, nil
}

// addrList lists addresses, retrying a dump the kernel interrupted.
func (m *Manager) addrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	var err error
	for range 3 {
		var addrs []netlink.Addr
		addrs, err = m.handle.AddrList(link, family)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return addrs, err
		}
	}
	return nil, err
}

// link resolves the configured interface (by name, or the one holding LocalIP).
func (m *Manager) link() (netlink.Link, error) {
	if !m.cfg.auto() {
		l, err := m.handle.LinkByName(m.cfg.Interface)
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil, fmt.Errorf("vip: interface %s: %w", m.cfg.Interface, ErrNoInterface)
		}
		if err != nil {
			return nil, fmt.Errorf("vip: interface %s: %w", m.cfg.Interface, err)
		}
		return l, nil
	}
	addrs, err := m.addrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("vip: list addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IPNet == nil || !a.IP.Equal(m.cfg.LocalIP) {
			continue
		}
		l, err := m.handle.LinkByIndex(a.LinkIndex)
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("vip: interface holding %s: %w", m.cfg.LocalIP, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("vip: interface holding local IP %s: %w", m.cfg.LocalIP, ErrNoInterface)
}

// toPrefix converts a netlink address to a prefix (IP and mask length).
func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a.Unmap(), ones), true
}
