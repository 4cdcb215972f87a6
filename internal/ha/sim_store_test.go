package ha

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// fakeStore is one node's session with the shared fake etcd held by world:
// its own lease, a view rebuilt from the world on every call (stale while
// partitioned), and the Store's notification channels.
type fakeStore struct {
	w          *world
	name       string
	lease      int64
	ttl        time.Duration
	validUntil time.Time
	lastRenew  time.Time
	lastView   cluster.View
	closed     bool

	changed, leaseLost, renewed chan struct{}
}

var errPartitioned = errors.New("fake etcd: unreachable (partitioned)")

func newFakeStore(w *world, name string) *fakeStore {
	return &fakeStore{w: w, name: name, ttl: 3 * time.Second,
		changed: make(chan struct{}, 1), leaseLost: make(chan struct{}, 1), renewed: make(chan struct{}, 1)}
}

func (s *fakeStore) cut() bool { return s.w.nodes[s.name].partitioned || s.closed }

func (s *fakeStore) View() cluster.View {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.cut() {
		return s.lastView
	}
	s.lastView = s.w.viewLocked()
	return s.lastView
}

func (s *fakeStore) Changed() <-chan struct{}   { return s.changed }
func (s *fakeStore) LeaseLost() <-chan struct{} { return s.leaseLost }
func (s *fakeStore) Renewed() <-chan struct{}   { return s.renewed }

func (s *fakeStore) LeaseValidUntil() time.Time {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.validUntil
}

func (s *fakeStore) SetTTL(ttl time.Duration) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.ttl = ttl
}

// ensureLeaseLocked renews our lease or grants a new one (a keepalive).
func (s *fakeStore) ensureLeaseLocked() error {
	if s.cut() {
		return errPartitioned
	}
	now := s.w.clock.Now()
	l, ok := s.w.leases[s.lease]
	if !ok {
		s.w.nextLease++
		s.lease = s.w.nextLease
		l = &fakeLease{owner: s.name}
		s.w.leases[s.lease] = l
	}
	l.expires = now.Add(s.ttl)
	s.validUntil, s.lastRenew = l.expires, now
	return nil
}

func (s *fakeStore) KeepAlive(context.Context) (time.Time, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if err := s.ensureLeaseLocked(); err != nil {
		return time.Time{}, err
	}
	return s.validUntil, nil
}

func (s *fakeStore) AcquireLeader(context.Context) (bool, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if err := s.ensureLeaseLocked(); err != nil {
		return false, err
	}
	if s.w.leader != nil {
		return false, nil
	}
	s.w.leader = &fakeLeader{name: s.name, lease: s.lease}
	s.w.changedLocked()
	return true, nil
}

func (s *fakeStore) UpdateLeader(context.Context) (bool, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.cut() {
		return false, errPartitioned
	}
	switch {
	case s.w.leader == nil: // vanished: re-create it (4.x)
		s.w.leader = &fakeLeader{name: s.name, lease: s.lease}
		s.w.changedLocked()
	case s.w.leader.name != s.name:
		return false, nil
	default:
		s.w.leader.lease = s.lease
	}
	return true, nil
}

func (s *fakeStore) ReleaseLeader(context.Context) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.cut() {
		return errPartitioned
	}
	if s.w.leader != nil && s.w.leader.name == s.name {
		s.w.leader = nil
		s.w.changedLocked()
	}
	return nil
}

func (s *fakeStore) TouchMember(_ context.Context, m cluster.Member) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.cut() {
		return errPartitioned
	}
	m.LeaseID = s.lease
	old, had := s.w.members[s.name]
	s.w.members[s.name] = m
	if !had || old.WakeFields() != m.WakeFields() {
		s.w.changedLocked() // as the etcd Store: a join or a role/state change wakes the others
	}
	return nil
}

func (s *fakeStore) AttemptInitialize(context.Context) (bool, error) {
	return s.write(func(w *world) bool {
		if w.initialize != nil {
			return false
		}
		w.initialize = str("")
		return true
	})
}

func (s *fakeStore) SetInitialize(_ context.Context, sysid string) error {
	_, err := s.write(func(w *world) bool { w.initialize = str(sysid); return true })
	return err
}

func (s *fakeStore) CancelInitialize(context.Context) error {
	_, err := s.write(func(w *world) bool { w.initialize = nil; return true })
	return err
}

func (s *fakeStore) SetConfig(_ context.Context, raw []byte, rev int64) (bool, error) {
	return s.write(func(w *world) bool {
		if rev == 0 && w.configRaw != nil || rev > 0 && rev != w.configRev {
			return false
		}
		w.configRaw = append([]byte(nil), raw...)
		w.rev++
		w.configRev = w.rev
		return true
	})
}

func (s *fakeStore) guarded(f func(w *world)) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.cut() {
		return errPartitioned
	}
	if s.w.leader == nil || s.w.leader.name != s.name {
		return errors.New("fake etcd: leader-guarded write by a non-leader")
	}
	f(s.w)
	s.w.changedLocked()
	return nil
}

func (s *fakeStore) SetHistory(_ context.Context, h []cluster.HistoryEntry) error {
	return s.guarded(func(w *world) { w.history = append([]cluster.HistoryEntry(nil), h...) })
}

func (s *fakeStore) SetStatus(_ context.Context, st cluster.StatusKey) error {
	s.w.mu.Lock()
	same := s.w.status != nil && s.w.status.Optime == st.Optime
	s.w.mu.Unlock()
	if same {
		return nil
	}
	return s.guarded(func(w *world) { w.status = &st })
}

func (s *fakeStore) SetFailsafe(_ context.Context, m map[string]string) error {
	return s.guarded(func(w *world) { w.failsafe = maps.Clone(m) }) // maps.Clone(nil) is nil: deleted
}

func (s *fakeStore) SetFailover(_ context.Context, f cluster.Failover, _ int64) (bool, error) {
	return s.write(func(w *world) bool {
		if f.Empty() {
			w.failover = nil
		} else {
			w.failover = &f
		}
		return true
	})
}

func (s *fakeStore) WriteSync(_ context.Context, st cluster.SyncState, rev int64) (bool, error) {
	return s.write(func(w *world) bool {
		if w.leader == nil || w.leader.name != s.name || !syncRevIs(w, rev) {
			return false
		}
		if w.failSync[s.name] > 0 {
			w.failSync[s.name]--
			return false
		}
		w.rev++
		st.ModRevision = w.rev
		w.sync = &st
		w.checkSyncLocked(s.name + " wrote the sync key")
		return true
	})
}

func (s *fakeStore) DeleteSync(_ context.Context, rev int64) (bool, error) {
	return s.write(func(w *world) bool {
		if w.leader == nil || w.leader.name != s.name || !syncRevIs(w, rev) {
			return false
		}
		w.sync = nil
		return true
	})
}

// syncRevIs is the compare on the sync key's revision (0: absent).
func syncRevIs(w *world, rev int64) bool {
	if rev <= 0 {
		return w.sync == nil
	}
	return w.sync != nil && w.sync.ModRevision == rev
}

func (s *fakeStore) write(f func(w *world) bool) (bool, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.cut() {
		return false, errPartitioned
	}
	ok := f(s.w)
	if ok {
		s.w.changedLocked()
	}
	return ok, nil
}

func (s *fakeStore) Close(_ context.Context, revoke bool) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if revoke && !s.cut() {
		s.w.expireLeaseLocked(s.lease)
	}
	s.closed = true
	return nil
}
