package dcs

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// AcquireLeader (bounded by RetryTimeout as a whole) renews the lease, then takes the leader key with a
// create-only transaction on it; false (no error) when the key exists.
func (s *Store) AcquireLeader(ctx context.Context) (bool, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.KeepAlive(ctx); err != nil {
		return false, fmt.Errorf("dcs: acquire leader: %w", err)
	}
	return s.do(ctx, write{op: "acquire leader", rel: KeyLeader, value: []byte(s.cfg.Name), lease: true,
		cmps: []clientv3.Cmp{s.absent(KeyLeader)}})
}

// UpdateLeader renews the lease and makes sure the leader key holds our name
// on it. While the keepalive loop renews the lease on time and the watched
// cache, confirmed current lately, shows our name on our lease, that is the
// answer (case 1) without a request: an idle leader's cycle costs etcd
// nothing (heldFromCache). Otherwise the cases, checked against etcd:
//  1. our name on our lease: true, nothing written (the renewal is the heartbeat);
//  2. our name on another lease (lease replaced after expiry or SetTTL):
//     re-attach it, compare value == name;
//  3. no key (it expired or was deleted): re-create it, create-only;
//  4. another node's name: false.
func (s *Store) UpdateLeader(ctx context.Context) (bool, error) {
	if s.heldFromCache() {
		return true, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.KeepAlive(ctx); err != nil {
		return false, fmt.Errorf("dcs: update leader: %w", err)
	}
	s.mu.Lock()
	lease := s.lease.id
	s.mu.Unlock()
	key := s.key(KeyLeader)
	resp, err := s.client.Txn(ctx).
		If(s.leaderIsUs(), clientv3.Compare(clientv3.LeaseValue(key), "=", clientv3.LeaseID(lease))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return false, fmt.Errorf("dcs: update leader (%s): %w", key, err)
	}
	if resp.Succeeded {
		return true, nil
	}
	s.observe([]string{key}, resp.Responses, resp.Header.Revision)
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	switch {
	case len(kvs) == 0:
		s.log.Info("leader key vanished, re-creating it")
		return s.do(ctx, write{op: "re-create leader", rel: KeyLeader, value: []byte(s.cfg.Name), lease: true,
			cmps: []clientv3.Cmp{s.absent(KeyLeader)}})
	case string(kvs[0].Value) == s.cfg.Name:
		s.log.Info("moving the leader key to our current lease", "lease_id", fmt.Sprintf("%x", lease))
		return s.do(ctx, write{op: "re-attach leader", rel: KeyLeader, value: []byte(s.cfg.Name), lease: true,
			cmps: []clientv3.Cmp{s.leaderIsUs()}})
	default:
		return false, nil
	}
}

// heldFromCache reports that the leader key holds our name on our current
// lease in a cache confirmed current within one renewal period, and that the
// lease was renewed within one renewal period (plus a second of slack): etcd
// would answer UpdateLeader's compare the same way. The fence deadline does
// not depend on it: it follows the keepalive answers (LeaseValidUntil) alone.
func (s *Store) heldFromCache() bool {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lease
	e, ok := s.cache.entries[KeyLeader]
	every := keepaliveEvery(l.ttl)
	return ok && l.id != 0 && !l.replace && !l.failing && e.lease == l.id && string(e.value) == s.cfg.Name &&
		now.Sub(s.cache.readAt) < every+time.Second &&
		l.validUntil.After(now) && l.validUntil.Sub(now) > l.ttl-every-time.Second
}

// ReleaseLeader deletes the leader key if it still holds our name.
func (s *Store) ReleaseLeader(ctx context.Context) error {
	_, err := s.do(ctx, write{op: "release leader", rel: KeyLeader, del: true, cmps: []clientv3.Cmp{s.leaderIsUs()}})
	return err
}
