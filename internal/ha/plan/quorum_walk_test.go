package plan

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// syncWorld is a primary (pg1) and standbys whose WAL positions are tracked
// exactly, run through NextSync with its effects applied one at a time
// (the sync key write, then the GUC asked for, then the reload that puts it
// in effect), with commits acknowledged as postgres would under the GUC in
// effect (any n of the listed standbys, chosen at random) and standbys that
// stream, stall, die and come back.
type syncWorld struct {
	rng      *rand.Rand
	names    []string
	alive    map[string]bool
	nosync   map[string]bool
	pos      map[string]cluster.LSN // the WAL each standby flushed and replayed (kept when it dies)
	lsn      cluster.LSN            // the primary's flush position
	acked    cluster.LSN            // the newest acknowledged commit
	eff      string                 // synchronous_standby_names in effect
	asked    string                 // the value asked for, put in effect by a later reload
	askedSet bool
	key      *cluster.SyncState
	rev      int64
	facts    SyncFacts
	cfg      cluster.DynamicConfig
	now      time.Time
	log      []string
}

func newSyncWorld(seed int64, n int) *syncWorld {
	w := &syncWorld{rng: rand.New(rand.NewSource(seed)), alive: map[string]bool{}, nosync: map[string]bool{},
		pos: map[string]cluster.LSN{}, lsn: 100, now: t0, facts: SyncFacts{Compat4: true}}
	for i := range n {
		name := string(rune('a' + i))
		w.names = append(w.names, name)
		w.alive[name] = true
		w.pos[name] = 100
	}
	w.cfg = cluster.DefaultDynamicConfig()
	w.cfg.SynchronousMode, w.cfg.SynchronousQuorum, w.cfg.SynchronousNodeCount = true, true, 2
	return w
}

// syncStateOf is pg_stat_replication's sync_state of name under the GUC in effect.
func (w *syncWorld) syncStateOf(name string) string {
	r := parseSSN(w.eff)
	if !containsFold(r.Names, name) {
		return "async"
	}
	if r.Any {
		return "quorum"
	}
	rank := 0
	for _, n := range r.Names {
		if w.alive[n] {
			if strings.EqualFold(n, name) {
				break
			}
			rank++
		}
	}
	if rank < r.Num {
		return "sync"
	}
	return "potential"
}

func (w *syncWorld) observation() Observation {
	o := newObs(iLead)
	o.Now = w.now
	o.Config = w.cfg
	o.PG.CurrentLSN, o.PG.FlushLSN = w.lsn, w.lsn
	o.PG.SyncStandbyNames = w.eff
	o.PG.Replication = nil
	o.View.Members = map[string]cluster.Member{"pg1": {Name: "pg1", Role: "master", State: "running", APIURL: "http://pg1:8008/patroni"}}
	for _, n := range w.names {
		if !w.alive[n] {
			continue
		}
		tags := map[string]any{}
		if w.nosync[n] {
			tags["nosync"] = true
		}
		o.View.Members[n] = cluster.Member{Name: n, Role: "replica", State: "running", APIURL: "http://" + n + ":8008/patroni", Tags: tags}
		o.PG.Replication = append(o.PG.Replication, cluster.ReplicationRow{ApplicationName: n, State: "streaming",
			SyncState: w.syncStateOf(n), FlushLSN: w.pos[n], ReplayLSN: w.pos[n]})
	}
	if w.key != nil {
		k := *w.key
		k.ModRevision = w.rev
		o.View.Sync = &k
	} else {
		o.View.Sync = nil
	}
	return o
}

// check is the invariant: a candidate is promoted only with quorum+1 members
// of the key's leader and voters at or below its position, so at most quorum
// of the voters may lack the newest acknowledged commit (the leader, alive,
// has it). Under synchronous_mode: on the key has quorum 0: every listed
// standby must have it.
func (w *syncWorld) check(t *testing.T, step string) {
	t.Helper()
	if w.key == nil {
		return
	}
	q := 0
	if w.key.Quorum != nil {
		q = *w.key.Quorum
	}
	lacking := 0
	for _, v := range w.key.Standbys() {
		if w.pos[v] < w.acked {
			lacking++
		}
	}
	if lacking > q {
		t.Fatalf("invariant broken after %s: key %s quorum %d, %d voters lack the commit at %d (positions %v), GUC %q\nhistory:\n%s",
			step, keyString(w.key), q, lacking, w.acked, w.pos, w.eff, strings.Join(w.log[max(0, len(w.log)-40):], "\n"))
	}
}

// checkRace asks the real leader race (decideRace) of every live standby, as
// if the primary died now (and, at random, one more standby with it): any
// standby that would take the leader key must hold the newest acknowledged
// commit.
func (w *syncWorld) checkRace(t *testing.T) {
	t.Helper()
	if w.key == nil { // before the first cycle wrote it, synchronous mode is not active yet (as in Patroni)
		return
	}
	extra := w.names[w.rng.Intn(len(w.names))]
	if w.rng.Intn(2) == 0 {
		extra = ""
	}
	up := func(n string) bool { return w.alive[n] && n != extra }
	for _, c := range w.names {
		if !up(c) {
			continue
		}
		o := newObs()
		o.Name, o.Now, o.Config = c, w.now, w.cfg
		o.View.Leader = nil
		o.View.Members = map[string]cluster.Member{}
		o.View.Status = &cluster.StatusKey{Optime: int64(w.lsn)}
		o.PG.ReceivedLSN, o.PG.ReplayedLSN = w.pos[c], w.pos[c]
		o.Upstream = Upstream{}
		o.Peers = []PeerStatus{}
		for _, n := range append(slices.Clone(w.names), "pg1") {
			o.View.Members[n] = cluster.Member{Name: n, Role: "replica", State: "running", APIURL: "http://" + n + ":8008/patroni"}
			if n == c {
				continue
			}
			if n == "pg1" || !up(n) {
				o.Peers = append(o.Peers, PeerStatus{Name: n})
				continue
			}
			o.Peers = append(o.Peers, PeerStatus{Name: n, Reachable: true, Role: "replica", WALPosition: w.pos[n], Timeline: 1,
				FailoverPriority: 1})
		}
		if w.key != nil {
			k := *w.key
			o.View.Sync = &k
		}
		if d := decideRace(o); d.Action == ActionAcquire && w.pos[c] < w.acked {
			t.Fatalf("%s (at %d) would take over without the commit at %d (also down: %q); key %s, GUC %q: %s\nhistory:\n%s",
				c, w.pos[c], w.acked, extra, keyString(w.key), w.eff, d.Message, strings.Join(w.log[max(0, len(w.log)-40):], "\n"))
		}
	}
}

func keyString(k *cluster.SyncState) string {
	if k == nil {
		return "<none>"
	}
	s := "null"
	if k.SyncStandby != nil {
		s = *k.SyncStandby
	}
	q := -1
	if k.Quorum != nil {
		q = *k.Quorum
	}
	return fmt.Sprintf("{%s %s q=%d}", k.Leader, s, q)
}

func (w *syncWorld) logf(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf(format, args...))
}

// cycle runs NextSync and applies its effects one by one, checking after each.
func (w *syncWorld) cycle(t *testing.T) SyncStep {
	o := w.observation()
	f := w.facts
	f.Asked, f.AskedSet = w.asked, w.askedSet
	st := NextSync(o, f)
	w.facts = f.Advance(st, w.eff, w.lsn, w.now)
	w.logf("cycle: eff %q key %s -> write %v %s, GUC %q (picked %v confirmed %v)", w.eff, keyString(w.key),
		st.WriteSync, keyString(&st.Sync), st.GUC, st.Picked, st.Confirmed)
	if st.DeleteSync {
		w.key = nil
		w.rev++
		w.check(t, "key delete")
	}
	if !st.Manage {
		return st
	}
	if st.WriteSync {
		k := st.Sync
		w.key = &k
		w.rev++
		w.check(t, "key write")
	}
	if !w.askedSet || w.asked != st.GUC {
		w.asked, w.askedSet = st.GUC, true
	}
	return st
}

// reload puts the asked-for GUC in effect.
func (w *syncWorld) reload(t *testing.T) {
	if w.askedSet && w.eff != w.asked {
		w.logf("reload: %q -> %q", w.eff, w.asked)
		w.eff = w.asked
		w.check(t, "reload")
	}
}

// commit writes one transaction; it is acknowledged when enough listed standbys are alive.
func (w *syncWorld) commit(t *testing.T) {
	w.lsn += 10
	r := parseSSN(w.eff)
	var listed []string
	for _, n := range r.Names {
		if w.alive[n] {
			listed = append(listed, n)
		}
	}
	w.rng.Shuffle(len(listed), func(i, j int) { listed[i], listed[j] = listed[j], listed[i] })
	if r.Unknown || len(listed) < r.Num {
		w.logf("commit %d waits (GUC %q)", w.lsn, w.eff)
		return
	}
	for _, n := range listed[:r.Num] {
		w.pos[n] = w.lsn
	}
	w.acked = w.lsn
	w.logf("commit %d acknowledged by %v", w.lsn, listed[:r.Num])
	w.check(t, "commit")
}

func (w *syncWorld) randomStandby() string { return w.names[w.rng.Intn(len(w.names))] }

// step is one random event.
func (w *syncWorld) step(t *testing.T, modes bool) {
	w.now = w.now.Add(time.Duration(w.rng.Intn(3000)) * time.Millisecond)
	switch r := w.rng.Intn(100); {
	case r < 25:
		w.cycle(t)
	case r < 40:
		w.reload(t)
	case r < 60:
		w.commit(t)
	case r < 75:
		if n := w.randomStandby(); w.alive[n] {
			w.pos[n] = w.lsn
			w.logf("%s caught up to %d", n, w.lsn)
		}
	case r < 82:
		n := w.randomStandby()
		w.alive[n] = !w.alive[n]
		w.logf("%s alive=%v", n, w.alive[n])
	case r < 86:
		n := w.randomStandby()
		w.nosync[n] = !w.nosync[n]
		w.logf("%s nosync=%v", n, w.nosync[n])
	case r < 92:
		w.cfg.SynchronousNodeCount = 1 + w.rng.Intn(4)
		w.logf("synchronous_node_count=%d", w.cfg.SynchronousNodeCount)
	case r < 94:
		w.cfg.SynchronousModeStrict = !w.cfg.SynchronousModeStrict
		w.logf("strict=%v", w.cfg.SynchronousModeStrict)
	case r < 96:
		// pgnoded restarts (postgres keeps running): what the loop remembered is gone.
		w.facts, w.asked, w.askedSet = SyncFacts{Compat4: true}, "", false
		w.logf("pgnoded restarted")
	default:
		if modes {
			w.cfg.SynchronousQuorum = !w.cfg.SynchronousQuorum
			w.logf("quorum mode=%v", w.cfg.SynchronousQuorum)
		}
	}
}

// TestQuorumInvariantWalk walks random sequences of cycles, reloads, commits,
// standby failures, tag and configuration changes (mode on <-> quorum too) and
// checks the invariant after every single effect.
func TestQuorumInvariantWalk(t *testing.T) {
	for seed := int64(1); seed <= 300; seed++ {
		w := newSyncWorld(seed, 2+int(seed%4))
		for i := range 400 {
			w.step(t, seed%3 == 0)
			if i%4 == 0 {
				w.checkRace(t)
			}
		}
	}
}

// TestQuorumWalkConverges: with every standby alive and streaming, the walk
// reaches the optimal state: ANY n of all of them and quorum |S|-n.
func TestQuorumWalkConverges(t *testing.T) {
	for seed := int64(1); seed <= 100; seed++ {
		w := newSyncWorld(seed, 3+int(seed%3))
		for range 200 {
			w.step(t, false)
		}
		for _, n := range w.names {
			w.alive[n], w.nosync[n] = true, false
		}
		w.cfg.SynchronousQuorum = true
		if w.cfg.SynchronousModeStrict { // strict with too few standbys keeps commits waiting instead
			w.cfg.SynchronousNodeCount = min(w.cfg.SynchronousNodeCount, len(w.names))
		}
		for range 12 {
			w.cycle(t)
			w.reload(t)
			w.commit(t)
			for _, n := range w.names {
				w.pos[n] = w.lsn
			}
		}
		n := min(w.cfg.SynchronousNodeCount, len(w.names))
		wantGUC := FormatQuorumSSN(w.names, n)
		if w.eff != wantGUC || w.key == nil || w.key.Quorum == nil || *w.key.Quorum != len(w.names)-n ||
			!sameFold(w.key.Standbys(), w.names) {
			t.Fatalf("seed %d: not converged: GUC %q (want %q), key %s\n%s", seed, w.eff, wantGUC, keyString(w.key),
				strings.Join(w.log[max(0, len(w.log)-30):], "\n"))
		}
	}
}
