package main

import (
	"fmt"
	"strings"
)

// inClient prefixes a command so it runs in the client namespace (netns mode).
func inClient(s *State, cmd string) string {
	if s.ClientNS == "" {
		return cmd
	}
	return "ip netns exec " + s.ClientNS + " " + cmd
}

// psqlCmd is the command that connects psql to host:port.
func psqlCmd(s *State, host string, port int) string {
	cmd := fmt.Sprintf("env PGPASSWORD=%s psql -h %s", s.Password, host)
	if port != 5432 {
		cmd += fmt.Sprintf(" -p %d", port)
	}
	return inClient(s, cmd+" -U "+superuser+" postgres")
}

// ctlCmd is a pgnodectl command line against the demo cluster.
func ctlCmd(s *State, args string) string {
	return inClient(s, fmt.Sprintf("%s -c %s %s", rel(s.Bins.Pgnodectl), rel(s.Nodes[0].Config()), args))
}

// instructions tells how to connect and how to make the cluster fail over, for the current snapshot.
func instructions(s *State, snap Snapshot) string {
	var b strings.Builder
	demo := rel(s.Bins.Demo)
	b.WriteString("connect (from another terminal, as root):\n")
	if s.VIP != "" {
		fmt.Fprintf(&b, "  via VIP   %s\n", psqlCmd(s, s.VIP, 5432))
	} else {
		b.WriteString("  (loopback mode has no VIP: connect to the primary's port)\n")
	}
	for _, n := range s.Nodes {
		fmt.Fprintf(&b, "  %-9s %s\n", n.Name, psqlCmd(s, n.IP, n.PGPort))
	}
	fmt.Fprintf(&b, "  members   %s\n", ctlCmd(s, "list"))
	b.WriteString("failover (a crash: kill -9 of the primary's pgnoded and postmaster; a replica takes over when the leader key expires):\n")
	fmt.Fprintf(&b, "  %s kill-primary", demo)
	if p := snap.Leader; p != "" {
		n := snap.node(p)
		info, _ := s.Node(p)
		if n != nil && n.PgnodedPID != 0 {
			fmt.Fprintf(&b, "    (= kill -9 %d %s: %s's pgnoded and postmaster)", n.PgnodedPID, postmasterRef(n.PostmasterPID, info), p)
		}
	}
	b.WriteString("\n")
	var down []string
	for _, n := range snap.Nodes {
		if n.PgnodedPID == 0 && n.Name != "" {
			down = append(down, n.Name)
		}
	}
	if len(down) > 0 {
		fmt.Fprintf(&b, "  bring %s back (it rejoins as a replica, with pg_rewind): %s start %s\n", down[0], demo, down[0])
	} else {
		fmt.Fprintf(&b, "  afterwards bring the old primary back with: %s start NODE\n", demo)
	}
	b.WriteString("switchover (planned: the primary hands over to a streaming replica):\n")
	cand := ""
	for _, n := range snap.Nodes {
		if n.Name != snap.Leader && n.ReplState == "streaming" {
			cand = n.Name
			break
		}
	}
	if cand == "" {
		cand = "n2"
	}
	fmt.Fprintf(&b, "  %s\n", ctlCmd(s, "switchover --candidate "+cand+" --force"))
	fmt.Fprintf(&b, "logs: %s/n{1,2,3}/pgnoded.log\n", s.WorkDir)
	return b.String()
}

// postmasterRef is the postmaster's pid, or how to read it when postgres is down now.
func postmasterRef(pid int, n NodeInfo) string {
	if pid != 0 {
		return fmt.Sprint(pid)
	}
	return fmt.Sprintf("$(head -1 %s/postmaster.pid)", n.DataDir())
}
