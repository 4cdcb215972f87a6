package fence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Defaults for GuardConfig.
const (
	// DefaultQuitWait is how long the guard waits for the postmaster to exit
	// after SIGQUIT before it SIGKILLs it (and again after SIGKILL).
	DefaultQuitWait = time.Second
)

// ErrGuardRunning is returned by RunGuard when another guard holds the socket's lock.
var ErrGuardRunning = errors.New("fence: a guard is already running for this socket")

// GuardConfig configures RunGuard.
type GuardConfig struct {
	// Socket is the unix socket the guard listens on (mode 0600); required.
	Socket string
	// DataDir is postgres's data directory (for postmaster.pid); required.
	DataDir string
	// QuitWait is how long to wait for the postmaster after SIGQUIT; default DefaultQuitWait.
	QuitWait time.Duration
	// IdleExit ends the guard after it has been disarmed with no client for
	// this long (0: never). An armed guard never exits on its own.
	IdleExit time.Duration
	// Detach makes RunGuard start the real guard as a detached process (own
	// session, reparented away from the caller) and return once it answers;
	// Spawn uses it so pgnoded never has a guard child to reap.
	Detach bool
	// LogFile receives the detached guard's stdout and stderr (appended); "" is /dev/null. Detach only.
	LogFile string
	// Logger receives the guard's logs; nil logs text to stderr.
	Logger *slog.Logger

	// Release names an address the guard must take off this node when it fences
	// (the cluster VIP), so a node whose pgnoded died never keeps answering for
	// it. The guard does not interpret it: it passes it to OnFence.
	Release Release
	// OnFence runs when the guard fences, concurrently with stopping postgres
	// (cmd/pgnoded sets it to release the VIP); nil does nothing.
	OnFence func(ctx context.Context, r Release) error
}

// Release describes the VIP a guard releases when it fences (all empty: none).
type Release struct {
	Address   string // CIDR, e.g. 10.10.10.2/24
	Interface string // link name, or "" to find the link holding LocalIP
	LocalIP   string
}

// Empty reports that there is nothing to release.
func (r Release) Empty() bool { return r.Address == "" }

// Validate checks required fields and fills defaults.
func (c *GuardConfig) Validate() error {
	if c.Socket == "" {
		return errors.New("fence: guard socket path is required")
	}
	if c.DataDir == "" {
		return errors.New("fence: guard data directory is required")
	}
	// Absolute paths: a detached guard runs in / and its peers compare data directories.
	var err error
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return fmt.Errorf("fence: data directory: %w", err)
	}
	if c.Socket, err = filepath.Abs(c.Socket); err != nil {
		return fmt.Errorf("fence: socket: %w", err)
	}
	if c.QuitWait <= 0 {
		c.QuitWait = DefaultQuitWait
	}
	if c.IdleExit < 0 {
		return errors.New("fence: idle exit must not be negative")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return nil
}

// RunGuard runs the fencing guard until ctx ends (SIGTERM in the
// fence-guard subcommand) or it has been idle for IdleExit.
//
// While armed it stops the postmaster of DataDir (see stopPostmaster) as
// soon as CLOCK_BOOTTIME passes the last armed deadline; afterwards it stays
// disarmed until the next arm. Clients come and go without changing the
// deadline, so a crashed pgnoded that restarts and re-arms in time causes no
// fence, and a frozen one does.
//
// When ctx ends while armed, RunGuard does not leave the primary unguarded:
// it keeps serving until it is disarmed or has fenced, then returns.
func RunGuard(ctx context.Context, cfg GuardConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Detach {
		return detach(ctx, cfg)
	}
	logger := cfg.Logger.With("component", "fence-guard", "socket", cfg.Socket, "data_dir", cfg.DataDir)

	unlock, err := lockSocket(cfg.Socket)
	if err != nil {
		return err
	}
	defer unlock()
	ln, err := listen(cfg.Socket)
	if err != nil {
		return err
	}
	timer, err := newBootTimer()
	if err != nil {
		ln.Close()
		return err
	}
	g := &guard{
		cfg:    cfg,
		log:    logger,
		timer:  timer,
		reqs:   make(chan call),
		conns:  make(chan connEvent),
		done:   make(chan struct{}),
		fenced: make(chan error, 1),
	}
	srv := &server{ln: ln, g: g, log: logger, open: map[*serverConn]struct{}{}}
	srv.wg.Add(1)
	go srv.accept()
	logger.Info("fence guard started", "pid", os.Getpid())

	err = g.loop(ctx)

	close(g.done)
	srv.close()
	g.fenceWG.Wait()
	if cerr := timer.close(); cerr != nil && err == nil {
		err = fmt.Errorf("close timer: %w", cerr)
	}
	if rerr := os.Remove(cfg.Socket); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		logger.Warn("remove socket", "err", rerr)
	}
	logger.Info("fence guard stopped", "fences", g.fences)
	return err
}

// call is one request from a connection, answered on reply.
type call struct {
	req   request
	reply chan string
}

// connEvent reports a client connecting (+1) or disconnecting (-1).
type connEvent int

// guard is the state owned by the loop goroutine.
type guard struct {
	cfg   GuardConfig
	log   *slog.Logger
	timer *bootTimer
	reqs  chan call
	conns chan connEvent
	done  chan struct{} // closed when the loop has returned

	armed    bool
	deadline int64 // CLOCK_BOOTTIME ns, valid while armed
	clients  int
	fences   int
	draining bool
	idleFrom time.Time // time of the last request or client event (for IdleExit)

	fencing    bool
	fenceAgain bool // a deadline passed again while fencing
	fenced     chan error
	fenceWG    sync.WaitGroup
}

func (g *guard) loop(ctx context.Context) error {
	ctxDone := ctx.Done()
	var idle <-chan time.Time
	if g.cfg.IdleExit > 0 {
		tick := time.NewTicker(max(g.cfg.IdleExit/4, 10*time.Millisecond))
		defer tick.Stop()
		idle = tick.C
	}
	g.idleFrom = time.Now()
	for {
		select {
		case <-ctxDone:
			ctxDone = nil
			g.draining = true
			if g.armed || g.fencing {
				g.log.Warn("fence guard asked to stop while armed; it stops once disarmed or fenced",
					"remaining_ms", ms(time.Duration(g.deadline-bootNow())))
			}
		case c := <-g.reqs:
			c.reply <- g.handle(c.req)
			g.idleFrom = time.Now()
		case ev := <-g.conns:
			g.clients += int(ev)
			if ev > 0 {
				g.log.Debug("fence client connected", "clients", g.clients)
			} else if g.armed {
				g.log.Info("fence client disconnected while armed; the deadline stands",
					"clients", g.clients, "remaining_ms", ms(time.Duration(g.deadline-bootNow())))
			}
			g.idleFrom = time.Now()
		case <-g.timer.C():
			g.expire()
		case err := <-g.fenced:
			g.fencing = false
			if err != nil {
				g.log.Error("fence failed", "err", err)
			}
			if g.fenceAgain {
				g.fenceAgain = false
				g.startFence(0)
			}
		case <-idle:
			if !g.armed && !g.fencing && g.clients == 0 && time.Since(g.idleFrom) >= g.cfg.IdleExit {
				g.log.Info("fence guard idle: disarmed with no client", "for", g.cfg.IdleExit)
				return nil
			}
		}
		if g.draining && !g.armed && !g.fencing {
			return nil
		}
	}
}

// handle applies one request and returns the reply line.
func (g *guard) handle(r request) string {
	switch r.op {
	case opArm:
		if err := g.timer.set(r.deadline); err != nil {
			g.log.Error("arm timer", "err", err)
			return replyErr + " " + err.Error()
		}
		if !g.armed {
			g.log.Info("fence armed", "remaining_ms", ms(time.Duration(r.deadline-bootNow())))
		}
		g.armed, g.deadline = true, r.deadline
		// A deadline already passed is due now; the timer fires at once for it.
		return replyOK
	case opDisarm:
		if err := g.timer.stop(); err != nil {
			g.log.Error("disarm timer", "err", err)
		}
		if g.armed {
			g.log.Info("fence disarmed")
		}
		g.armed = false
		return replyOK
	case opStatus:
		return replyOK + " " + g.statusJSON()
	}
	return replyErr + " unknown request"
}

// expire handles a timer fire: fence if the armed deadline has passed.
func (g *guard) expire() {
	if !g.armed {
		return // disarmed after the kernel fired
	}
	now := bootNow()
	if now < g.deadline {
		// Stale fire for an earlier deadline; make sure the current one is set.
		if err := g.timer.set(g.deadline); err != nil {
			g.log.Error("re-arm timer", "err", err)
		}
		return
	}
	g.armed = false
	g.idleFrom = time.Now()
	late := time.Duration(now - g.deadline)
	if g.fencing {
		g.fenceAgain = true
		return
	}
	g.startFence(late)
}

// startFence stops postgres in a goroutine the loop waits for, so requests
// (a resumed pgnoded re-arming) are still answered while the postmaster exits.
func (g *guard) startFence(late time.Duration) {
	g.fences++
	g.fencing = true
	g.log.Warn("fence deadline passed without a pat: stopping postgres", "late_ms", ms(late), "clients", g.clients)
	g.fenceWG.Add(1)
	go func() {
		defer g.fenceWG.Done()
		g.fenced <- stopPostmaster(g.log, g.cfg.DataDir, g.cfg.QuitWait)
	}()
	if g.cfg.OnFence != nil && !g.cfg.Release.Empty() {
		g.fenceWG.Add(1)
		go func() {
			defer g.fenceWG.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := g.cfg.OnFence(ctx, g.cfg.Release); err != nil {
				g.log.Error("fence: releasing the VIP failed", "address", g.cfg.Release.Address, "err", err)
			} else {
				g.log.Warn("fence: VIP released", "address", g.cfg.Release.Address)
			}
		}()
	}
}
