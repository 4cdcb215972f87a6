//go:build integration

package test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestNetnsTopology checks the harness itself, without pgnoded: isolation of
// the namespaces, dialling from the client namespace, a three-member etcd
// that survives one member being partitioned or killed, and healing.
func TestNetnsTopology(t *testing.T) {
	tp := NewTopology(t, TopologyOptions{Nodes: 2, Etcd: 3})
	ctx := context.Background()

	// Each namespace sees only lo and its own veth.
	out, err := tp.Nodes[0].Run(ctx, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 2 || !strings.Contains(out, tp.Nodes[0].Ifname) {
		t.Errorf("node namespace links = %d:\n%s", n, out)
	}

	// A listener in a node namespace is reachable from the client namespace
	// only. It greets with a banner: this host's network may accept any TCP
	// connection (a transparent proxy), so only the banner proves a path.
	banner := "pgt-" + tp.Tag
	var ln net.Listener
	if err := tp.Nodes[0].Do(func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(tp.Nodes[0].IP.String(), "7000"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // ends when ln is closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(banner))
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	greeted := func(c net.Conn) bool {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		b, _ := io.ReadAll(c)
		return string(b) == banner
	}
	dial := func() error {
		dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		c, err := tp.Client.DialContext(dctx, "tcp", addr)
		if err != nil {
			return err
		}
		if !greeted(c) {
			return errors.New("no banner")
		}
		return nil
	}
	if err := dial(); err != nil {
		t.Fatalf("client -> node: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil && greeted(c) {
		t.Errorf("the host reached %s: the namespaces are not isolated", addr)
	}
	tp.Partition(tp.Nodes[0], tp.Client)
	if err := dial(); err == nil {
		t.Errorf("client -> node passed through a partition")
	}
	tp.Heal(tp.Nodes[0])
	if err := dial(); err != nil {
		t.Errorf("client -> node after heal: %v", err)
	}
	tp.SetLink(tp.Nodes[0], false)
	if err := dial(); err == nil {
		t.Errorf("client -> node passed a link that is down")
	}
	tp.SetLink(tp.Nodes[0], true)

	// Three etcd members: quorum holds with one partitioned away, then with one killed.
	members := tp.StartEtcd()
	cli := tp.EtcdClient()
	put := func(what string) {
		t.Helper()
		WaitFor(t, 20*time.Second, what, func() bool {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := cli.Put(pctx, "/pgt/selftest", what)
			return err == nil
		})
	}
	put("write with three members")
	var leader *EtcdMember
	WaitFor(t, 10*time.Second, "an etcd leader", func() bool { leader = tp.EtcdLeader(cli); return leader != nil })
	t.Logf("etcd leader: %s", leader.Name)
	tp.PartitionGroups([]*NetNS{tp.Etcd[0]}, []*NetNS{tp.Etcd[1], tp.Etcd[2], tp.Client})
	put("write with e1 partitioned away")
	tp.HealAll()
	members[1].Kill()
	put("write with e2 killed")
	members[1].Restart()
	members[2].Kill()
	put("write with e2 back and e3 killed")
	if !members[0].Proc.Running() || !members[1].Proc.Running() {
		t.Errorf("etcd members exited: e1 %v, e2 %v", members[0].Proc.Running(), members[1].Proc.Running())
	}
}
