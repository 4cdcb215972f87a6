package main

import (
	"log/slog"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifier talks to systemd (Type=notify); every call is a no-op outside systemd.
type notifier struct{ log *slog.Logger }

func (n notifier) send(state string) {
	if ok, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("systemd notify failed", "state", state, "error", err)
	} else if ok && state != daemon.SdNotifyWatchdog {
		n.log.Debug("systemd notified", "state", state)
	}
}

func (n notifier) ready()    { n.send(daemon.SdNotifyReady) }
func (n notifier) stopping() { n.send(daemon.SdNotifyStopping) }
func (n notifier) reloading() {
	n.send(daemon.SdNotifyReloading)
}
func (n notifier) watchdog() { n.send(daemon.SdNotifyWatchdog) }
