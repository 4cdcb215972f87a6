package dcs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// ErrNotLeader is returned (wrapped) by leader-guarded writes whose compare on
// the leader key failed: another node holds it, or nobody does.
var ErrNotLeader = errors.New("leader key does not hold this member's name")

// errClosed stops Run's goroutines when Close is called.
var errClosed = errors.New("dcs: store closed")

// Store is the etcd-backed ha.Store of one member.
type Store struct {
	cfg    Config
	client *clientv3.Client
	log    *slog.Logger
	prefix string // BasePath + "/"

	changed   chan struct{}
	leaseLost chan struct{}
	renewSem  chan struct{} // serialises lease renewals without blocking past a caller's ctx
	renewedCh chan struct{} // Renewed
	bg        context.Context
	bgCancel  context.CancelFunc // ends bg (the keepalive stream) in Close

	mu       sync.Mutex
	cache    cache
	lease    leaseState
	built    *cluster.View // the view parsed from cache at builtGen
	builtGen uint64
	ka       *kaStream               // the lease keepalive stream, nil until opened or after it ended
	lost     bool                    // the watch is down (Changed fired on loss, fires again on restore)
	pending  map[string]pendingWrite // own writes in flight

	watchCheck  *time.Timer // the running watch's staleness check (watch.go), pushed by each confirmation
	watchMember uint64      // the etcd member serving the running watch (0: not known yet)

	watchGen    atomic.Uint64 // incarnation of the watch (one per re-read)
	watchChecks atomic.Uint64 // times the watch's staleness check fired (tests)
	kaMember    atomic.Uint64 // the etcd member that answered the latest lease keepalive (tests)
	retry       atomic.Int64  // budget of one etcd request (retry_timeout), ns; follows the dynamic config

	closeOnce sync.Once
	closed    chan struct{}
	runMu     sync.Mutex
	runDone   chan struct{} // non-nil once Run started; closed when it returns
}

// New connects to etcd and returns a Store; call Run to start its watch and
// keepalive loops. With username/password, New retries transient connection
// failures until ctx ends and fails at once on bad credentials.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "dcs", "member", cfg.Name)
	hook := &watchStreamHook{}
	cfg.watchStreams = hook
	var client *clientv3.Client
	for {
		c, err := NewClient(cfg)
		if err == nil {
			client = c
			break
		}
		if isFatal(err) {
			return nil, err
		}
		log.Warn("etcd not reachable, retrying", "endpoints", cfg.Endpoints, "err", err)
		if err := sleep(ctx, progressEvery(cfg.TTL)); err != nil {
			return nil, fmt.Errorf("dcs: connect to etcd: %w", err)
		}
	}
	s := newStore(cfg, client, log)
	// A Watch stream clientv3 opened, ours or one it resumed on another
	// member, has not named its member yet.
	hook.set(func() { s.noteWatchMember(0) })
	return s, nil
}

func newStore(cfg Config, client *clientv3.Client, log *slog.Logger) *Store {
	s := &Store{
		cfg:       cfg,
		client:    client,
		log:       log,
		prefix:    cfg.BasePath + "/",
		changed:   make(chan struct{}, 1),
		leaseLost: make(chan struct{}, 1),
		renewSem:  make(chan struct{}, 1),
		renewedCh: make(chan struct{}, 1),
		cache:     newCache(),
		lease:     leaseState{ttl: cfg.TTL},
		pending:   map[string]pendingWrite{},
		closed:    make(chan struct{}),
	}
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	s.retry.Store(int64(cfg.RetryTimeout))
	return s
}

// SetRetryTimeout changes the budget of every later etcd request (the
// cluster's retry_timeout changed through the config key).
func (s *Store) SetRetryTimeout(d time.Duration) {
	if d > 0 && time.Duration(s.retry.Swap(int64(d))) != d {
		s.log.Info("etcd request budget changed", "retry_timeout", d)
	}
}

// retryTimeout is the budget of one etcd request.
func (s *Store) retryTimeout() time.Duration { return time.Duration(s.retry.Load()) }

// Run owns the watch and keepalive loops; it returns nil when ctx ends or the
// Store is closed, and an error only for a fatal condition (bad credentials).
func (s *Store) Run(ctx context.Context) error {
	s.runMu.Lock()
	if s.runDone != nil {
		s.runMu.Unlock()
		return errors.New("dcs: Run called twice")
	}
	done := make(chan struct{})
	s.runDone = done
	s.runMu.Unlock()
	defer close(done)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.watchLoop(gctx) })
	g.Go(func() error { return s.keepaliveLoop(gctx) })
	g.Go(func() error {
		select {
		case <-s.closed:
			return errClosed
		case <-gctx.Done():
			return nil
		}
	})
	if err := g.Wait(); err != nil && !errors.Is(err, errClosed) {
		return err
	}
	return nil
}

// Close stops the loops and, with revoke, revokes the lease so the leader and
// member keys disappear at once (clean shutdown); then it closes the client.
func (s *Store) Close(ctx context.Context, revoke bool) error {
	first := false
	s.closeOnce.Do(func() { first = true; close(s.closed) })
	if !first {
		return nil
	}
	s.runMu.Lock()
	done := s.runDone
	s.runMu.Unlock()
	var errs []error
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("dcs: close: waiting for loops: %w", ctx.Err()))
		}
	}
	if revoke {
		if err := s.revoke(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.bgCancel()
	if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, fmt.Errorf("dcs: close etcd client: %w", err))
	}
	return errors.Join(errs...)
}

// View returns the cached cluster view. It is parsed again only after a key
// changed (an idle cluster's cycles parse nothing); its maps and pointers are
// shared between callers and must not be modified.
func (s *Store) View() cluster.View {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.built == nil || s.builtGen != s.cache.gen {
		v := buildView(s.cache.entries)
		s.built, s.builtGen = &v, s.cache.gen
	}
	v := *s.built
	v.Revision = s.cache.rev
	v.ReadAt = s.cache.readAt
	return v
}

// Changed fires when a significant key changes or the watch is lost or restored.
func (s *Store) Changed() <-chan struct{} { return s.changed }

// LeaseLost fires when a keepalive fails or the lease turns out expired or revoked.
func (s *Store) LeaseLost() <-chan struct{} { return s.leaseLost }

// notify wakes a listener without ever blocking.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// key returns the full etcd key of a relative key.
func (s *Store) key(rel string) string { return s.prefix + rel }

// opCtx bounds one etcd request by RetryTimeout.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.retryTimeout())
}

// isFatal reports errors that retrying cannot fix (bad credentials, no permission).
func isFatal(err error) bool {
	return errors.Is(err, rpctypes.ErrAuthFailed) || errors.Is(err, rpctypes.ErrPermissionDenied) ||
		errors.Is(err, rpctypes.ErrUserEmpty)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetEndpoints points the etcd client at new endpoints (a reload changed
// etcd3.hosts). The client, and with it the lease, the leader key and the
// watch, are kept: requests in flight finish on their connection and the
// next ones go to the new endpoints.
func (s *Store) SetEndpoints(endpoints []string) {
	s.client.SetEndpoints(endpoints...)
	s.log.Info("etcd endpoints changed", "endpoints", endpoints)
}
