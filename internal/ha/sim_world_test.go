package ha

import (
	"bytes"
	"context"
	"fmt"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// world is the simulated cluster: a fake etcd (keys and leases), one fake
// postgres, fence and VIP per node, real Nodes running their real loops on a
// fake clock. Time moves only in step; after each step the test waits until
// every node has handled every event (busyCounter), so runs are repeatable.
type world struct {
	t     *testing.T
	mu    sync.Mutex
	clock *fakeClock
	busy  *busyCounter
	logs  *syncBuffer
	// sent counts events handed to a loop from outside (Wake, operator
	// requests); sentSig is signalled (without blocking) after each.
	sent    atomic.Int64
	sentSig chan struct{}

	rev        int64
	leader     *fakeLeader
	members    map[string]cluster.Member
	initialize *string
	configRaw  []byte
	configRev  int64
	failover   *cluster.Failover
	sync       *cluster.SyncState // ModRevision set on every write
	failSync   map[string]int     // the next n sync-key writes of a node fail their compare
	syncMode   bool               // the scenario runs synchronous_mode: promotions must follow the sync key
	compat     cluster.Compat     // the nodes' pgnoded.compat ("" = 3.0.2)
	quorum     bool               // synchronous_mode: quorum: the key may list voters the GUC no longer names
	history    []cluster.HistoryEntry
	status     *cluster.StatusKey
	failsafe   map[string]string
	leases     map[int64]*fakeLease
	nextLease  int64
	nextSysID  int

	nodes      map[string]*simNode
	names      []string
	pollOnly   bool // hide Renewed(): the loop must poll LeaseValidUntil
	loopWait   int  // bootstrap.dcs loop_wait (default 1)
	ttl        int  // bootstrap.dcs ttl (default 3)
	retry      int  // bootstrap.dcs retry_timeout (default 1)
	violations []string
	promotions []promotion
	rewinds    int
	archived   []string // node:segment of every ArchiveShutdownCheckpoint, in order

	hookCalls       []string        // "<node> <callback> <role>" and "<node> pre_promote|before_stop", in order
	prePromote      map[string]bool // nodes with a pre_promote; true: it exits 1
	beforeStopNodes bool            // every node has a before_stop
}

type fakeLeader struct {
	name  string
	lease int64
}

type fakeLease struct {
	owner   string
	expires time.Time
}

type promotion struct {
	name string
	at   time.Time
}

type simNode struct {
	name  string
	pg    *fakePG
	fence *fakeFence
	vip   *fakeVIP
	store *fakeStore
	node  *Node

	cancel      context.CancelFunc
	done        chan error
	live        bool // its HA loop runs
	frozen      bool // no keepalives: pgnoded stopped, frozen or dead
	partitioned bool // cut off from the DCS (its own postgres and API still work)
	apiDown     bool
}

const (
	simStep    = 50 * time.Millisecond
	renewEvery = 500 * time.Millisecond
)

func newWorld(t *testing.T, names ...string) *world {
	busy := &busyCounter{}
	w := &world{t: t, clock: newFakeClock(t0, busy), busy: busy, logs: &syncBuffer{}, sentSig: make(chan struct{}, 1),
		members: map[string]cluster.Member{}, leases: map[int64]*fakeLease{}, nodes: map[string]*simNode{}, names: names}
	for _, name := range names {
		w.nodes[name] = &simNode{name: name, pg: newFakePG(w, name), fence: &fakeFence{w: w}, vip: &fakeVIP{w: w}}
	}
	t.Cleanup(func() {
		for _, name := range names {
			w.stop(name)
		}
		if t.Failed() || os.Getenv("PGNODED_SIM_LOG") != "" {
			t.Logf("simulation log:\n%s", w.logs.String())
		}
	})
	return w
}

func (w *world) lockFn() func() { w.mu.Lock(); return w.mu.Unlock }

// start runs pgnoded (a new session with a new lease) on the nodes, all at
// once, and waits until their first cycles are done.
func (w *world) start(names ...string) {
	for _, name := range names {
		w.launch(name)
	}
	w.busy.settle(w.t)
}

func (w *world) launch(name string) {
	sn := w.nodes[name]
	w.mu.Lock()
	sn.store = newFakeStore(w, name)
	sn.frozen, sn.apiDown, sn.live = false, false, true
	w.mu.Unlock()
	logger := slog.New(simHandler{slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelInfo,
		ReplaceAttr: dropTime}), w.clock})
	n := New(Config{
		Name: name, Scope: "sim", APIURL: "http://" + name + ":8008/patroni", ConnURL: "postgres://" + name + ":5432/postgres",
		BootstrapDCS: map[string]any{"ttl": max(w.ttl, 3), "loop_wait": max(w.loopWait, 1), "retry_timeout": max(w.retry, 1),
			"postgresql": map[string]any{"use_pg_rewind": true, "use_slots": true}},
		HasBootstrap: true,
		Credentials: Credentials{Superuser: Credential{Username: "postgres", Password: "su"},
			Replication: Credential{Username: "replicator", Password: "rep"}},
		Now: w.clock.Now, Logger: logger, Compat: w.compat,
	}, Deps{Postgres: sn.pg, Store: w.storeFor(sn), VIP: sn.vip, Peers: &fakePeers{w: w}, Fence: sn.fence,
		Hooks: &simHooks{w: w, name: name}})
	n.clock = w.clock
	n.hooks = testHooks{longStarted: w.busy.inc, longFinished: w.busy.dec, eventDone: w.busy.dec,
		eventSent: w.eventSent, eventUnsent: w.busy.dec}
	ctx, cancel := context.WithCancel(context.Background())
	sn.node, sn.cancel, sn.done = n, cancel, make(chan error, 1)
	w.busy.inc() // the first cycle
	go func() { sn.done <- n.Run(ctx) }()
}

// pollOnlyStore hides the RenewalNotifier extension of the fake store.
type pollOnlyStore struct{ Store }

func (w *world) storeFor(sn *simNode) Store {
	if w.pollOnly {
		return pollOnlyStore{sn.store}
	}
	return sn.store
}

// simHandler stamps log records with the simulated time since t0.
type simHandler struct {
	slog.Handler
	c *fakeClock
}

func (h simHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(slog.Duration("sim_t", h.c.Now().Sub(t0)))
	return h.Handler.Handle(ctx, r)
}

func (h simHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return simHandler{h.Handler.WithAttrs(as), h.c}
}

func (h simHandler) WithGroup(name string) slog.Handler {
	return simHandler{h.Handler.WithGroup(name), h.c}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// stop ends the node's HA loop (like SIGKILL of pgnoded): nothing is cleaned
// up, keepalives stop, the API stops answering; postgres and the fence stay.
func (w *world) stop(name string) {
	sn := w.nodes[name]
	if sn.cancel == nil || !sn.live {
		return
	}
	sn.cancel()
	if err := <-sn.done; err != nil && err != context.Canceled {
		w.t.Errorf("%s: Run returned %v", name, err)
	}
	w.detach(sn)
}

// lose is the loss of whole nodes: the daemon stops and postgres dies with it.
func (w *world) lose(names ...string) {
	for _, name := range names {
		w.stop(name)
		w.mu.Lock()
		w.nodes[name].pg.stopLocked(cluster.StopImmediate)
		w.mu.Unlock()
	}
}

// detach marks a node whose loop has returned as dead and uncounts what was queued for it.
func (w *world) detach(sn *simNode) {
	w.mu.Lock()
	sn.live, sn.frozen, sn.apiDown = false, true, true
	w.mu.Unlock()
	w.busy.drain(sn.store.changed)
	w.busy.drain(sn.store.leaseLost)
	w.busy.drain(sn.store.renewed)
	w.busy.drain(sn.pg.exited)
}

// step moves time by d and plays the world: fences, keepalives, lease expiry, WAL.
func (w *world) step(d time.Duration) {
	w.clock.Advance(d)
	w.mu.Lock()
	now := w.clock.Now()
	for _, name := range w.names {
		sn := w.nodes[name]
		if f := sn.fence; f.armed && !now.Before(f.until) {
			f.armed, f.firedAt = false, now
			sn.pg.stopLocked(cluster.StopImmediate)
		}
	}
	for _, name := range w.names {
		sn := w.nodes[name]
		s := sn.store
		if s == nil || s.closed || sn.frozen || !sn.live || now.Sub(s.lastRenew) < renewEvery {
			continue
		}
		if sn.partitioned {
			s.lastRenew = now
			w.busy.signal(s.leaseLost)
			continue
		}
		if _, ok := w.leases[s.lease]; ok {
			_ = s.ensureLeaseLocked()
			if !w.pollOnly {
				w.busy.signal(s.renewed)
			}
		}
	}
	ids := slices.Sorted(maps.Keys(w.leases))
	for _, id := range ids {
		if l := w.leases[id]; !now.Before(l.expires) {
			w.expireLeaseLocked(id)
		}
	}
	for _, name := range w.names {
		if pg := w.nodes[name].pg; pg.writable() {
			pg.lsn += 10
		}
	}
	for _, name := range w.names {
		pg := w.nodes[name].pg
		if up := pg.streamingFromLocked(); up != nil && !pg.hold {
			pg.lsn, pg.timeline, pg.switches = up.lsn, up.timeline, maps.Clone(up.switches)
		}
	}
	w.checkLocked("step")
	w.checkSyncLocked("step")
	w.mu.Unlock()
	w.busy.settle(w.t)
}

// run steps until cond holds or limit of simulated time passed; it reports whether cond held.
// eventSent books an event handed to a loop from outside: in flight until
// the loop has handled it, and counted for async.
func (w *world) eventSent() {
	w.busy.inc()
	w.sent.Add(1)
	select {
	case w.sentSig <- struct{}{}:
	default:
	}
}

func (w *world) run(limit time.Duration, cond func() bool) bool {
	for end := w.clock.Now().Add(limit); w.clock.Now().Before(end); {
		w.step(simStep)
		if cond() {
			return true
		}
	}
	return false
}

func (w *world) expireLeaseLocked(id int64) {
	l, ok := w.leases[id]
	if !ok {
		return
	}
	delete(w.leases, id)
	if w.leader != nil && w.leader.lease == id {
		w.leader = nil
	}
	for name, m := range w.members {
		if m.LeaseID == id {
			delete(w.members, name)
		}
	}
	if sn := w.nodes[l.owner]; sn.live && sn.store != nil && sn.store.lease == id {
		w.busy.signal(sn.store.leaseLost)
	}
	w.changedLocked()
}

// changedLocked is the watch: every connected node's Store.Changed fires.
func (w *world) changedLocked() {
	w.rev++
	for _, name := range w.names {
		if sn := w.nodes[name]; sn.live && !sn.partitioned && sn.store != nil && !sn.store.closed {
			w.busy.signal(sn.store.changed)
		}
	}
}

// fenceArmedLocked: postgres may only become writable with its fence already armed.
func (w *world) fenceArmedLocked(name, what string) {
	if f := w.nodes[name].fence; !f.armed || !w.clock.Now().Before(f.until) {
		w.violations = append(w.violations, fmt.Sprintf("%s %s at %s without an armed fence",
			name, what, w.clock.Now().Sub(t0)))
	}
}

// checkLocked is the safety invariant: never two writable postgres at once,
// and a live node binds the VIP only while it holds the leader key.
func (w *world) checkLocked(where string) {
	for _, name := range w.names {
		sn := w.nodes[name]
		if sn.live && sn.vip.bound && (w.leader == nil || w.leader.name != name) {
			w.violations = append(w.violations, fmt.Sprintf("%s at %s: %s has the VIP without the leader key",
				where, w.clock.Now().Sub(t0), name))
		}
	}
	var writable []string
	for _, name := range w.names {
		if w.nodes[name].pg.writable() {
			writable = append(writable, name)
		}
	}
	if len(writable) > 1 {
		w.violations = append(w.violations, fmt.Sprintf("%s at %s: writable primaries %v",
			where, w.clock.Now().Sub(t0), writable))
	}
}

func (w *world) viewLocked() cluster.View {
	v := cluster.View{Members: map[string]cluster.Member{}, ReadAt: w.clock.Now(), Revision: w.rev}
	if w.leader != nil {
		v.Leader = &cluster.LeaderKey{Name: w.leader.name, LeaseID: w.leader.lease}
	}
	for name, m := range w.members {
		m.Name = name
		v.Members[name] = m
	}
	if w.initialize != nil {
		v.Initialize = str(*w.initialize)
	}
	if w.configRaw != nil {
		if c, err := cluster.ParseDynamicConfig(w.configRaw); err == nil {
			v.Config = &c
		}
		v.ConfigRaw, v.ConfigRev = append([]byte(nil), w.configRaw...), w.configRev
	}
	if w.failover != nil {
		f := *w.failover
		v.Failover = &f
	}
	if w.sync != nil {
		sy := *w.sync
		v.Sync = &sy
	}
	v.History = slices.Clone(w.history)
	if w.status != nil {
		s := *w.status
		v.Status = &s
	}
	v.Failsafe = maps.Clone(w.failsafe)
	return v
}

// Queries used by the scenarios.

func (w *world) leaderName() string {
	defer w.lockFn()()
	if w.leader == nil {
		return ""
	}
	return w.leader.name
}

func (w *world) writable() []string {
	defer w.lockFn()()
	var out []string
	for _, name := range w.names {
		if w.nodes[name].pg.writable() {
			out = append(out, name)
		}
	}
	return out
}

// streamingReplicasOf lists the nodes streaming from name.
func (w *world) streamingReplicasOf(name string) []string {
	defer w.lockFn()()
	var out []string
	for _, n := range w.names {
		if pg := w.nodes[n].pg; pg.upstream == name && pg.streamingFromLocked() != nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (w *world) pgState(name string) (running, writable bool, timeline int) {
	defer w.lockFn()()
	pg := w.nodes[name].pg
	return pg.running, pg.writable(), pg.timeline
}

func (w *world) noViolations(t *testing.T) {
	t.Helper()
	defer w.lockFn()()
	for _, v := range w.violations {
		t.Errorf("invariant violated: %s", v)
	}
}

// fakePeers answers /patroni from the other nodes' published snapshots, as the REST API does.
type fakePeers struct{ w *world }

func (p *fakePeers) Status(_ context.Context, members []cluster.Member) []PeerStatus {
	out := make([]PeerStatus, len(members))
	for i, m := range members {
		out[i] = PeerStatus{Name: m.Name}
		sn, ok := p.w.nodes[m.Name]
		if !ok {
			continue
		}
		p.w.mu.Lock()
		down := sn.apiDown || sn.node == nil
		p.w.mu.Unlock()
		if down {
			continue
		}
		s := sn.node.Snapshot()
		if !s.PG.Running || !s.PG.Ready {
			// The REST API leaves xlog out while postgres does not answer, and
			// peers.ParseStatus counts such a document as unreachable.
			continue
		}
		tags := plan.ParseTags(s.Tags)
		st := PeerStatus{Name: m.Name, Reachable: true, Timeline: s.PG.Timeline, WALPosition: s.PG.WALPosition(),
			NoFailover: !tags.CanFailover(), FailoverPriority: tags.FailoverPriority}
		st.Role = "replica"
		if !s.PG.InRecovery {
			st.Role = "master"
		}
		out[i] = st
	}
	return out
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
