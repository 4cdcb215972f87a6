package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fallbackPollInterval is used only where pidfd_open is unavailable (Linux < 5.3 or a seccomp filter).
const fallbackPollInterval = 50 * time.Millisecond

// postmaster is one postmaster process proc watches, started by us or adopted.
type postmaster struct {
	pid     int
	cmd     *exec.Cmd         // nil when adopted
	pidfd   *os.File          // nonblocking pidfd in the runtime poller; nil on the polling fallback
	started time.Time         // postmaster start time (postmaster.pid, refined by pg_postmaster_start_time)
	cmdline map[string]string // managed GUCs on its command line (from postmaster.opts)
	done    chan struct{}     // closed when the process has exited
	// replayTLI is the highest timeline this postmaster was seen replaying in
	// recovery (guarded by Postgres.mu). A standby never replays backwards, but
	// once its WAL receiver stops (the leader died) postgres only reports the
	// last restartpoint's timeline, which can predate a switch it already
	// followed; without this the HA loop would judge it diverged.
	replayTLI int
}

// newPostmaster opens a pidfd for pid. The pidfd pins the process: a PID reused
// after the check cannot be mistaken for it.
func newPostmaster(pid int) (*postmaster, error) {
	pm := &postmaster{pid: pid, done: make(chan struct{})}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	switch {
	case err == nil:
		pm.pidfd = os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	case errors.Is(err, unix.ESRCH):
		return nil, fmt.Errorf("process %d: %w", pid, err)
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM), errors.Is(err, unix.EINVAL):
		if !processAlive(pid) {
			return nil, fmt.Errorf("process %d: %w", pid, unix.ESRCH)
		}
	default:
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return pm, nil
}

// exited reports whether the watcher saw the process exit.
func (pm *postmaster) exited() bool {
	select {
	case <-pm.done:
		return true
	default:
		return false
	}
}

// waitExit blocks until the process exits (nil) or stop is closed / the pidfd
// is closed (an error). With a pidfd it parks in the runtime's netpoller: the
// kernel makes the pidfd readable the moment the process exits.
func (pm *postmaster) waitExit(stop <-chan struct{}) error {
	if pm.pidfd == nil {
		t := time.NewTicker(fallbackPollInterval)
		defer t.Stop()
		for processAlive(pm.pid) {
			select {
			case <-stop:
				return errors.New("watch stopped")
			case <-t.C:
			}
		}
		return nil
	}
	rc, err := pm.pidfd.SyscallConn()
	if err != nil {
		return err
	}
	var pollErr error
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if err != nil && !errors.Is(err, unix.EINTR) {
			pollErr = err
			return true
		}
		return n > 0 && fds[0].Revents != 0
	})
	if err != nil {
		return err
	}
	return pollErr
}

// reap collects the exit status: cmd.Wait for a child we started; for an
// adopted process a non-blocking waitid, which reaps it only if it happens to
// be our child (e.g. started by an earlier Postgres in this process).
func (pm *postmaster) reap() string {
	if pm.cmd != nil {
		err := pm.cmd.Wait()
		if pm.cmd.ProcessState != nil {
			return pm.cmd.ProcessState.String()
		}
		if err != nil {
			return err.Error()
		}
		return "exited"
	}
	if pm.pidfd != nil {
		if rc, err := pm.pidfd.SyscallConn(); err == nil {
			status := "exited (not our child)"
			_ = rc.Control(func(fd uintptr) {
				var info unix.Siginfo
				if err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil); err == nil {
					status = "exited (reaped)"
				}
			})
			return status
		}
	}
	return "exited"
}

// close releases the pidfd; a blocked waitExit returns an error.
func (pm *postmaster) close() {
	if pm.pidfd != nil {
		_ = pm.pidfd.Close()
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...; comm may contain spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// isPostmasterOf reports whether pid is a postgres process whose working
// directory is dataDir (a postmaster chdirs to its data directory).
func isPostmasterOf(pid int, dataDir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0 := string(cmdline)
	if i := strings.IndexByte(argv0, 0); i >= 0 {
		argv0 = argv0[:i]
	}
	if base := filepath.Base(argv0); base != "postgres" && base != "postmaster" {
		return false
	}
	cwd, err1 := os.Stat(fmt.Sprintf("/proc/%d/cwd", pid))
	dd, err2 := os.Stat(dataDir)
	return err1 == nil && err2 == nil && os.SameFile(cwd, dd)
}

// dataDirInUse reports whether any process has dataDir as its working
// directory (a postmaster or one of its backends).
func dataDirInUse(dataDir string) bool {
	pids, err := dataDirProcs(dataDir)
	return err != nil || len(pids) > 0 // cannot tell: assume in use
}

// dataDirProcs lists the processes whose working directory is dataDir (none
// when dataDir does not exist); an error means /proc could not be read.
func dataDirProcs(dataDir string) ([]int, error) {
	dd, err := os.Stat(dataDir)
	if err != nil {
		return nil, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Stat("/proc/" + e.Name() + "/cwd"); err == nil && os.SameFile(cwd, dd) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// findRunning looks at postmaster.pid: it returns the live postmaster of the
// data directory (pidfd open), or nil and whether a stale pid file exists.
func findRunning(dataDir string) (pm *postmaster, pf pidFile, stale bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, pidFileName))
	if err != nil {
		return nil, pf, false
	}
	pf, err = parsePidFile(string(b))
	if err != nil {
		return nil, pf, true
	}
	pm, err = newPostmaster(pf.PID)
	if err != nil {
		return nil, pf, true
	}
	// Check identity only after the pidfd pins the process.
	if !isPostmasterOf(pf.PID, dataDir) {
		pm.close()
		return nil, pf, true
	}
	pm.started = pf.StartTime
	if opts, err := os.ReadFile(filepath.Join(dataDir, optsFileName)); err == nil {
		pm.cmdline = cmdlineParams(parsePostmasterOpts(string(opts))[1:])
	}
	return pm, pf, false
}

// signal sends sig to the postmaster through its pidfd (no PID-reuse race).
func (pm *postmaster) signal(sig syscall.Signal) error {
	if pm.pidfd == nil {
		return syscall.Kill(pm.pid, sig)
	}
	rc, err := pm.pidfd.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return err
	}
	return serr
}
