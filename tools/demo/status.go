package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NodeStatus is what the demo sees of one node at one moment.
type NodeStatus struct {
	Name          string
	PgnodedPID    int // 0 when pgnoded is not running
	PostmasterPID int // 0 when postgres is not running
	APIUp         bool
	Role          string // from GET /patroni
	State         string
	ReplState     string // replication_state of a replica ("streaming")
	Timeline      int
	Lag           string // from GET /cluster: "0 B", "12 kB", "unknown", "" for the leader
	VIP           bool   // the VIP is on this node's interface (netns mode)
}

// Snapshot is one refresh of the whole cluster.
type Snapshot struct {
	At     time.Time
	Nodes  []NodeStatus
	EtcdUp bool
	Leader string // the member named by the leader key; "" when there is none
}

// patroniDoc is the part of GET /patroni the view shows.
type patroniDoc struct {
	State     string          `json:"state"`
	Role      string          `json:"role"`
	ReplState string          `json:"replication_state"`
	Timeline  json.RawMessage `json:"timeline"`
}

// clusterDoc is the part of GET /cluster the view shows.
type clusterDoc struct {
	Members []struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		State    string `json:"state"`
		Timeline int    `json:"timeline"`
		Lag      any    `json:"lag"`
	} `json:"members"`
}

// collect takes a snapshot; every probe is bounded so a refresh never stalls.
func collect(ctx context.Context, c *netClient) Snapshot {
	s := c.s
	snap := Snapshot{At: time.Now(), Nodes: make([]NodeStatus, len(s.Nodes))}
	var wg sync.WaitGroup
	for i, n := range s.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snap.Nodes[i] = probeNode(ctx, c, n)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		code, _ := c.get(ctx, "http://"+s.EtcdAddr+"/health")
		snap.EtcdUp = code == 200
		snap.Leader, _ = c.etcdGet(ctx, s.LeaderKey())
	}()
	wg.Wait()
	// Lag comes from /cluster, as pgnodectl list shows it; ask the leader first.
	order := append([]NodeInfo{}, s.Nodes...)
	for i, n := range order {
		if n.Name == snap.Leader {
			order[0], order[i] = order[i], order[0]
		}
	}
	for _, n := range order {
		if !snap.node(n.Name).APIUp {
			continue
		}
		var doc clusterDoc
		if !c.getJSON(ctx, "http://"+n.APIAddr()+"/cluster", &doc) {
			continue
		}
		for _, m := range doc.Members {
			if ns := snap.node(m.Name); ns != nil && m.Lag != nil {
				ns.Lag = formatLag(m.Lag)
			}
		}
		break
	}
	return snap
}

func probeNode(ctx context.Context, c *netClient, n NodeInfo) NodeStatus {
	st := NodeStatus{Name: n.Name, PgnodedPID: pgnodedPID(n), PostmasterPID: postmasterPID(n.DataDir())}
	var doc patroniDoc
	if c.getJSON(ctx, "http://"+n.APIAddr()+"/patroni", &doc) {
		st.APIUp = true
		st.Role, st.State, st.ReplState = doc.Role, doc.State, doc.ReplState
		_ = json.Unmarshal(doc.Timeline, &st.Timeline)
	}
	if c.s.VIP != "" {
		st.VIP = vipOn(ctx, n.NS, c.s.VIP)
	}
	return st
}

// node returns the status of the named node, nil if unknown.
func (s *Snapshot) node(name string) *NodeStatus {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i]
		}
	}
	return nil
}

// isPrimaryRole reports a primary role name (Patroni 3 says "primary", older "master").
func isPrimaryRole(r string) bool { return r == "primary" || r == "master" }

// Primary is the member that holds the leader key and runs postgres as primary; "" if none.
func (s *Snapshot) Primary() string {
	if s.Leader == "" {
		return ""
	}
	n := s.node(s.Leader)
	if n == nil || !n.APIUp || !isPrimaryRole(n.Role) || n.State != "running" || n.PostmasterPID == 0 {
		return ""
	}
	return n.Name
}

// Streaming counts the replicas whose postgres streams from the primary.
func (s *Snapshot) Streaming() int {
	k := 0
	for _, n := range s.Nodes {
		if n.APIUp && !isPrimaryRole(n.Role) && n.ReplState == "streaming" {
			k++
		}
	}
	return k
}

// VIPHolders lists the nodes with the VIP on their interface.
func (s *Snapshot) VIPHolders() []string {
	var out []string
	for _, n := range s.Nodes {
		if n.VIP {
			out = append(out, n.Name)
		}
	}
	return out
}

// Healthy is one primary, every other node streaming, and (with a VIP) the VIP on the primary only.
func (s *Snapshot) Healthy(withVIP bool) bool {
	p := s.Primary()
	if p == "" || s.Streaming() != len(s.Nodes)-1 {
		return false
	}
	if withVIP {
		h := s.VIPHolders()
		return len(h) == 1 && h[0] == p
	}
	return true
}

// Summary is a one-line verdict on the cluster.
func (s *Snapshot) Summary(withVIP bool) string {
	switch {
	case !s.EtcdUp:
		return "etcd is not answering"
	case s.Healthy(withVIP):
		return fmt.Sprintf("healthy: primary %s, %d streaming replicas", s.Primary(), s.Streaming())
	case s.Leader == "":
		return "no leader key: the members race for it (after a crash, once the old key's TTL has run out)"
	case s.Primary() == "":
		return fmt.Sprintf("leader key held by %s, its postgres is not (yet) a running primary", s.Leader)
	default:
		h := s.VIPHolders()
		if withVIP && (len(h) != 1 || h[0] != s.Primary()) {
			msg := fmt.Sprintf("primary %s, %d streaming replicas, VIP on %s", s.Primary(), s.Streaming(), orNone(strings.Join(h, " and ")))
			for _, name := range h {
				if n := s.node(name); name != s.Primary() && n.PgnodedPID == 0 {
					msg += fmt.Sprintf(" (%s's pgnoded was killed and cannot remove it; it goes when %s's pgnoded starts again)", name, name)
				}
			}
			return msg
		}
		return fmt.Sprintf("primary %s, %d of %d replicas streaming", s.Primary(), s.Streaming(), len(s.Nodes)-1)
	}
}

// formatLag renders the lag field of /cluster: bytes or "unknown".
func formatLag(v any) string {
	switch x := v.(type) {
	case float64:
		return humanBytes(int64(x))
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

func humanBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return strconv.FormatInt(b, 10) + " B"
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
