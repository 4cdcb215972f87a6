package dcs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errLeaseNotFound is a keepalive answer with TTL ≤ 0: etcd no longer knows the lease.
var errLeaseNotFound = errors.New("lease not found")

// kaStream is the one long-lived LeaseKeepAlive stream a Store renews its
// lease on. pgnoded drives it itself rather than through clientv3's automatic
// KeepAlive: every request's send time is recorded, and the answer etcd gives
// to that request moves LeaseValidUntil to send time + TTL, which is what the
// fence deadlines are computed from. etcd answers the requests of one stream
// in order (one renewal at a time), so answers are matched to requests FIFO.
// A new stream per renewal (clientv3's KeepAliveOnce) costs etcd a stream set
// up and torn down every few seconds; one stream stays open while it works.
type kaStream struct {
	stream pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc

	mu      sync.Mutex
	pending []kaRequest // sent, not yet answered, oldest first
	err     error       // why the stream ended; nil while it works
}

// kaRequest is one keepalive request in flight.
type kaRequest struct {
	id     int64
	sent   time.Time
	answer chan error // buffered (1): nil, errLeaseNotFound, or the stream's error
}

// openKeepAlive returns the working stream, opening one when there is none.
// The stream lives on the Store's own context (ended by Close), never on a
// caller's, so one renewal's deadline does not end it; opening it (gRPC waits
// for a connection) is bounded by ctx all the same.
func (s *Store) openKeepAlive(ctx context.Context) (*kaStream, error) {
	s.mu.Lock()
	ka := s.ka
	s.mu.Unlock()
	if ka != nil {
		ka.mu.Lock()
		err := ka.err
		ka.mu.Unlock()
		if err == nil {
			return ka, nil
		}
	}
	sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(s.bg))
	giveUp := context.AfterFunc(ctx, cancel) // the caller's deadline ends the opening, not the open stream
	stream, err := pb.NewLeaseClient(s.client.ActiveConnection()).LeaseKeepAlive(sctx)
	if !giveUp() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("dcs: open lease keepalive stream: %w", err)
	}
	ka = &kaStream{stream: stream, cancel: cancel}
	s.mu.Lock()
	s.ka = ka
	s.mu.Unlock()
	go s.receiveKeepAlives(ka) // owned by the stream: ends when the stream does (error or Close)
	return ka, nil
}

// sendKeepAlive sends one keepalive for lease id on the stream and waits for
// etcd's answer to it until ctx ends. A request whose ctx ends unanswered ends
// the stream (its pending requests fail); an answer arriving after that is
// dropped, never applied: validity only moves on answers matched to their request.
func (s *Store) sendKeepAlive(ctx context.Context, id int64) error {
	ka, err := s.openKeepAlive(ctx)
	if err != nil {
		return err
	}
	req := kaRequest{id: id, sent: s.cfg.Now(), answer: make(chan error, 1)}
	ka.mu.Lock()
	if ka.err != nil {
		err := ka.err
		ka.mu.Unlock()
		return err
	}
	ka.pending = append(ka.pending, req)
	ka.mu.Unlock()
	if err := ka.stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
		ka.end(fmt.Errorf("dcs: send keepalive: %w", err))
		return <-req.answer
	}
	select {
	case err := <-req.answer:
		return err
	case <-ctx.Done():
		// Unanswered in time: this stream may be stuck behind a dead or
		// frozen member; the next renewal opens a new one.
		ka.end(fmt.Errorf("dcs: keepalive not answered in time: %w", ctx.Err()))
		return ctx.Err()
	}
}

// receiveKeepAlives reads the stream's answers until it ends, applying each to
// the lease: renewed from its request's send time, or gone when etcd no
// longer knows it.
func (s *Store) receiveKeepAlives(ka *kaStream) {
	for {
		resp, err := ka.stream.Recv()
		if err != nil {
			ka.end(fmt.Errorf("dcs: lease keepalive stream: %w", err))
			s.mu.Lock()
			if s.ka == ka {
				s.ka = nil
			}
			s.mu.Unlock()
			return
		}
		ka.mu.Lock()
		if len(ka.pending) == 0 {
			ka.mu.Unlock()
			s.log.Warn("unexpected lease keepalive answer", "lease_id", fmt.Sprintf("%x", resp.ID))
			continue
		}
		req := ka.pending[0]
		ka.pending = ka.pending[1:]
		ka.mu.Unlock()
		if resp.ID != req.id {
			// etcd answers a stream's requests in order; an answer for another
			// lease means the pairing is lost: apply nothing, end the stream.
			err := fmt.Errorf("lease keepalive answer for %x, sent for %x", resp.ID, req.id)
			req.answer <- err
			ka.end(err)
			continue
		}
		var answer error
		if resp.TTL <= 0 {
			s.leaseGone(req.id)
			answer = errLeaseNotFound
		} else {
			if s.renewedOn(req.id, req.sent, resp.TTL) {
				notify(s.renewedCh)
			}
			if resp.Header != nil {
				s.confirmKeepAlive(req.sent, resp.Header.Revision, resp.Header.MemberId)
			}
		}
		req.answer <- answer
	}
}

// end marks the stream ended with err and fails every request still waiting.
func (ka *kaStream) end(err error) {
	ka.cancel()
	ka.mu.Lock()
	if ka.err == nil {
		ka.err = err
	}
	pending := ka.pending
	ka.pending = nil
	ka.mu.Unlock()
	for _, r := range pending {
		r.answer <- err
	}
}

// renewedOn records etcd's answer to a keepalive of lease id sent at sent. An
// answer for a lease the Store no longer holds (replaced meanwhile), or older
// than what is recorded, changes nothing. It reports whether LeaseValidUntil moved.
func (s *Store) renewedOn(id int64, sent time.Time, ttlSec int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease.id != id {
		return false
	}
	if s.lease.failing {
		s.log.Info("lease renewal works again", "lease_id", fmt.Sprintf("%x", id))
	}
	s.lease.failing = false
	until := sent.Add(time.Duration(ttlSec) * time.Second)
	if !until.After(s.lease.validUntil) {
		return false
	}
	s.lease.validUntil = until
	return true
}

// Renewed fires (never blocking) after a lease renewal or grant moved LeaseValidUntil.
func (s *Store) Renewed() <-chan struct{} { return s.renewedCh }
