package proc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Errors callers may test for with errors.Is.
var (
	ErrClosed         = errors.New("proc: closed (Run has returned)")
	ErrAlreadyRunning = errors.New("proc: postgres is already running")
	ErrNotRunning     = errors.New("proc: postgres is not running")
	ErrStartTimeout   = errors.New("proc: postgres did not accept connections in time")
	ErrNotInitialized = errors.New("proc: data directory is not initialized")
)

// Postgres owns the local postmaster: only it starts, stops, promotes or
// reconfigures postgres, and it watches the postmaster's exit through a pidfd.
// Run must be running for the object's lifetime: it owns the watcher goroutines.
// The postmaster outlives Postgres: neither Run returning nor pgnoded exiting stops it.
type Postgres struct {
	cfg  Config
	log  *slog.Logger
	user osUser

	ops chan struct{} // serialises lifecycle operations (ctx-aware mutex)

	connSem chan struct{}  // guards conn (ctx-aware mutex)
	conn    *pgconn.PgConn // the one local connection, nil until needed or after a failure

	mu          sync.Mutex
	pm          *postmaster   // the watched postmaster, nil when none runs
	exited      chan struct{} // closed and replaced when a postmaster exits
	state       cluster.PGState
	stopping    bool              // an exit now is requested, not a crash
	wantCmdline map[string]string // managed GUCs of the last written config
	major       int               // server major version * 10000, cached
	closed      bool
	stopWatch   chan struct{}
	wg          sync.WaitGroup
	runOnce     sync.Once
}

// New checks cfg (after WithDefaults) and returns the owner of its postgres. A
// postmaster already running on the data directory is adopted (and watched from
// now on), never restarted. Call Run next: it owns the watcher goroutines.
func New(cfg Config) (*Postgres, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proc config: %w", err)
	}
	for _, dir := range []*string{&cfg.DataDir, &cfg.ConfigDir, &cfg.SocketDir, &cfg.PgPass, &cfg.LogFile} {
		*dir = filepath.Clean(*dir)
	}
	u, err := lookupOSUser(cfg.OSUser)
	if err != nil {
		return nil, err
	}
	p := &Postgres{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "proc"),
		user:      u,
		ops:       make(chan struct{}, 1),
		connSem:   make(chan struct{}, 1),
		exited:    make(chan struct{}),
		state:     cluster.StateStopped,
		stopWatch: make(chan struct{}),
	}
	p.adopt()
	return p, nil
}

// Config returns the effective configuration (defaults filled).
func (p *Postgres) Config() Config { return p.cfg }

// Run owns the watcher goroutines and returns when ctx ends. It does not stop
// postgres: the postmaster keeps running (systemd KillMode=process). After Run
// returns, operations fail with ErrClosed.
func (p *Postgres) Run(ctx context.Context) error {
	ran := false
	p.runOnce.Do(func() { ran = true })
	if !ran {
		return errors.New("proc: Run called twice")
	}
	p.rotateLogs(ctx) // returns at once when rotation is off
	<-ctx.Done()
	p.mu.Lock()
	p.closed = true
	close(p.stopWatch)
	if p.pm != nil {
		p.pm.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.connSem <- struct{}{}
	p.closeConnLocked()
	<-p.connSem
	return nil
}

// Exited returns a channel that is closed when the watched postmaster exits
// (crash, kill or Stop); a fresh channel replaces it for the next exit.
func (p *Postgres) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// adopt watches the postmaster recorded in postmaster.pid if it is alive and
// belongs to our data directory. It reports whether one is watched afterwards.
func (p *Postgres) adopt() bool {
	p.mu.Lock()
	if p.pm != nil || p.closed {
		ok := p.pm != nil
		p.mu.Unlock()
		return ok
	}
	p.mu.Unlock()
	pm, pf, _ := findRunning(p.cfg.DataDir)
	if pm == nil {
		return false
	}
	if err := p.register(pm); err != nil {
		pm.close()
		return false
	}
	p.mu.Lock()
	if pf.Status == "starting" {
		p.state = cluster.StateStarting
	} else {
		p.state = cluster.StateRunning
	}
	p.mu.Unlock()
	p.log.Info("adopted running postmaster", "pid", pm.pid, "started", pm.started, "status", pf.Status)
	return true
}

// register makes pm the watched postmaster and starts its watcher.
func (p *Postgres) register(pm *postmaster) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.pm != nil {
		return ErrAlreadyRunning
	}
	p.pm = pm
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := pm.waitExit(p.stopWatch); err != nil {
			return // Run is returning; the postmaster lives on
		}
		p.handleExit(pm)
	}()
	return nil
}

// handleExit runs on the watcher goroutine the moment the postmaster exits.
func (p *Postgres) handleExit(pm *postmaster) {
	status := pm.reap()
	pm.close()
	p.mu.Lock()
	close(pm.done)
	expected := p.stopping
	if p.pm == pm {
		p.pm = nil
		p.stopping = false
		switch {
		case expected:
			p.state = cluster.StateStopped
		case p.state == cluster.StateStarting:
			p.state = cluster.StateStartFailed
		default:
			p.state = cluster.StateCrashed
		}
		close(p.exited)
		p.exited = make(chan struct{})
	}
	p.mu.Unlock()
	p.closeConn() // it talked to the dead postmaster
	if expected {
		p.log.Info("postmaster exited", "pid", pm.pid, "status", status)
	} else {
		p.log.Warn("postmaster exited unexpectedly", "pid", pm.pid, "status", status)
	}
}

// current returns the watched postmaster, adopting one started behind our back.
func (p *Postgres) current() *postmaster {
	p.mu.Lock()
	pm := p.pm
	p.mu.Unlock()
	if pm == nil && p.adopt() {
		p.mu.Lock()
		pm = p.pm
		p.mu.Unlock()
	}
	return pm
}

// currentIfIdle is current for observers: while a lifecycle operation runs
// (a start registering its child, a single-user recovery holding the lock
// file), only the operation may adopt.
func (p *Postgres) currentIfIdle() *postmaster {
	if len(p.ops) > 0 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.pm
	}
	return p.current()
}

// setState records a lifecycle state.
func (p *Postgres) setState(s cluster.PGState) {
	p.mu.Lock()
	p.state = s
	p.mu.Unlock()
}

// lockOps serialises lifecycle operations; the returned func unlocks.
func (p *Postgres) lockOps(ctx context.Context) (func(), error) {
	select {
	case p.ops <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		<-p.ops
		return nil, ErrClosed
	}
	return func() { <-p.ops }, nil
}

// DataDirEmpty reports whether the data directory is missing or has no PG_VERSION.
func (p *Postgres) DataDirEmpty() (bool, error) {
	_, err := os.Stat(filepath.Join(p.cfg.DataDir, "PG_VERSION"))
	if err == nil {
		return false, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	return false, fmt.Errorf("data dir: %w", err)
}
