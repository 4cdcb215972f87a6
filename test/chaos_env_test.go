//go:build integration

package test

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// chaosEnv is one scenario's world: a fresh topology (three etcd members,
// three pgnoded nodes and a client, each in its own namespace), the
// workload, a seeded random source for every choice the scenario makes, and
// the faults injected so far.
type chaosEnv struct {
	t    testing.TB
	name string
	seed uint64
	opts chaosOptions
	rng  *rand.Rand
	tp   *Topology
	c    *Cluster
	etcd []*EtcdMember
	w    *ChaosWorkload
	vip  *VIPChecker
	hc   *http.Client

	startLSN string
	faults   []*chaosFault
	notes    []string
}

// chaosFault is one injected fault and what it took to recover from it.
type chaosFault struct {
	What     string
	At       time.Time // injected
	HealedAt time.Time // fault removed (zero: permanent until the node was revived by the scenario)
	Healthy  time.Time // the cluster was whole again: one primary, every other node a healthy replica streaming from it
}

// chaosSeed is $PGNODED_CHAOS_SEED, or one drawn from the clock (logged, so a run can be repeated).
func chaosSeed() uint64 {
	if s, err := strconv.ParseUint(os.Getenv("PGNODED_CHAOS_SEED"), 10, 64); err == nil {
		return s
	}
	return uint64(time.Now().UnixNano())
}

// chaosOptions are the cluster settings of one scenario.
type chaosOptions struct {
	VIP      bool   // the vip section on
	Failsafe bool   // bootstrap.dcs.failsafe_mode
	Timing   Timing // zero: Fast
	Secure   bool   // restapi.authentication and HTTPS with client certificates (ClusterOptions.Secure)
	// Sync turns synchronous_mode on (nil: asynchronous). The cluster counts
	// as healthy only once the primary has a synchronous standby in /sync.
	Sync *nodeconf.Sync
	// Daemon runs the nodes (zero: pgnoded; Patroni 3.0.2 checks a scenario, without the VIP).
	Daemon Daemon
}

// String is the settings column of the table: "10/2/4 failsafe".
func (o chaosOptions) String() string {
	s := fmt.Sprintf("%d/%d/%d", o.Timing.TTL, o.Timing.LoopWait, o.Timing.RetryTimeout)
	if o.Failsafe {
		s += " failsafe"
	}
	if o.Secure {
		s += " auth+tls"
	}
	if o.Sync != nil {
		s += " sync"
		if o.Sync.Strict {
			s += " strict"
		}
	}
	if o.Daemon == DaemonPatroni {
		s += " (Patroni)"
	}
	return s
}

// ttl is the scenario's ttl as a duration.
func (o chaosOptions) ttl() time.Duration { return time.Duration(o.Timing.TTL) * time.Second }

// newChaosEnv boots the topology and the cluster, waits until it is healthy
// and starts the workload.
func newChaosEnv(t testing.TB, name string, seed uint64, opts chaosOptions) *chaosEnv {
	t.Helper()
	if opts.Timing == (Timing{}) {
		opts.Timing = Fast
	}
	if opts.Daemon == DaemonPatroni {
		opts.VIP = false // Patroni has no VIP of its own
	}
	vip := opts.VIP
	h := fnv.New64a()
	h.Write([]byte(name))
	e := &chaosEnv{t: t, name: name, seed: seed, opts: opts, rng: rand.New(rand.NewPCG(seed, h.Sum64()))}
	e.tp = NewTopology(t, TopologyOptions{Nodes: 3, Etcd: 3})
	e.etcd = e.tp.StartEtcd()
	co := ClusterOptions{Timing: opts.Timing, VIP: vip, Failsafe: opts.Failsafe, Secure: opts.Secure, Sync: opts.Sync, Daemon: opts.Daemon}
	if opts.Failsafe {
		co.PermanentSlot = fsPermanentSlot
	}
	e.c = e.tp.StartPGCluster(co)
	e.hc = e.tp.Client.HTTPClient(500 * time.Millisecond)
	e.tp.OnTeardown(e.hc.CloseIdleConnections)
	p := e.waitPrimary(bootTimeout, nil)
	e.waitHealthy(bootTimeout)
	e.startLSN = e.lsn(p)
	e.w = StartChaosWorkload(t, e.c, p)
	if vip {
		e.vip = StartVIPChecker(t, e.c)
	}
	e.w.WaitWrites(t, 30*time.Second, time.Now().Add(time.Second))
	t.Logf("%s: seed %d; %s; topology %s (subnet %s, etcd %s), settings %s, VIP %v; primary %s",
		name, seed, opts.Daemon, e.tp.Prefix(), e.tp.Subnet, e.tp.EtcdHosts(), opts, vip, p.Name)
	return e
}

// note adds a line to the scenario's report.
func (e *chaosEnv) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	e.notes = append(e.notes, s)
	e.t.Log(s)
}

// fault records a fault injected now.
func (e *chaosEnv) fault(format string, args ...any) *chaosFault {
	f := &chaosFault{What: fmt.Sprintf(format, args...), At: time.Now()}
	e.faults = append(e.faults, f)
	e.t.Logf("%s: fault: %s", f.At.Format("15:04:05.000"), f.What)
	return f
}

// heal marks f as removed now.
func (e *chaosEnv) heal(f *chaosFault) {
	f.HealedAt = time.Now()
	e.t.Logf("%s: healed: %s", f.HealedAt.Format("15:04:05.000"), f.What)
}

// hold waits a random time in [lo, hi): how long a fault lasts (the scenario's
// subject, not a synchronisation).
func (e *chaosEnv) hold(lo, hi time.Duration) time.Duration {
	d := lo
	if hi > lo {
		d += time.Duration(e.rng.Int64N(int64(hi - lo)))
	}
	time.Sleep(d)
	return d
}

// pick returns a random element of nodes.
func (e *chaosEnv) pick(nodes []*Node) *Node { return nodes[e.rng.IntN(len(nodes))] }

// checkAll asks every node's path at once; codes[i] is node i's answer (0: none).
func (e *chaosEnv) checkAll(path string) []int {
	codes := make([]int, len(e.c.Nodes))
	var wg sync.WaitGroup
	for i, n := range e.c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodOptions, n.url(path), nil)
			resp, err := e.hc.Do(req)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	return codes
}

// primary returns the single node answering 200 on /primary (nil if none or
// several: the workload records dual answers).
func (e *chaosEnv) primary() *Node {
	var found *Node
	for i, code := range e.checkAll("/primary") {
		if code == http.StatusOK {
			if found != nil {
				return nil
			}
			found = e.c.Nodes[i]
		}
	}
	return found
}

// waitPrimary waits for a single primary other than not.
func (e *chaosEnv) waitPrimary(timeout time.Duration, not *Node) *Node {
	e.t.Helper()
	var p *Node
	WaitFor(e.t, timeout, "one primary", func() bool {
		p = e.primary()
		return p != nil && p != not
	})
	return p
}

// healthy reports the primary when one node answers /primary and every other
// /replica with 200, and the primary streams WAL to every replica; in
// synchronous mode also when the /sync key names p and a standby that p's
// pg_stat_replication reports synchronous (before that, nobody may take over).
func (e *chaosEnv) healthy() *Node {
	prim, repl := e.checkAll("/primary"), e.checkAll("/replica")
	var p *Node
	for i, n := range e.c.Nodes {
		switch {
		case prim[i] == http.StatusOK && p == nil:
			p = n
		case repl[i] != http.StatusOK:
			return nil
		}
	}
	if p == nil {
		return nil
	}
	streaming, sync := e.streaming(p)
	if streaming < len(e.c.Nodes)-1 {
		return nil
	}
	if e.opts.Sync != nil && (sync == 0 || !e.syncKeyNames(p)) {
		return nil
	}
	return p
}

// streaming is the number of replicas streaming from p, and of those p
// counts as synchronous (pg_stat_replication).
func (e *chaosEnv) streaming(p *Node) (streaming, sync int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := e.c.ConnTo(ctx, p.NS.IP.String(), time.Second)
	if err != nil {
		return 0, 0
	}
	defer conn.Close(context.Background())
	if conn.QueryRow(ctx, `select count(*) filter (where state = 'streaming'),
		count(*) filter (where state = 'streaming' and sync_state in ('sync', 'quorum')) from pg_stat_replication`).Scan(&streaming, &sync) != nil {
		return 0, 0
	}
	return streaming, sync
}

// syncKeyNames reports whether the /sync key names p as leader and at least one standby.
func (e *chaosEnv) syncKeyNames(p *Node) bool {
	s, ok := e.c.SyncKey(context.Background())
	return ok && s.Leader == p.Name && len(s.Standbys()) > 0
}

// waitHealthy waits until the cluster is whole and returns its primary.
func (e *chaosEnv) waitHealthy(timeout time.Duration) *Node {
	e.t.Helper()
	var p *Node
	WaitFor(e.t, timeout, "one primary and healthy replicas on every other node", func() bool {
		p = e.healthy()
		return p != nil
	})
	return p
}

// recovered waits until the cluster is whole and writes flow through
// /primary again, and stamps f as healthy.
func (e *chaosEnv) recovered(f *chaosFault, timeout time.Duration) *Node {
	e.t.Helper()
	p := e.waitHealthy(timeout)
	from := f.At
	if !f.HealedAt.IsZero() {
		from = f.HealedAt
	}
	e.w.WaitWrites(e.t, timeout, from)
	f.Healthy = time.Now()
	return p
}

// leaseEndsNoEarlierThan reads the leader key's lease just before a fault:
// its holder and the earliest instant it can expire (etcd truncates the
// seconds left, so the lease lasts at least that long from before the read).
func (e *chaosEnv) leaseEndsNoEarlierThan() (holder string, at time.Time) {
	before := time.Now()
	holder, left := e.c.LeaderLease(context.Background())
	if left < 0 {
		e.t.Fatalf("cannot read the leader lease (key %q)", holder)
	}
	return holder, before.Add(time.Duration(left) * time.Second)
}

// lsn is the node's current WAL position ("" when it cannot be read).
func (e *chaosEnv) lsn(n *Node) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := n.Conn(ctx)
	if err != nil {
		return ""
	}
	defer conn.Close(context.Background())
	var s string
	if conn.QueryRow(ctx, "select pg_current_wal_lsn()::text").Scan(&s) != nil {
		return ""
	}
	return s
}

// walBytesPerRow estimates the WAL written per acknowledged row on the final
// primary p since the start (an upper estimate: it includes checkpoints and
// full-page images).
func (e *chaosEnv) walBytesPerRow(p *Node) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := p.Conn(ctx)
	if err != nil || e.startLSN == "" {
		return 0
	}
	defer conn.Close(context.Background())
	var bytes float64
	var rows int64
	err = conn.QueryRow(ctx, "select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8, (select count(*) from "+chaosTable+")",
		e.startLSN).Scan(&bytes, &rows)
	if err != nil || rows == 0 {
		return 0
	}
	return bytes / float64(rows)
}
