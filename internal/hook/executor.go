package hook

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// executor runs one callback at a time (Patroni's CallbackExecutor and
// OnReloadExecutor). A call while one runs kills the running one and its
// descendants; the newest call runs next, once the old one is gone (one that
// cannot be killed, e.g. under sudo, is waited for, as Patroni does). Calls arriving while a kill is under
// way replace each other: only the newest runs (Patroni keeps one pending
// command). The reload executor sends SIGTERM before the kill, as Patroni's
// OnReloadExecutor cancels before it kills.
type executor struct {
	r       *Runner
	term    bool // SIGTERM before SIGKILL
	mu      sync.Mutex
	pending *job
	cur     *job
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	closed  bool
}

// job is one callback run.
type job struct {
	name   string
	argv   []string
	pid    int
	killed bool
}

func newExecutor(r *Runner, term bool) *executor {
	e := &executor{r: r, term: term, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go e.loop()
	return e
}

func (e *executor) call(name string, argv []string) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.pending = &job{name: name, argv: argv}
	cur := e.cur
	if cur != nil && cur.pid > 0 && !cur.killed {
		cur.killed = true
		e.r.log.Warn("killing a callback because another one arrived while it was still running",
			"callback", cur.name, "pid", cur.pid, "next", name)
		if e.term {
			_ = syscall.Kill(cur.pid, syscall.SIGTERM)
		}
		killTree(cur.pid)
	}
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// loop is the executor's worker: it runs the pending job, waits for it, and
// takes the next one.
func (e *executor) loop() {
	defer close(e.done)
	for {
		select {
		case <-e.quit:
			return
		case <-e.wake:
		}
		for {
			e.mu.Lock()
			j := e.pending
			e.pending = nil
			if j == nil || e.closed {
				e.mu.Unlock()
				break
			}
			cmd := e.r.command(j.argv)
			out := &limitedBuffer{max: outputLimit}
			cmd.Stdout, cmd.Stderr = out, out
			start := time.Now()
			if err := cmd.Start(); err != nil {
				e.mu.Unlock()
				e.r.finished(j.name, j.argv, start, "error", out, err)
				continue
			}
			j.pid = cmd.Process.Pid
			e.cur = j
			e.mu.Unlock()
			err := cmd.Wait()
			e.mu.Lock()
			e.cur = nil
			killed := j.killed
			e.mu.Unlock()
			label, _ := exitLabel(err) // "killed" when the kill worked; a script we may not kill (sudo) was waited for
			if killed {
				killGroup(j.pid) // descendants left in its process group
			}
			e.r.finished(j.name, j.argv, start, label, out, err)
		}
	}
}

// close stops the worker once the running job ends (or ctx does).
func (e *executor) close(ctx context.Context) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	e.pending = nil
	e.mu.Unlock()
	close(e.quit)
	select {
	case <-e.done:
	case <-ctx.Done():
	}
}

// killTree kills pid, everything in its process group and every descendant
// (also those that left the group): the process is stopped first so that it
// cannot fork while its children are listed, as Patroni suspends it.
func killTree(pid int) {
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	desc := descendants(pid)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for _, d := range desc {
		_ = syscall.Kill(d, syscall.SIGKILL)
	}
}

// killGroup kills what is left in pid's process group.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// descendants lists every process below pid (from /proc/*/stat parent links).
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		p, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		pp, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		children[pp] = append(children[pp], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}
