#!/bin/sh
# pgnoded package: before removal (deb: "remove" / "upgrade"; rpm: 0 = erase,
# 1 = upgrade). On a final removal the unit is disabled and stopped, as
# rpm's %systemd_preun does: a stop shuts postgres down cleanly and hands
# leadership over. An upgrade leaves the running service alone.
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl --no-reload disable pgnoded.service >/dev/null 2>&1 || true
	systemctl stop pgnoded.service >/dev/null 2>&1 || true
fi
exit 0
