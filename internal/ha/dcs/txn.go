package dcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// write is one conditional change of one key.
type write struct {
	op    string // what the caller is doing, for errors
	rel   string // key relative to the base path
	value []byte
	del   bool           // delete instead of put
	lease bool           // attach our lease to the put
	cmps  []clientv3.Cmp // all must hold; none: unconditional
}

// do runs w as one transaction bounded by RetryTimeout: If(cmps) Then(the
// write) Else(read the compared keys). It reports false, nil when a compare
// failed and an error only when etcd could not be asked. A put on a lease etcd
// no longer knows grants a new lease and is tried once more.
func (s *Store) do(ctx context.Context, w write) (bool, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	ok, lease, err := s.try(ctx, w)
	if w.lease && errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.leaseGone(lease)
		ok, _, err = s.try(ctx, w)
	}
	if err != nil {
		return false, fmt.Errorf("dcs: %s (%s): %w", w.op, s.key(w.rel), err)
	}
	return ok, nil
}

// try runs w once; it returns the lease it attached (if any).
func (s *Store) try(ctx context.Context, w write) (bool, int64, error) {
	key := s.key(w.rel)
	var lease int64
	var then clientv3.Op
	if w.del {
		then = clientv3.OpDelete(key)
	} else {
		var opts []clientv3.OpOption
		if w.lease {
			id, err := s.ensureLease(ctx)
			if err != nil {
				return false, 0, err
			}
			lease = id
			opts = append(opts, clientv3.WithLease(clientv3.LeaseID(id)))
		}
		then = clientv3.OpPut(key, string(w.value), opts...)
	}
	var reads []string
	for i := range w.cmps {
		k := string(w.cmps[i].KeyBytes())
		if !slices.Contains(reads, k) {
			reads = append(reads, k)
		}
	}
	elses := make([]clientv3.Op, len(reads))
	for i, k := range reads {
		elses[i] = clientv3.OpGet(k)
	}
	// While the transaction is in flight its own watch event may arrive
	// before the response; the pending mark keeps that event from waking the HA loop.
	mark := pendingWrite{value: w.value, del: w.del, lease: lease}
	s.mu.Lock()
	s.pending[w.rel] = mark
	s.mu.Unlock()
	resp, err := s.client.Txn(ctx).If(w.cmps...).Then(then).Else(elses...).Commit()
	s.mu.Lock()
	if p, ok := s.pending[w.rel]; ok && p.equal(mark) {
		delete(s.pending, w.rel)
	}
	s.mu.Unlock()
	if err != nil {
		return false, lease, err
	}
	rev := resp.Header.Revision
	if resp.Succeeded {
		// Our own write: applied now, without a wake-up; the watch's copy of it is a no-op.
		s.mu.Lock()
		if w.del {
			s.cache.del(w.rel, rev)
		} else {
			s.cache.put(w.rel, entry{value: w.value, modRev: rev, lease: lease})
		}
		s.mu.Unlock()
		return true, lease, nil
	}
	s.observe(reads, resp.Responses, rev)
	return false, lease, nil
}

// observe applies what a failed transaction read (the keys it compared):
// news from other nodes, so Changed fires when it matters.
func (s *Store) observe(keys []string, responses []*etcdserverpb.ResponseOp, rev int64) {
	significant := false
	s.mu.Lock()
	for i, r := range responses {
		rr := r.GetResponseRange()
		if rr == nil || i >= len(keys) {
			continue
		}
		rel := strings.TrimPrefix(keys[i], s.prefix)
		if len(rr.Kvs) == 0 {
			significant = s.cache.del(rel, rev) || significant
			continue
		}
		kv := rr.Kvs[0]
		significant = s.cache.put(rel, entry{value: kv.Value, modRev: kv.ModRevision, lease: kv.Lease}) || significant
	}
	s.mu.Unlock()
	if significant {
		notify(s.changed)
	}
}

// leaderIsUs is the compare that guards every write made as leader.
func (s *Store) leaderIsUs() clientv3.Cmp {
	return clientv3.Compare(clientv3.Value(s.key(KeyLeader)), "=", s.cfg.Name)
}

// absent is the create-only compare.
func (s *Store) absent(rel string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(s.key(rel)), "=", 0)
}

// pendingWrite is an own write in flight, by relative key.
type pendingWrite struct {
	value []byte
	del   bool
	lease int64
}

func (p pendingWrite) equal(o pendingWrite) bool {
	return p.del == o.del && p.lease == o.lease && bytes.Equal(p.value, o.value)
}
