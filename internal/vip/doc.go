// Package vip binds and releases the cluster's virtual IP on one local
// interface with netlink and announces it to the segment with gratuitous ARP
// (IPv4) or an unsolicited neighbour advertisement (IPv6).
//
// It holds no policy: the HA loop decides when the address should be bound
// and calls Manager.Ensure; Manager implements ha.VIP.
package vip
