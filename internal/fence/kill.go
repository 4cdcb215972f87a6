package fence

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// pollEvery is how often exits are polled where no pidfd is available.
const pollEvery = 10 * time.Millisecond

// errGone means the process no longer exists (or is a zombie).
var errGone = errors.New("process is gone")

// stopPostmaster stops the postmaster of dataDir so it takes no more writes.
// Cases:
//  1. no postmaster.pid, or its PID is gone: postgres is not running; nothing to do.
//  2. the PID is alive but its working directory is not dataDir: the pid file
//     is stale and the PID was reused by another process; it is left alone.
//  3. otherwise SIGQUIT (immediate shutdown: the postmaster SIGQUITs every
//     backend and exits once they are gone) and wait up to quitWait;
//  4. if it is still alive then, SIGSTOP it (so it forks nothing more), SIGKILL
//     it and every child it has (backends are in sessions of their own, so a
//     group kill would miss them), and wait up to quitWait again.
//
// The postmaster is held by a pidfd from the check in case 2 on, so a PID
// reused in the meantime is never signalled.
func stopPostmaster(logger *slog.Logger, dataDir string, quitWait time.Duration) error {
	pid, err := readPostmasterPID(dataDir)
	if err != nil {
		return err
	}
	if pid == 0 {
		logger.Info("no postmaster.pid, postgres is not running")
		return nil
	}
	logger = logger.With("postmaster_pid", pid)
	pm, err := openProc(pid)
	if errors.Is(err, errGone) {
		logger.Info("postmaster is not running")
		return nil
	}
	if err != nil {
		return err
	}
	defer pm.close()
	owns, err := runsIn(pid, dataDir)
	switch {
	case errors.Is(err, errGone):
		logger.Info("postmaster is not running")
		return nil
	case err != nil:
		// Cannot tell (e.g. no permission to read its cwd): stopping a
		// possibly-unrelated process is the lesser harm than two primaries.
		logger.Warn("cannot verify the postmaster's data directory; stopping it anyway", "err", err)
	case !owns:
		logger.Warn("postmaster.pid is stale (PID belongs to another process); nothing to stop")
		return nil
	}

	start := time.Now()
	if err := pm.signal(unix.SIGQUIT); err != nil {
		if errors.Is(err, errGone) {
			return nil
		}
		return fmt.Errorf("SIGQUIT postmaster %d: %w", pid, err)
	}
	if pm.waitExit(quitWait) {
		logger.Warn("postmaster stopped by SIGQUIT", "took_ms", ms(time.Since(start)))
		return nil
	}

	logger.Warn("postmaster still alive after SIGQUIT; killing it and its children", "waited_ms", ms(quitWait))
	if err := pm.signal(unix.SIGSTOP); err != nil && !errors.Is(err, errGone) {
		logger.Warn("SIGSTOP postmaster", "err", err)
	}
	kids := openChildren(pid)
	defer func() {
		for _, k := range kids {
			k.close()
		}
	}()
	if err := pm.signal(unix.SIGKILL); err != nil && !errors.Is(err, errGone) {
		return fmt.Errorf("SIGKILL postmaster %d: %w", pid, err)
	}
	for _, k := range kids {
		if err := k.signal(unix.SIGKILL); err != nil && !errors.Is(err, errGone) {
			logger.Warn("SIGKILL postmaster child", "pid", k.pid, "err", err)
		}
	}
	if !pm.waitExit(quitWait) {
		return fmt.Errorf("postmaster %d still alive after SIGKILL", pid)
	}
	logger.Warn("postmaster killed", "children_killed", len(kids), "took_ms", ms(time.Since(start)))
	return nil
}

// readPostmasterPID returns the PID on the first line of postmaster.pid, 0 when there is no file.
func readPostmasterPID(dataDir string) (int, error) {
	raw, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("postmaster.pid: bad PID line %q", first)
	}
	return pid, nil
}

// runsIn reports whether process pid has dataDir as its working directory,
// which the postmaster always has (it chdirs there at start).
func runsIn(pid int, dataDir string) (bool, error) {
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if errors.Is(err, fs.ErrNotExist) {
		return false, errGone
	}
	if err != nil {
		return false, err
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		want = filepath.Clean(dataDir)
	}
	return cwd == want || cwd == filepath.Clean(dataDir), nil
}

// proc is a process held by a pidfd when the kernel has them (Linux 5.3+),
// by bare PID otherwise.
type proc struct {
	pid   int
	pidfd int // -1 without pidfd support
}

func openProc(pid int) (*proc, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
		if gone(pid) { // a zombie: exited, no longer taking writes
			unix.Close(fd)
			return nil, errGone
		}
		return &proc{pid: pid, pidfd: fd}, nil
	case errors.Is(err, unix.ESRCH):
		return nil, errGone
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
		if gone(pid) {
			return nil, errGone
		}
		return &proc{pid: pid, pidfd: -1}, nil
	default:
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
}

func (p *proc) close() {
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
}

func (p *proc) signal(sig unix.Signal) error {
	var err error
	if p.pidfd >= 0 {
		err = unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	} else {
		err = unix.Kill(p.pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return errGone
	}
	return err
}

// waitExit waits up to d for the process to exit; true when it did.
func (p *proc) waitExit(d time.Duration) bool {
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if p.pidfd >= 0 {
			// A pidfd polls readable once the process has exited.
			fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, max(int(left/time.Millisecond), 0))
			if err == nil && n > 0 {
				return true
			}
			if err != nil && !errors.Is(err, unix.EINTR) {
				p.close() // fall back to polling the PID
			}
		} else {
			if gone(p.pid) {
				return true
			}
			time.Sleep(min(pollEvery, max(left, 0)))
		}
		if time.Now().After(end) {
			return gone(p.pid)
		}
	}
}

// gone reports whether pid no longer exists or is a zombie.
func gone(pid int) bool {
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return true
	}
	state, _, err := procStat(pid)
	return err != nil || state == 'Z' || state == 'X'
}

// procStat returns the state and parent PID from /proc/<pid>/stat.
func procStat(pid int) (state byte, ppid int, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 2 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ppid, err = strconv.Atoi(fields[1])
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return fields[0][0], ppid, nil
}

// openChildren opens every live process whose parent is pid.
func openChildren(pid int) []*proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []*proc
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if _, ppid, err := procStat(child); err != nil || ppid != pid {
			continue
		}
		p, err := openProc(child)
		if err != nil {
			continue
		}
		// Re-check the parent now that the pidfd pins the process.
		if _, ppid, err := procStat(child); err != nil || ppid != pid {
			p.close()
			continue
		}
		kids = append(kids, p)
	}
	return kids
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
