package vip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Defaults for Config.
const (
	// DefaultARPCount is how many announcements are sent after binding.
	DefaultARPCount = 5
	// DefaultARPInterval is the pause between two announcements.
	DefaultARPInterval = time.Second
)

// InterfaceAuto selects the interface that holds Config.LocalIP.
const InterfaceAuto = "auto"

// Config describes one VIP.
type Config struct {
	// Address is the VIP with its prefix length, IPv4 or IPv6 ("10.10.10.2/24"); required.
	Address string
	// Interface is the interface to bind on; "" or InterfaceAuto means the one holding LocalIP.
	Interface string
	// LocalIP is this node's own address (postgresql.connect_address); used by the auto interface.
	LocalIP net.IP
	// ARPCount is the number of announcements after binding (first one immediately); default DefaultARPCount.
	ARPCount int
	// ARPInterval is the pause between announcements; default DefaultARPInterval.
	ARPInterval time.Duration
	// NetnsPath, when set, makes the Manager work in that network namespace (e.g. /run/netns/x); for tests.
	NetnsPath string
	// Logger receives the Manager's logs; nil discards them.
	Logger *slog.Logger
}

// auto reports whether the interface is chosen by LocalIP.
func (c *Config) auto() bool {
	return c.Interface == "" || strings.EqualFold(c.Interface, InterfaceAuto)
}

// validate checks c, fills defaults and returns the parsed address.
func (c *Config) validate() (netip.Prefix, error) {
	if c.Address == "" {
		return netip.Prefix{}, errors.New("vip: address is required")
	}
	if !strings.Contains(c.Address, "/") {
		return netip.Prefix{}, fmt.Errorf("vip: address %q has no prefix length; want CIDR such as 10.10.10.2/24", c.Address)
	}
	p, err := netip.ParsePrefix(c.Address)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("vip: address %q is not a CIDR such as 10.10.10.2/24: %w", c.Address, err)
	}
	a := p.Addr()
	if a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("vip: address %s is IPv4-mapped; write the IPv4 form", p)
	}
	if !a.IsGlobalUnicast() || (a.Is6() && a.IsLinkLocalUnicast()) {
		return netip.Prefix{}, fmt.Errorf("vip: address %s is not a unicast address usable as a VIP", p)
	}
	if c.auto() {
		if c.LocalIP == nil || c.LocalIP.IsUnspecified() {
			return netip.Prefix{}, errors.New("vip: interface auto needs the node's local IP (postgresql.connect_address)")
		}
	} else if len(c.Interface) > 15 {
		return netip.Prefix{}, fmt.Errorf("vip: interface name %q is longer than 15 characters", c.Interface)
	}
	switch {
	case c.ARPCount < 0:
		return netip.Prefix{}, fmt.Errorf("vip: ARP count %d is negative", c.ARPCount)
	case c.ARPCount == 0:
		c.ARPCount = DefaultARPCount
	}
	switch {
	case c.ARPInterval < 0:
		return netip.Prefix{}, fmt.Errorf("vip: ARP interval %s is negative", c.ARPInterval)
	case c.ARPInterval == 0:
		c.ARPInterval = DefaultARPInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return p, nil
}
