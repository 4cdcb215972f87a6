//go:build integration

package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// vipCheckInterval is how often the VIP checker samples.
const vipCheckInterval = 50 * time.Millisecond

// VIPChecker watches where a cluster's VIP is bound, from outside pgnoded:
//   - every round it reads, with netlink, the VIP and the link state of every
//     node's interface, and records a violation when two nodes with a live
//     link hold the VIP in the same round;
//   - per node it samples postgres (pg_is_in_recovery() over a kept
//     connection) and the /patroni role just before and just after reading
//     the VIP, and records a violation when the node holds the VIP while both
//     samples say it is not a primary. A postgres that does not answer is
//     "unknown", not "not a primary": a primary whose postmaster just crashed
//     keeps the VIP while pgnoded restarts it.
//
// An address left on the interface of a node whose link is down (a crashed
// machine, see Node.Crash) is not on the network and is counted apart.
type VIPChecker struct {
	c      *Cluster
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	rep    VIPReport
	held   map[string]bool
	events []VIPEvent
}

// VIPViolation is one sample that broke a VIP rule.
type VIPViolation struct {
	At     time.Time
	Node   string
	Detail string
}

func (v VIPViolation) String() string {
	return fmt.Sprintf("%s %s: %s", v.At.Format("15:04:05.000"), v.Node, v.Detail)
}

// VIPEvent is a change of whether a node's interface holds the VIP.
type VIPEvent struct {
	At   time.Time
	Node string
	Held bool
}

// VIPReport is what a VIPChecker saw.
type VIPReport struct {
	// Rounds is the number of all-node VIP rounds; NodeSamples the per-node role+VIP samples.
	Rounds, NodeSamples int
	// Dual are the rounds in which two nodes with a live link held the VIP.
	Dual []VIPViolation
	// OnReplicaSQL are samples of the VIP on a node whose postgres said pg_is_in_recovery() before and after.
	OnReplicaSQL []VIPViolation
	// OnReplicaREST are samples of the VIP on a node whose /patroni role was not primary before and after.
	OnReplicaREST []VIPViolation
	// OnDownLink counts round samples of the VIP configured on a node whose link was down.
	OnDownLink int
	// Errors counts samples that could not be read (netlink).
	Errors int
}

// Violations is the number of broken-rule samples of any kind.
func (r VIPReport) Violations() int { return len(r.Dual) + len(r.OnReplicaSQL) + len(r.OnReplicaREST) }

func (r VIPReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d rounds, %d node samples, %d on two nodes, %d on a replica (SQL), %d on a non-primary (REST), %d on a down link, %d read errors",
		r.Rounds, r.NodeSamples, len(r.Dual), len(r.OnReplicaSQL), len(r.OnReplicaREST), r.OnDownLink, r.Errors)
	for _, l := range [][]VIPViolation{r.Dual, r.OnReplicaSQL, r.OnReplicaREST} {
		for i, v := range l {
			if i == 5 {
				fmt.Fprintf(&b, "\n  ... %d more", len(l)-5)
				break
			}
			fmt.Fprintf(&b, "\n  %s", v)
		}
	}
	return b.String()
}

// StartVIPChecker begins sampling; Stop returns the report.
func StartVIPChecker(t testing.TB, c *Cluster) *VIPChecker {
	ctx, cancel := context.WithCancel(context.Background())
	v := &VIPChecker{c: c, cancel: cancel, held: map[string]bool{}}
	v.wg.Add(1)
	go func() { defer v.wg.Done(); v.rounds(ctx) }()
	for _, n := range c.Nodes {
		v.wg.Add(1)
		go func() { defer v.wg.Done(); v.sampleNode(ctx, n) }()
	}
	t.Cleanup(func() { v.Stop() })
	return v
}

// Stop ends sampling (idempotent) and returns the report.
func (v *VIPChecker) Stop() VIPReport {
	v.cancel()
	v.wg.Wait()
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rep
}

// Report returns the findings so far.
func (v *VIPChecker) Report() VIPReport {
	v.mu.Lock()
	defer v.mu.Unlock()
	r := v.rep
	r.Dual = append([]VIPViolation(nil), r.Dual...)
	r.OnReplicaSQL = append([]VIPViolation(nil), r.OnReplicaSQL...)
	r.OnReplicaREST = append([]VIPViolation(nil), r.OnReplicaREST...)
	return r
}

// FirstHeld is the first time after `after` the checker saw node take the VIP.
func (v *VIPChecker) FirstHeld(node string, after time.Time) (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.events {
		if e.Node == node && e.Held && e.At.After(after) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// Events returns every VIP change seen, in order.
func (v *VIPChecker) Events() []VIPEvent {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]VIPEvent(nil), v.events...)
}

// rounds reads every node's VIP and link state each interval.
func (v *VIPChecker) rounds(ctx context.Context) {
	everyTick(ctx, vipCheckInterval, func() {
		at := time.Now()
		var live []string
		downHeld, errs := 0, 0
		held := map[string]bool{}
		for _, n := range v.c.Nodes {
			has, err := n.HasVIP()
			up, err2 := n.NS.LinkUp()
			if err != nil || err2 != nil {
				errs++
				continue
			}
			held[n.Name] = has
			switch {
			case has && up:
				live = append(live, n.Name)
			case has:
				downHeld++
			}
		}
		v.mu.Lock()
		v.rep.Rounds++
		v.rep.Errors += errs
		v.rep.OnDownLink += downHeld
		if len(live) > 1 {
			v.rep.Dual = append(v.rep.Dual, VIPViolation{At: at, Node: strings.Join(live, "+"), Detail: "VIP on two nodes with live links"})
		}
		for name, h := range held {
			if v.held[name] != h {
				v.events = append(v.events, VIPEvent{At: at, Node: name, Held: h})
				v.held[name] = h
			}
		}
		v.mu.Unlock()
	})
}

// sampleNode checks, for one node, the VIP against its postgres and REST role.
func (v *VIPChecker) sampleNode(ctx context.Context, n *Node) {
	hc := n.c.Topo.Client.HTTPClient(400 * time.Millisecond)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
		hc.CloseIdleConnections()
	}()
	sql := func() string {
		if conn == nil {
			conn, _ = n.c.ConnTo(ctx, n.NS.IP.String(), 400*time.Millisecond)
			if conn == nil {
				return ""
			}
		}
		qctx, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
		defer cancel()
		var rec bool
		if err := conn.QueryRow(qctx, "select pg_is_in_recovery()").Scan(&rec); err != nil {
			conn.Close(context.Background())
			conn = nil
			return ""
		}
		if rec {
			return "replica"
		}
		return "primary"
	}
	everyTick(ctx, vipCheckInterval, func() {
		sqlBefore, restBefore := sql(), n.Role(hc)
		at := time.Now()
		has, err := n.HasVIP()
		up, err2 := n.NS.LinkUp()
		sqlAfter, restAfter := sql(), n.Role(hc)
		if ctx.Err() != nil {
			return
		}
		v.mu.Lock()
		v.rep.NodeSamples++
		if err == nil && err2 == nil && has && up {
			if sqlBefore == "replica" && sqlAfter == "replica" {
				v.rep.OnReplicaSQL = append(v.rep.OnReplicaSQL, VIPViolation{At: at, Node: n.Name,
					Detail: "VIP bound while pg_is_in_recovery() = true"})
			}
			if notPrimaryRole(restBefore) && notPrimaryRole(restAfter) {
				v.rep.OnReplicaREST = append(v.rep.OnReplicaREST, VIPViolation{At: at, Node: n.Name,
					Detail: fmt.Sprintf("VIP bound while /patroni role = %s, then %s", restBefore, restAfter)})
			}
		}
		v.mu.Unlock()
	})
}

// notPrimaryRole is true for a known /patroni role other than the primary's.
func notPrimaryRole(role string) bool {
	return role != "" && role != "master" && role != "primary"
}
