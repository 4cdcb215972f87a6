package main

import (
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifier talks to systemd (Type=notify); every call is a no-op outside systemd.
type notifier struct {
	log      *slog.Logger
	addr     *net.UnixAddr // systemd's notify socket; nil outside systemd
	watchdog time.Duration // WatchdogSec (WATCHDOG_USEC); 0 when systemd does not watch us
}

// newNotifier takes NOTIFY_SOCKET and the watchdog variables out of the process
// environment before any child starts: postgres (built with systemd support)
// would otherwise send its own READY=1/STOPPING=1 to pgnoded's unit, and the
// fence guard and tools have no business with them either.
func newNotifier(log *slog.Logger) notifier {
	sock := os.Getenv("NOTIFY_SOCKET")
	var wd time.Duration
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		if pid := os.Getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
			wd = time.Duration(us) * time.Microsecond
		}
	}
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		_ = os.Unsetenv(k)
	}
	n := notifier{log: log}
	if sock != "" {
		n.addr = &net.UnixAddr{Name: sock, Net: "unixgram"} // a leading '@' is the abstract namespace
		n.watchdog = wd
	}
	return n
}

func (n notifier) send(state string) {
	if n.addr == nil {
		return
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err == nil {
		_, err = c.Write([]byte(state))
		_ = c.Close()
	}
	if err != nil {
		n.log.Warn("systemd notify failed", "state", state, "error", err)
	} else if state != daemon.SdNotifyWatchdog {
		n.log.Debug("systemd notified", "state", state)
	}
}

func (n notifier) ready()     { n.send(daemon.SdNotifyReady) }
func (n notifier) stopping()  { n.send(daemon.SdNotifyStopping) }
func (n notifier) reloading() { n.send(daemon.SdNotifyReloading) }
func (n notifier) pat()       { n.send(daemon.SdNotifyWatchdog) }
