package ha

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// RenewalNotifier is an optional extension of Store: Renewed fires (never
// blocking) after every successful lease keepalive, so the loop re-arms the
// fence and republishes LeaderUntil at once. Without it the loop polls
// LeaseValidUntil every renewalPoll.
type RenewalNotifier interface {
	Renewed() <-chan struct{}
}

// renewalPoll is how often LeaseValidUntil is polled when the Store is not a RenewalNotifier.
const renewalPoll = 200 * time.Millisecond

// Node is the public face of one pgnoded HA loop: the published snapshot,
// Wake, and the operator requests, which either submit a request to the loop
// (restart, reinitialize) or read and write the Store (switchover, config).
// Its methods run on the callers' goroutines (the REST handlers); none of
// them can reach the loop's state, which only the unexported loop holds.
// Create it with New, run it with Run, stop it with Shutdown.
type Node struct {
	*shared
	// idle holds the loop while no goroutine runs it: New puts it there, Run
	// takes it for as long as it runs, Shutdown takes it for the clean stop.
	idle chan *loop
}

// shared is what the public Node and the loop both use; every field is safe
// for concurrent use (immutable after New, atomic, a channel, or under its mutex).
type shared struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	clock clock
	// tags is the configured tags (config file; SetTags replaces them on reload).
	tags atomic.Pointer[map[string]any]
	boot cluster.DynamicConfig // bootstrap.dcs parsed, used until the config key exists

	snap      atomic.Pointer[cluster.Snapshot]
	snapMu    sync.Mutex // orders snapshot stores from the loop and from SetTags
	wakeCh    chan struct{}
	opCh      chan *opRequest // operator requests for the loop (ops.go)
	reloadMu  sync.Mutex
	reloadReq *reloadRequest
	quit      chan struct{}
	quitOnce  sync.Once
	started   atomic.Bool
	runDone   chan struct{}

	fsMu     sync.Mutex
	fsLeader failsafeLeader // replica side of failsafe mode (POST /failsafe)

	hooks testHooks
}

// loop is the HA loop: it alone owns loopState. Its methods run on the Run
// goroutine (and, once Run has returned, on Shutdown's).
type loop struct {
	*shared
	st loopState
}

// testHooks let the in-memory simulation know when the loop is idle.
type testHooks struct {
	longStarted  func() // a long action was launched
	longFinished func() // its result was taken in
	eventDone    func() // one received event (or the first cycle) was fully handled
	eventSent    func() // an event is about to be sent to the loop from outside (Wake, operator request)
	eventUnsent  func() // ... and was not sent after all
}

func (sh *shared) sending() {
	if sh.hooks.eventSent != nil {
		sh.hooks.eventSent()
	}
}

func (sh *shared) unsent() {
	if sh.hooks.eventUnsent != nil {
		sh.hooks.eventUnsent()
	}
}

// New builds a Node; it does not touch postgres or the DCS until Run.
func New(cfg Config, deps Deps) *Node {
	cfg.setDefaults()
	if deps.Peers == nil {
		deps.Peers = noPeers{}
	}
	n := &shared{
		cfg:     cfg,
		deps:    deps,
		log:     cfg.Logger.With("component", "ha", "member", cfg.Name),
		clock:   realClock{now: cfg.Now},
		wakeCh:  make(chan struct{}, 1),
		opCh:    make(chan *opRequest),
		quit:    make(chan struct{}),
		runDone: make(chan struct{}),
	}
	tags := cfg.Tags
	n.tags.Store(&tags)
	n.boot = cluster.DefaultDynamicConfig()
	if cfg.BootstrapDCS != nil {
		if c, err := cluster.FromMap(cfg.BootstrapDCS); err == nil {
			n.boot = c
		} else {
			n.log.Warn("bootstrap.dcs has invalid values; using defaults for them", "err", err)
			n.boot = c
		}
	}
	l := &loop{shared: n}
	l.st.conf.dyn = n.boot
	l.st.role = cluster.RoleUninitialized
	l.st.conf.localParams = cfg.Parameters
	n.snap.Store(&cluster.Snapshot{Name: cfg.Name, Scope: cfg.Scope, Compat: cfg.Compat, APIURL: cfg.APIURL,
		ConnURL: cfg.ConnURL, Role: cluster.RoleUninitialized, Config: n.boot, Tags: plan.EffectiveTags(cfg.Tags),
		TTL: n.boot.TTLDuration(), LoopWait: n.boot.LoopWaitDuration(), RetryTimeout: n.boot.RetryTimeoutDuration()})
	node := &Node{shared: n, idle: make(chan *loop, 1)}
	node.idle <- l
	return node
}

// configTags returns the configured tags in force.
func (sh *shared) configTags() map[string]any { return *sh.tags.Load() }

// SetTags replaces the configured tags (the config file was re-read). The
// published snapshot changes at once, so /replica and the other health
// checks answer with the new tags before the loop's next cycle, which it
// starts now to write them to the member key.
func (n *Node) SetTags(tags map[string]any) {
	n.tags.Store(&tags)
	n.snapMu.Lock()
	s := *n.snap.Load()
	s.Tags = plan.EffectiveTags(tags)
	n.snap.Store(&s)
	n.snapMu.Unlock()
	n.Wake()
}

// Snapshot returns the latest published state of this node; never nil, never to be mutated.
func (n *Node) Snapshot() *cluster.Snapshot { return n.snap.Load() }

// Wake asks the loop to run a cycle now (e.g. after an API request); it never blocks.
func (n *Node) Wake() {
	n.sending()
	select {
	case n.wakeCh <- struct{}{}:
	default:
		n.unsent()
	}
}

func (sh *shared) now() time.Time { return sh.clock.Now() }

// opCtx bounds one DCS or postgres call: retry_timeout, and never past the
// moment a primary we hold must start demoting (so the demotion is not late).
func (l *loop) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := l.st.conf.dyn.RetryTimeoutDuration()
	if d <= 0 {
		d = time.Second
	}
	if l.st.fence.want {
		if until := plan.DemoteStart(l.holdUntil(), l.st.conf.dyn).Sub(l.now()); until < d {
			d = max(until, 200*time.Millisecond)
		}
		if l.st.lease.fs.engaged {
			// DCS lost: calls must not delay the next failsafe round.
			d = min(d, max(plan.FailsafeInterval(l.st.conf.dyn)/2, 200*time.Millisecond))
		}
	}
	return context.WithTimeout(ctx, d)
}

// dcsCtx bounds a DCS call of a primary's cycle: opCtx and, with
// failsafe_mode on, the moment a missed lease renewal engages failsafe: a
// write hanging on a frozen etcd must leave the loop free to ask the members
// before the hold runs short (else the fence guard demotes a primary that
// every member would have confirmed).
func (l *loop) dcsCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	octx, cancel := l.opCtx(ctx)
	if !l.st.fence.want || !l.st.conf.dyn.FailsafeMode || l.st.lease.fs.engaged {
		return octx, cancel
	}
	ov := l.leaseOverdueAt()
	if ov.IsZero() {
		return octx, cancel
	}
	dctx, dcancel := context.WithTimeout(octx, max(ov.Sub(l.now()), 300*time.Millisecond))
	return dctx, func() { dcancel(); cancel() }
}

// shortCtx bounds calls that must stay short whatever the settings (VIP, peers).
func shortCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}
