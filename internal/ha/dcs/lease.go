package dcs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseState is this node's one lease. Guarded by Store.mu.
type leaseState struct {
	id         int64         // 0: none
	ttl        time.Duration // wanted TTL
	validUntil time.Time     // send time of the last successful renewal + TTL
	replace    bool          // grant a new lease (of ttl) at the next renewal
	adoptTried bool          // the startup look for our own live leader key is done
	failing    bool          // the last renewal failed (for logging transitions once)
	gone       [4]int64      // the last leases etcd reported expired or revoked
}

// LeaseValidUntil is the send time of the last successful renewal plus the TTL; zero without a lease.
func (s *Store) LeaseValidUntil() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease.validUntil
}

// LeaseGone reports whether etcd said lease id expired or was revoked (one
// of the last few): a leader key cached on it is gone too, whatever lease
// the Store holds now.
func (s *Store) LeaseGone(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return id != 0 && slices.Contains(s.lease.gone[:], id)
}

// SetTTL changes the TTL; the next renewal grants a new lease of that TTL
// (the old one is left to expire once the keys have moved to the new one).
func (s *Store) SetTTL(ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ttl <= 0 || ttl == s.lease.ttl {
		return
	}
	s.lease.ttl = ttl
	if s.lease.id != 0 {
		s.lease.replace = true
	}
	if s.watchCheck != nil {
		// The running watch's check paces itself by the ttl: it re-reads it now.
		s.watchCheck.Reset(0)
	}
}

// KeepAlive renews (or grants) the lease now and returns LeaseValidUntil.
func (s *Store) KeepAlive(ctx context.Context) (time.Time, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	return s.renew(ctx)
}

// ensureLease returns the current lease, granting one first if there is none
// or a replacement is due.
func (s *Store) ensureLease(ctx context.Context) (int64, error) {
	s.mu.Lock()
	id, replace := s.lease.id, s.lease.replace
	s.mu.Unlock()
	if id != 0 && !replace {
		return id, nil
	}
	if _, err := s.renew(ctx); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease.id == 0 {
		return 0, errors.New("dcs: no lease after renewal")
	}
	return s.lease.id, nil
}

// renew sends one keepalive on the Store's keepalive stream (its send time
// recorded, see kaStream), or grants a lease when there is none, it is gone, or a new TTL is
// due. On the very first call it adopts the lease of a live leader key that
// holds our name (pgnoded restarted within the TTL), so leadership survives.
func (s *Store) renew(ctx context.Context) (time.Time, error) {
	select {
	case s.renewSem <- struct{}{}:
		defer func() { <-s.renewSem }()
	case <-ctx.Done():
		return s.LeaseValidUntil(), fmt.Errorf("dcs: lease renewal: %w", ctx.Err())
	}
	s.mu.Lock()
	adopt := s.lease.id == 0 && !s.lease.adoptTried
	s.mu.Unlock()
	if adopt {
		if err := s.adopt(ctx); err != nil {
			return s.renewFailed(fmt.Errorf("dcs: look for own leader lease: %w", err))
		}
	}
	s.mu.Lock()
	id, replace, ttl := s.lease.id, s.lease.replace, s.lease.ttl
	s.mu.Unlock()
	if id == 0 || replace {
		return s.grant(ctx, ttl)
	}
	err := s.sendKeepAlive(ctx, id)
	if errors.Is(err, errLeaseNotFound) {
		return s.grant(ctx, ttl) // the receiver already dropped the lease (leaseGone)
	}
	if err != nil {
		return s.renewFailed(fmt.Errorf("dcs: keepalive lease %x: %w", id, err))
	}
	return s.LeaseValidUntil(), nil
}

// grant creates a new lease of ttl and makes it current.
func (s *Store) grant(ctx context.Context, ttl time.Duration) (time.Time, error) {
	sent := s.cfg.Now()
	resp, err := s.client.Grant(ctx, ttlSeconds(ttl))
	if err != nil {
		return s.renewFailed(fmt.Errorf("dcs: grant lease (ttl %s): %w", ttl, err))
	}
	s.log.Info("lease granted", "lease_id", fmt.Sprintf("%x", int64(resp.ID)), "ttl_s", resp.TTL)
	return s.renewed(int64(resp.ID), sent, resp.TTL, true), nil
}

// adopt looks for a leader key holding our name on a still-alive lease and takes that lease.
func (s *Store) adopt(ctx context.Context) error {
	resp, err := s.client.Get(ctx, s.key(KeyLeader))
	if err != nil {
		return err
	}
	var id int64
	if len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == s.cfg.Name {
		id = resp.Kvs[0].Lease
	}
	var granted int64
	if id != 0 {
		ttl, err := s.client.TimeToLive(ctx, clientv3.LeaseID(id))
		if err != nil {
			return err
		}
		if ttl.TTL <= 0 {
			id = 0
		}
		granted = ttl.GrantedTTL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lease.adoptTried = true
	if id == 0 || s.lease.id != 0 {
		return nil
	}
	s.lease.id = id
	s.lease.replace = granted != ttlSeconds(s.lease.ttl)
	s.log.Info("adopted the lease of our existing leader key", "lease_id", fmt.Sprintf("%x", id), "granted_ttl_s", granted)
	return nil
}

// renewed records a successful renewal or grant sent at sent.
func (s *Store) renewed(id int64, sent time.Time, ttlSec int64, granted bool) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease.failing {
		s.log.Info("lease renewal works again", "lease_id", fmt.Sprintf("%x", id))
	}
	s.lease.failing = false
	s.lease.id = id
	if granted {
		s.lease.replace = false
	}
	s.lease.validUntil = sent.Add(time.Duration(ttlSec) * time.Second)
	notify(s.renewedCh)
	return s.lease.validUntil
}

// renewFailed records a failed renewal and fires LeaseLost. A caller that
// cancelled its context (shutdown) is not a lease failure.
func (s *Store) renewFailed(err error) (time.Time, error) {
	if errors.Is(err, context.Canceled) {
		return s.LeaseValidUntil(), err
	}
	s.mu.Lock()
	if !s.lease.failing {
		s.log.Warn("lease renewal failed", "err", err, "valid_until", s.lease.validUntil)
	}
	s.lease.failing = true
	until := s.lease.validUntil
	s.mu.Unlock()
	notify(s.leaseLost)
	return until, err
}

// leaseGone forgets lease id after etcd said it does not exist, and fires LeaseLost.
func (s *Store) leaseGone(id int64) {
	s.mu.Lock()
	if s.lease.id == id {
		s.log.Warn("lease expired or was revoked", "lease_id", fmt.Sprintf("%x", id))
		s.lease.id = 0
		s.lease.validUntil = time.Time{}
	}
	if id != 0 && !slices.Contains(s.lease.gone[:], id) {
		copy(s.lease.gone[1:], s.lease.gone[:len(s.lease.gone)-1])
		s.lease.gone[0] = id
	}
	// etcd deleted every key on the lease with it (our leader and member
	// keys): drop them now rather than when the watch catches up, so that no
	// one acts on a leader key that is gone.
	dropped := s.cache.dropLease(id)
	s.mu.Unlock()
	notify(s.leaseLost)
	if dropped {
		notify(s.changed)
	}
}

// revoke revokes the current lease (clean shutdown): the leader and member keys go with it.
func (s *Store) revoke(ctx context.Context) error {
	s.mu.Lock()
	id := s.lease.id
	s.lease.id, s.lease.validUntil = 0, time.Time{}
	s.mu.Unlock()
	if id == 0 {
		return nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.client.Revoke(ctx, clientv3.LeaseID(id)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("dcs: revoke lease %x: %w", id, err)
	}
	s.log.Info("lease revoked", "lease_id", fmt.Sprintf("%x", id))
	return nil
}

// keepaliveLoop renews the lease every max(100ms, TTL/4) until ctx ends;
// each attempt is bounded so a dead etcd is noticed before the next period.
func (s *Store) keepaliveLoop(ctx context.Context) error {
	for {
		s.mu.Lock()
		ttl := s.lease.ttl
		s.mu.Unlock()
		every := keepaliveEvery(ttl)
		actx, cancel := context.WithTimeout(ctx, min(s.retryTimeout(), max(2*every, 500*time.Millisecond)))
		_, err := s.renew(actx)
		cancel()
		wait := every
		if err != nil {
			wait = progressEvery(ttl)
		}
		if sleep(ctx, wait) != nil {
			return nil
		}
	}
}
