package dcs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

var (
	errWatchClosed = errors.New("watch channel closed")
	errWatchStale  = errors.New("no watch confirmation from etcd")
)

// watchLoop keeps the cache current: a linearizable read of the prefix, then
// a watch from that read's revision; when the watch fails, is compacted or
// goes silent, it reads and watches again (Changed fires on loss and on restore). It returns nil when ctx ends and an
// error only when etcd rejects our credentials.
func (s *Store) watchLoop(ctx context.Context) error {
	failing := false
	for {
		rev, err := s.reload(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if isFatal(err) {
				return err
			}
			if !failing {
				s.log.Warn("cannot read the cluster from etcd", "err", err)
			}
			failing = true
			s.markLost()
			if sleep(ctx, progressEvery(s.ttl())) != nil {
				return nil
			}
			continue
		}
		if failing {
			s.log.Info("reading the cluster from etcd works again", "revision", rev)
		}
		failing = false
		err = s.watch(ctx, rev)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("etcd watch lost, re-reading", "err", err)
		s.markLost()
	}
}

// ttl is the current lease TTL, which also paces the watch.
func (s *Store) ttl() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease.ttl
}

// reload reads every key under the prefix and installs it in the cache.
func (s *Store) reload(ctx context.Context) (int64, error) {
	rctx, cancel := s.opCtx(ctx)
	defer cancel()
	sent := s.cfg.Now()
	resp, err := s.client.Get(rctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("dcs: read %s: %w", s.prefix, err)
	}
	fresh := make(map[string]entry, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		fresh[strings.TrimPrefix(string(kv.Key), s.prefix)] = entry{value: kv.Value, modRev: kv.ModRevision, lease: kv.Lease}
	}
	rev := resp.Header.Revision
	s.mu.Lock()
	s.cache.replace(fresh, rev)
	s.cache.readAt = sent
	s.cache.heldUntil = sent.Add(watchHold(s.lease.ttl, false))
	s.cache.ready = true
	wasLost := s.lost
	s.lost = false
	s.mu.Unlock()
	// Changed fires on every (re)load: the first read, and a restored watch,
	// may both carry changes the HA loop has not seen.
	notify(s.changed)
	if wasLost {
		s.log.Info("etcd watch restored", "revision", rev)
	}
	return rev, nil
}

// markLost records that the watch is down and fires Changed once per loss.
func (s *Store) markLost() {
	s.mu.Lock()
	was := s.lost
	s.lost = true
	s.mu.Unlock()
	if !was {
		notify(s.changed)
	}
}

// watch applies events after rev until the watch fails or goes silent. When
// nothing confirmed the cache current for confirmedFor (1.5 × min(2s, TTL/4),
// or a keepalive period and a little at ttl above 10 s), it asks etcd for a
// progress notification: each answer confirms the cache is
// current, so a frozen or partitioned etcd makes View().ReadAt go stale
// instead of looking fresh forever.
func (s *Store) watch(ctx context.Context, rev int64) error {
	// RequireLeader: a member cut off from its cluster's leader cancels the
	// watch instead of serving a stale stream. clientv3 shares one gRPC stream
	// per distinct outgoing metadata; a per-incarnation tag gives every watch a
	// fresh stream, so a new watch never queues behind a broken one that is
	// still reconnecting. RequestProgress must use this same context to reach it.
	gen := s.watchGen.Add(1)
	wctx := metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx), "pgnoded-watch", strconv.FormatUint(gen, 10))
	wctx, cancel := context.WithCancel(wctx)
	defer cancel()
	// Start at the read's own revision, not rev+1: etcd answers progress
	// requests only for watchers whose start revision it has reached, so a
	// watch from rev+1 on an idle cluster would never be confirmed. Events at
	// rev itself are already in the cache and re-apply as no-ops.
	// WithCreatedNotify: the created answer names the member serving the
	// watch before any event or progress notification does (watchMember).
	s.noteWatchMember(0)
	wch := s.client.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev),
		clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())

	every := progressEvery(s.ttl())
	// check fires when the cache's hold runs out: every confirmation (an
	// event, a progress notification, a lease keepalive answered by this
	// watch's member) pushes it to the end of its hold (watchHold) without
	// waking this goroutine, so on an idle cluster whose keepalives confirm
	// the view it never fires. Unconfirmed, it fires every `every` to ask
	// for progress and to notice a dead watch.
	check := time.NewTimer(every)
	defer check.Stop()
	s.armWatchCheck(check)
	defer s.armWatchCheck(nil)
	var pendingSince, lastSent time.Time // first unanswered progress request, latest request
	started := s.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-wch:
			if !ok {
				return errWatchClosed
			}
			if err := resp.Err(); err != nil {
				return err
			}
			if resp.Canceled {
				return errWatchClosed
			}
			s.noteWatchMember(resp.Header.MemberId)
			switch {
			case resp.IsProgressNotify():
				at := pendingSince
				if at.IsZero() {
					at = s.cfg.Now()
				}
				pendingSince = time.Time{}
				s.confirm(at, resp.Header.Revision)
			case len(resp.Events) > 0:
				s.applyEvents(resp.Events)
			}
		case <-check.C:
			s.watchChecks.Add(1)
			ttl := s.ttl() // it may have changed: SetTTL fires the check at once
			every = progressEvery(ttl)
			now := s.cfg.Now()
			last, held := s.confirmedAt()
			if now.Sub(held) > watchGiveUp(ttl) && now.Sub(last) > time.Second && now.Sub(started) > max(3*every, time.Second) {
				return errWatchStale
			}
			if due := held.Sub(now); due > 0 {
				// Confirmed lately (an event, or a lease keepalive answered at a
				// revision the cache has: confirmKeepAlive): on an idle cluster
				// the keepalives alone keep the view fresh, no progress requests.
				check.Reset(due)
				continue
			}
			check.Reset(every)
			if pendingSince.IsZero() || now.Sub(lastSent) >= 2*every {
				if pendingSince.IsZero() {
					pendingSince = now
				}
				lastSent = now
				pctx, pcancel := context.WithTimeout(wctx, every)
				err := s.client.RequestProgress(pctx)
				pcancel()
				if err != nil && ctx.Err() == nil {
					s.log.Debug("watch progress request failed", "err", err)
				}
			}
		}
	}
}

// confirmKeepAlive records a lease keepalive sent at sent and answered by
// etcd member member at revision rev: when the cache holds every change up to
// rev, it was current at sent (no progress request needed to know it). Only
// the watch's own member counts: clientv3 spreads streams over the members,
// and an answer from another one proves the data current but not that the
// watch still delivers; with its member frozen, an idle cluster's keepalives
// would otherwise confirm a dead watch until the first change it misses (the
// leader key's deletion, say). Then the watch's progress requests prove it.
func (s *Store) confirmKeepAlive(sent time.Time, rev int64, member uint64) {
	s.kaMember.Store(member)
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= 0 || !s.cache.ready || rev > s.cache.watchRev || member == 0 || member != s.watchMember {
		return
	}
	s.confirmedLocked(sent, true)
}

// noteWatchMember records the etcd member serving the watch (0: a new watch,
// not known yet). A watch clientv3 resumed on another member names it in its
// next answer.
func (s *Store) noteWatchMember(member uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchMember = member
}

// armWatchCheck registers the running watch's check timer (nil: none runs).
func (s *Store) armWatchCheck(t *time.Timer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchCheck = t
}

// confirmedLocked records that the cache was current at t (s.mu is held),
// by a lease keepalive or otherwise (watchHold), and, when that holds the
// watch's check longer than before, moves the check to the hold's end.
// Timer.Reset is safe from any goroutine, and a check that still fires early
// only re-arms itself.
func (s *Store) confirmedLocked(t time.Time, byKeepalive bool) {
	if t.After(s.cache.readAt) {
		s.cache.readAt = t
	}
	until := t.Add(watchHold(s.lease.ttl, byKeepalive))
	if !until.After(s.cache.heldUntil) {
		return
	}
	s.cache.heldUntil = until
	if s.watchCheck == nil {
		return
	}
	if due := until.Sub(s.cfg.Now()); due > 0 {
		s.watchCheck.Reset(due)
	}
}

// confirmedAt is when the cache was last confirmed current, and until when
// that keeps the watch's check quiet.
func (s *Store) confirmedAt() (readAt, heldUntil time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache.readAt, s.cache.heldUntil
}

// confirm records a progress notification: the cache is current as of at and rev.
func (s *Store) confirm(at time.Time, rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.confirmedLocked(at, false)
	s.cache.rev = max(s.cache.rev, rev)
	s.cache.watchRev = max(s.cache.watchRev, rev)
	s.cache.prune(rev)
}

// applyEvents applies watch events and fires Changed for significant ones.
func (s *Store) applyEvents(events []*clientv3.Event) {
	s.mu.Lock()
	significant := false
	var last int64
	for _, ev := range events {
		rel := strings.TrimPrefix(string(ev.Kv.Key), s.prefix)
		modRev := ev.Kv.ModRevision
		last = max(last, modRev)
		var sig bool
		got := pendingWrite{value: ev.Kv.Value, del: ev.Type == clientv3.EventTypeDelete, lease: ev.Kv.Lease}
		if got.del {
			sig = s.cache.del(rel, modRev)
		} else {
			sig = s.cache.put(rel, entry{value: got.value, modRev: modRev, lease: got.lease})
		}
		if p, ok := s.pending[rel]; ok && p.equal(got) {
			sig = false // our own write, seen before its response
		}
		significant = significant || sig
	}
	s.cache.prune(last)
	s.cache.watchRev = max(s.cache.watchRev, last)
	s.confirmedLocked(s.cfg.Now(), false)
	s.mu.Unlock()
	if significant {
		notify(s.changed)
	}
}
