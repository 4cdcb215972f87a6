package dcs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// TouchMember writes members/<name> on our lease when its value or our lease
// changed since the key was last seen; m.Name is ignored (the key uses ours).
func (s *Store) TouchMember(ctx context.Context, m cluster.Member) error {
	val, err := EncodeValue(m)
	if err != nil {
		return fmt.Errorf("dcs: encode member: %w", err)
	}
	rel := KeyMembers + s.cfg.Name
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	lease, err := s.ensureLease(ctx)
	if err != nil {
		return fmt.Errorf("dcs: touch member: %w", err)
	}
	if s.holds(rel, val, lease) {
		return nil
	}
	_, err = s.do(ctx, write{op: "touch member", rel: rel, value: val, lease: true})
	return err
}

// AttemptInitialize creates the initialize key with "" (create-only); false when it exists.
func (s *Store) AttemptInitialize(ctx context.Context) (bool, error) {
	return s.do(ctx, write{op: "attempt initialize", rel: KeyInitialize, value: []byte{},
		cmps: []clientv3.Cmp{s.absent(KeyInitialize)}})
}

// SetInitialize writes the system identifier into initialize. It is not
// leader-guarded: the bootstrap winner calls it before it holds the leader key.
func (s *Store) SetInitialize(ctx context.Context, sysid string) error {
	_, err := s.do(ctx, write{op: "set initialize", rel: KeyInitialize, value: []byte(sysid)})
	return err
}

// CancelInitialize deletes initialize (a failed bootstrap).
func (s *Store) CancelInitialize(ctx context.Context) error {
	_, err := s.do(ctx, write{op: "cancel initialize", rel: KeyInitialize, del: true})
	return err
}

// SetConfig writes the config key (compacted); with rev > 0 only if its
// mod_revision is still rev, with rev == 0 only if it does not exist.
func (s *Store) SetConfig(ctx context.Context, raw []byte, rev int64) (bool, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return false, fmt.Errorf("dcs: set config: not JSON: %w", err)
	}
	cmp := s.absent(KeyConfig)
	if rev > 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(s.key(KeyConfig)), "=", rev)
	}
	return s.do(ctx, write{op: "set config", rel: KeyConfig, value: buf.Bytes(), cmps: []clientv3.Cmp{cmp}})
}

// SetHistory writes the history key (leader-guarded); nil is written as [].
func (s *Store) SetHistory(ctx context.Context, h []cluster.HistoryEntry) error {
	if h == nil {
		h = []cluster.HistoryEntry{}
	}
	val, err := EncodeValue(h)
	if err != nil {
		return fmt.Errorf("dcs: encode history: %w", err)
	}
	return s.guardedPut(ctx, "set history", KeyHistory, val, false)
}

// SetStatus writes the status key when it changed (leader-guarded).
func (s *Store) SetStatus(ctx context.Context, st cluster.StatusKey) error {
	val, err := EncodeValue(st)
	if err != nil {
		return fmt.Errorf("dcs: encode status: %w", err)
	}
	return s.guardedPut(ctx, "set status", KeyStatus, val, true)
}

// SetFailsafe writes the failsafe key when it changed (leader-guarded); nil
// deletes it (failsafe_mode turned off), an empty map writes {}.
func (s *Store) SetFailsafe(ctx context.Context, members map[string]string) error {
	if members == nil {
		return s.guardedDelete(ctx, "delete failsafe", KeyFailsafe)
	}
	val, err := EncodeValue(members)
	if err != nil {
		return fmt.Errorf("dcs: encode failsafe: %w", err)
	}
	return s.guardedPut(ctx, "set failsafe", KeyFailsafe, val, true)
}

// SetFailover writes the failover key; with rev > 0 only if its mod_revision
// is still rev (false on conflict). An empty Failover is written as {}.
func (s *Store) SetFailover(ctx context.Context, f cluster.Failover, rev int64) (bool, error) {
	val, err := EncodeValue(f)
	if err != nil {
		return false, fmt.Errorf("dcs: encode failover: %w", err)
	}
	var cmps []clientv3.Cmp
	if rev > 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.key(KeyFailover)), "=", rev))
	}
	return s.do(ctx, write{op: "set failover", rel: KeyFailover, value: val, cmps: cmps})
}

// WriteSync writes the sync key ({"leader","sync_standby"}) only if its
// mod_revision is still rev, or, with rev == 0, only if it does not exist
// (Patroni's write_sync_state with the cluster's sync index), and only while
// the leader key holds our name: a deposed primary cannot publish; false on conflict.
func (s *Store) WriteSync(ctx context.Context, st cluster.SyncState, rev int64) (bool, error) {
	val, err := EncodeValue(st)
	if err != nil {
		return false, fmt.Errorf("dcs: encode sync: %w", err)
	}
	return s.do(ctx, write{op: "write sync", rel: KeySync, value: val, cmps: []clientv3.Cmp{s.leaderIsUs(), s.revIs(KeySync, rev)}})
}

// DeleteSync deletes the sync key only if its mod_revision is still rev
// (synchronous mode turned off), while the leader key holds our name; false on conflict.
func (s *Store) DeleteSync(ctx context.Context, rev int64) (bool, error) {
	return s.do(ctx, write{op: "delete sync", rel: KeySync, del: true, cmps: []clientv3.Cmp{s.leaderIsUs(), s.revIs(KeySync, rev)}})
}

// revIs compares rel's mod_revision with rev; rev == 0 means absent.
func (s *Store) revIs(rel string, rev int64) clientv3.Cmp {
	if rev <= 0 {
		return s.absent(rel)
	}
	return clientv3.Compare(clientv3.ModRevision(s.key(rel)), "=", rev)
}

// guardedPut writes rel only while the leader key holds our name; a failed
// compare is ErrNotLeader. With skipSame, a value the key already holds is not rewritten.
func (s *Store) guardedPut(ctx context.Context, op, rel string, val []byte, skipSame bool) error {
	if skipSame && s.holds(rel, val, 0) {
		return nil
	}
	return s.guarded(ctx, write{op: op, rel: rel, value: val})
}

// guarded runs w only while the leader key holds our name; a failed compare is ErrNotLeader.
func (s *Store) guarded(ctx context.Context, w write) error {
	w.cmps = []clientv3.Cmp{s.leaderIsUs()}
	ok, err := s.do(ctx, w)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("dcs: %s (%s): %w", w.op, s.key(w.rel), ErrNotLeader)
	}
	return nil
}

// guardedDelete deletes rel, when the cache has it, only while the leader key
// holds our name; a failed compare is ErrNotLeader.
func (s *Store) guardedDelete(ctx context.Context, op, rel string) error {
	s.mu.Lock()
	_, present := s.cache.entries[rel]
	s.mu.Unlock()
	if !present {
		return nil
	}
	return s.guarded(ctx, write{op: op, rel: rel, del: true})
}

// holds reports whether the cache has rel with exactly val on lease: our last
// write of it (applied at once) or a later identical one, not since deleted.
func (s *Store) holds(rel string, val []byte, lease int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cache.entries[rel]
	return ok && e.lease == lease && bytes.Equal(e.value, val)
}

// EncodeValue encodes a key's JSON value as Patroni does: no spaces, and
// without Go's HTML escaping. Every write of this package uses it.
func EncodeValue(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
