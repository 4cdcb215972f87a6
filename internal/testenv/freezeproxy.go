package testenv

import (
	"net"
	"sync"
	"testing"
)

// FreezeProxy forwards TCP connections on a loopback port to a target
// address. Freeze stops it moving bytes in both directions while every
// connection stays open: to its clients the target looks like a server that
// was stopped (SIGSTOP) or hangs, not one that went away. It is closed at
// test end.
type FreezeProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
	closed bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

// StartFreezeProxy listens on a free loopback port and forwards to target (host:port).
func StartFreezeProxy(t testing.TB, target string) *FreezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("freeze proxy listen: %v", err)
	}
	p := &FreezeProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept() // ends when Close closes the listener; Close waits for it
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *FreezeProxy) Addr() string { return p.ln.Addr().String() }

// Freeze stops forwarding; Thaw resumes it.
func (p *FreezeProxy) Freeze() { p.set(true) }

// Thaw resumes forwarding after Freeze.
func (p *FreezeProxy) Thaw() { p.set(false) }

func (p *FreezeProxy) set(frozen bool) {
	p.mu.Lock()
	p.frozen = frozen
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Close stops listening, closes every connection and waits for its goroutines.
func (p *FreezeProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conns := p.conns
	p.mu.Unlock()
	p.cond.Broadcast()
	_ = p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
}

func (p *FreezeProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = in.Close()
			_ = out.Close()
			return
		}
		p.conns = append(p.conns, in, out)
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(in, out) // both end when either side closes or Close runs
		go p.pipe(out, in)
	}
}

// pipe copies from src to dst, holding each chunk while the proxy is frozen.
func (p *FreezeProxy) pipe(src, dst net.Conn) {
	defer p.wg.Done()
	defer func() { _ = src.Close(); _ = dst.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.frozen && !p.closed {
				p.cond.Wait()
			}
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or closed: the other pipe ends when dst closes
			return
		}
	}
}
