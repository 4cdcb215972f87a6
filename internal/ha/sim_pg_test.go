package ha

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// fakePG is a postgres state machine: data directory, postmaster, recovery,
// timeline, WAL position and timeline history. Every transition to writable
// is checked against the world's invariant at once.
type fakePG struct {
	w    *world
	name string

	empty      bool
	sysid      string
	running    bool
	inRecovery bool
	timeline   int
	lsn        uint64
	state      string // pg_control cluster state
	checkpoint uint64
	switches   map[int]uint64 // timeline -> LSN where it ended (the history file)
	upstream   string         // node followed (host of primary_conninfo)
	slots      map[string]bool
	startFails bool
	starts     int // successful starts (a restart shows as one more)
	reloads    int
	params     map[string]any // parameters of the last start or reload
	hold       bool           // a replica that stops replaying (its WAL position stays)

	cloneOpts []cluster.CloneOptions // options of every clone, in order

	exited chan struct{}
}

func newFakePG(w *world, name string) *fakePG {
	return &fakePG{w: w, name: name, empty: true, exited: make(chan struct{}, 1), slots: map[string]bool{}}
}

func (p *fakePG) writable() bool { return p.running && !p.inRecovery }

func (p *fakePG) Exited() <-chan struct{} { return p.exited }

func (p *fakePG) lock() func() { p.w.mu.Lock(); return p.w.mu.Unlock }

// streamingFromLocked reports whether the replica can stream from its upstream:
// same system, upstream running, and our WAL not past the point where our timeline ended there.
func (p *fakePG) streamingFromLocked() *fakePG {
	up, ok := p.w.nodes[p.upstream]
	if !ok || !p.running || !p.inRecovery || !up.pg.running || up.pg.sysid != p.sysid {
		return nil
	}
	if up.pg.timeline != p.timeline {
		end, ok := up.pg.switches[p.timeline]
		if !ok || p.lsn > end {
			return nil
		}
	}
	return up.pg
}

func (p *fakePG) Observe(context.Context) cluster.PGObservation {
	defer p.lock()()
	o := cluster.PGObservation{ObservedAt: p.w.clock.Now(), State: cluster.StateStopped, SystemID: p.sysid}
	if !p.running {
		return o
	}
	o.State, o.Running, o.Ready, o.InRecovery, o.Timeline = cluster.StateRunning, true, true, p.inRecovery, p.timeline
	if p.inRecovery {
		o.ReceivedLSN, o.ReplayedLSN = cluster.LSN(p.lsn), cluster.LSN(p.lsn)
		o.Streaming = p.streamingFromLocked() != nil
	} else {
		o.CurrentLSN, o.FlushLSN = cluster.LSN(p.lsn), cluster.LSN(p.lsn)
		o.SyncStandbyNames = p.ssn()
		for _, name := range p.w.names {
			if q := p.w.nodes[name].pg; q != p && q.streamingFromLocked() == p {
				state := "async"
				if ssnLists(o.SyncStandbyNames, name) {
					state = "sync"
					if strings.HasPrefix(strings.ToUpper(o.SyncStandbyNames), "ANY ") {
						state = "quorum"
					}
				}
				o.Replication = append(o.Replication, cluster.ReplicationRow{ApplicationName: name, State: "streaming",
					SyncState: state, FlushLSN: cluster.LSN(q.lsn), ReplayLSN: cluster.LSN(q.lsn)})
			}
		}
	}
	return o
}

func (p *fakePG) DataDirEmpty() (bool, error) {
	defer p.lock()()
	return p.empty, nil
}

func (p *fakePG) ControlData(context.Context) (cluster.ControlData, error) {
	defer p.lock()()
	if p.empty {
		return cluster.ControlData{}, errors.New("no data directory")
	}
	return cluster.ControlData{SystemID: p.sysid, ClusterState: p.state, TimelineID: p.timeline,
		CheckpointLSN: cluster.LSN(p.checkpoint), WALLogHints: true}, nil
}

func (p *fakePG) Initdb(context.Context) error {
	defer p.lock()()
	p.w.nextSysID++
	p.empty, p.sysid, p.timeline, p.lsn, p.checkpoint = false, fmt.Sprintf("73%017d", p.w.nextSysID), 1, 100, 100
	p.state, p.switches = "shut down", map[int]uint64{}
	return nil
}

func (p *fakePG) CustomBootstrap(ctx context.Context, _ cluster.StartOptions) error {
	return p.Initdb(ctx)
}

func (p *fakePG) RunPostBootstrap(context.Context) error { return nil }

func (p *fakePG) Clone(_ context.Context, src cluster.ConnInfo, opts cluster.CloneOptions) error {
	defer p.lock()()
	p.cloneOpts = append(p.cloneOpts, opts)
	s, ok := p.w.nodes[src.Host]
	if !ok || !s.pg.running {
		return fmt.Errorf("pg_basebackup: cannot connect to %s", src.Host)
	}
	p.empty, p.sysid, p.timeline, p.lsn, p.checkpoint = false, s.pg.sysid, s.pg.timeline, s.pg.lsn, s.pg.lsn
	p.state, p.switches = "in archive recovery", maps.Clone(s.pg.switches)
	return nil
}

func (p *fakePG) Rewind(_ context.Context, src cluster.ConnInfo) error {
	defer p.lock()()
	s, ok := p.w.nodes[src.Host]
	if !ok || !s.pg.running || p.running || s.pg.sysid != p.sysid {
		return errors.New("pg_rewind: source not usable or target running")
	}
	p.timeline, p.lsn, p.checkpoint, p.state = s.pg.timeline, s.pg.lsn, s.pg.lsn, "in archive recovery"
	p.switches = maps.Clone(s.pg.switches)
	p.w.rewinds++
	return nil
}

// ArchiveShutdownCheckpoint records the segment of the last checkpoint as
// archived (archiving counts as configured in the simulation).
func (p *fakePG) ArchiveShutdownCheckpoint(context.Context) (string, error) {
	defer p.lock()()
	if p.running || p.empty {
		return "", errors.New("archive the shutdown checkpoint: postgres is running or has no data")
	}
	seg := fmt.Sprintf("%08X%016X", p.timeline, p.checkpoint)
	p.w.archived = append(p.w.archived, p.name+":"+seg)
	return seg, nil
}

func (p *fakePG) RemoveDataDir(context.Context) error {
	defer p.lock()()
	if p.running {
		return errors.New("postgres is running")
	}
	p.empty, p.sysid = true, ""
	return nil
}

func (p *fakePG) Start(_ context.Context, opts cluster.StartOptions) error {
	defer p.lock()()
	if p.empty || p.startFails {
		return errors.New("postgres failed to start")
	}
	if p.running {
		return nil
	}
	p.running, p.inRecovery, p.upstream = true, opts.AsReplica, opts.Recovery.Upstream.Host
	p.starts++
	p.params = opts.Params
	p.state = "in production"
	if opts.AsReplica {
		p.state = "in archive recovery"
	} else {
		p.w.fenceArmedLocked(p.name, "started as primary")
	}
	p.w.checkLocked(p.name + " started")
	return nil
}

func (p *fakePG) Stop(_ context.Context, mode cluster.StopMode) error {
	defer p.lock()()
	p.stopLocked(mode)
	return nil
}

func (p *fakePG) stopLocked(mode cluster.StopMode) {
	if !p.running {
		return
	}
	p.running = false
	switch {
	case mode == cluster.StopImmediate && p.inRecovery:
		p.state = "in archive recovery"
	case mode == cluster.StopImmediate:
		p.state = "in production"
	case p.inRecovery:
		p.state, p.checkpoint = "shut down in recovery", p.lsn
	default:
		p.state, p.checkpoint = "shut down", p.lsn
	}
	if p.w.nodes[p.name].live { // a dead pgnoded hears nothing
		p.w.busy.signal(p.exited)
	}
}

func (p *fakePG) Promote(context.Context) error {
	defer p.lock()()
	if !p.running || !p.inRecovery {
		return errors.New("not a running replica")
	}
	if p.switches == nil {
		p.switches = map[int]uint64{}
	}
	p.w.checkPromoteSyncLocked(p.name)
	p.switches[p.timeline] = p.lsn
	p.timeline++
	p.inRecovery, p.state = false, "in production"
	p.w.promotions = append(p.w.promotions, promotion{name: p.name, at: p.w.clock.Now()})
	p.w.fenceArmedLocked(p.name, "promoted")
	p.w.checkLocked(p.name + " promoted")
	return nil
}

func (p *fakePG) Reload(_ context.Context, opts cluster.StartOptions) error {
	defer p.lock()()
	p.upstream = opts.Recovery.Upstream.Host
	p.reloads++
	p.params = opts.Params
	p.w.checkSyncLocked(p.name + " reloaded")
	return nil
}

// ssn is synchronous_standby_names as postgres runs with it.
func (p *fakePG) ssn() string {
	v, _ := p.params["synchronous_standby_names"].(string)
	return v
}

// ssnLists reports whether a synchronous_standby_names value names name
// (the simulation's names are plain identifiers: "a", "N (a,b)").
func ssnLists(v, name string) bool {
	if i := strings.Index(v, "("); i >= 0 {
		v = strings.TrimSuffix(v[i+1:], ")")
	}
	for _, n := range strings.Split(v, ",") {
		if strings.Trim(strings.TrimSpace(n), `"`) == name {
			return true
		}
	}
	return false
}

func (p *fakePG) SetPassword(context.Context, string, string) error { return nil }

func (p *fakePG) EnsureRole(context.Context, cluster.LoginRole) error { return nil }

func (p *fakePG) GrantRewind(context.Context, string) error { return nil }

func (p *fakePG) ReplicationSlots(context.Context) ([]cluster.ReplicationSlot, error) {
	defer p.lock()()
	var out []cluster.ReplicationSlot
	for s := range p.slots {
		out = append(out, cluster.ReplicationSlot{Name: s, Type: "physical"})
	}
	return out, nil
}

func (p *fakePG) CreatePhysicalSlots(_ context.Context, names []string) error {
	defer p.lock()()
	for _, name := range names {
		p.slots[name] = true
	}
	return nil
}

func (p *fakePG) DropSlot(_ context.Context, name string) error {
	defer p.lock()()
	delete(p.slots, name)
	return nil
}

func (p *fakePG) SlotPositions(context.Context, []string) (map[string]int64, error) { return nil, nil }

func (p *fakePG) AdvancePhysicalSlot(context.Context, string, int64) error { return nil }

func (p *fakePG) Checkpoint(context.Context) error { return nil }

func (p *fakePG) TimelineHistory(context.Context, int) ([]cluster.HistoryEntry, error) {
	defer p.lock()()
	var out []cluster.HistoryEntry
	for t := 1; t < p.timeline; t++ { // the file of the current timeline, whatever tl asks
		out = append(out, cluster.HistoryEntry{Timeline: t, LSN: int64(p.switches[t]), Reason: "no recovery target specified"})
	}
	return out, nil
}

// fakeFence stops postgres when its deadline passes without a new Arm.
type fakeFence struct {
	w       *world
	armed   bool
	until   time.Time
	firedAt time.Time // zero: never fired
	arms    int
}

func (f *fakeFence) Arm(deadline time.Time) error {
	defer f.w.lockFn()()
	f.armed, f.until = true, deadline
	f.arms++
	return nil
}

func (f *fakeFence) Disarm() error {
	defer f.w.lockFn()()
	f.armed = false
	return nil
}

// fakeVIP records whether the address is bound.
type fakeVIP struct {
	w     *world
	bound bool
}

func (v *fakeVIP) Ensure(_ context.Context, bound bool) error {
	defer v.w.lockFn()()
	v.bound = bound
	return nil
}
