package fence

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// replyWriteTimeout bounds a reply write so a stuck client only stalls its own connection.
const replyWriteTimeout = time.Second

// lockSocket takes an exclusive flock next to the socket for the guard's
// lifetime, so two guards can never serve (and fence for) one socket; the
// kernel drops it when the process dies. The returned func releases it.
func lockSocket(socket string) (func(), error) {
	f, err := os.OpenFile(lockPath(socket), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fence: open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrGuardRunning
		}
		return nil, fmt.Errorf("fence: lock %s: %w", lockPath(socket), err)
	}
	return func() { f.Close() }, nil
}

// listen binds the socket (replacing a stale file: the caller holds the
// lock, so no live guard owns it) and restricts it to the owner.
func listen(socket string) (*net.UnixListener, error) {
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("fence: remove stale socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("fence: listen: %w", err)
	}
	ln.SetUnlinkOnClose(false) // RunGuard removes it after its last request
	if err := os.Chmod(socket, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("fence: chmod socket: %w", err)
	}
	return ln, nil
}

// server accepts connections and relays their requests to the guard's loop.
type server struct {
	ln  *net.UnixListener
	g   *guard
	log *slog.Logger

	mu     sync.Mutex
	open   map[*serverConn]struct{}
	closed bool
	wg     sync.WaitGroup // the accept goroutine and one per connection
}

type serverConn struct{ *net.UnixConn }

func (s *server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // e.g. EMFILE: back off instead of spinning
			s.log.Warn("fence accept", "err", err)
			select {
			case <-s.g.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if err := checkPeer(c); err != nil {
			s.log.Warn("fence client refused", "err", err)
			c.Close()
			continue
		}
		sc := &serverConn{c}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.open[sc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(sc)
	}
}

// close stops accepting, ends every connection and waits for their
// goroutines. Connections are ended through their read side only, so a
// reply already decided (the disarm that let the guard stop) is still sent.
func (s *server) close() {
	s.mu.Lock()
	s.closed = true
	s.ln.Close()
	for c := range s.open {
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *server) serve(c *serverConn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.open, c)
		s.mu.Unlock()
	}()
	if !s.g.event(+1) {
		return
	}
	defer s.g.event(-1)

	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 128), maxLine)
	for sc.Scan() {
		var reply string
		if req, err := parseRequest(sc.Text()); err != nil {
			reply = replyErr + " " + err.Error()
		} else if reply, err = s.g.call(req); err != nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(replyWriteTimeout))
		if _, err := c.Write([]byte(reply + "\n")); err != nil {
			return
		}
	}
}

// checkPeer admits only processes of the guard's own user, and root.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer uid %d (pid %d) is neither root nor the guard's uid", cred.Uid, cred.Pid)
	}
	return nil
}

// errStopped means the guard's loop has returned.
var errStopped = errors.New("fence guard stopped")

// call hands a request to the loop and waits for its reply.
func (g *guard) call(req request) (string, error) {
	c := call{req: req, reply: make(chan string, 1)}
	select {
	case g.reqs <- c:
		// The loop answers every request it takes before doing anything else,
		// so the reply is there even if the loop returns right after.
		return <-c.reply, nil
	case <-g.done:
		return "", errStopped
	}
}

// event reports a connection change to the loop; false once the loop is gone.
func (g *guard) event(ev connEvent) bool {
	select {
	case g.conns <- ev:
		return true
	case <-g.done:
		return false
	}
}

func (g *guard) statusJSON() string {
	st := Status{
		PID:      os.Getpid(),
		DataDir:  g.cfg.DataDir,
		Armed:    g.armed,
		Clients:  g.clients,
		Fences:   g.fences,
		Fencing:  g.fencing,
		Draining: g.draining,
	}
	if g.armed {
		st.RemainingNS = g.deadline - bootNow()
	}
	raw, err := json.Marshal(st)
	if err != nil { // a struct of plain fields always marshals
		return "{}"
	}
	return string(raw)
}
