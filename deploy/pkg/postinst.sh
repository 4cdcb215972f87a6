#!/bin/sh
# pgnoded package: after install or upgrade (deb: "configure" [old-version];
# rpm: 1 = install, 2 = upgrade). Never starts or restarts the service: a node
# joins its cluster when the operator has written /etc/pgnoded/pgnoded.yml and
# runs `systemctl start pgnoded` (or `systemctl restart pgnoded` after an
# upgrade, which keeps postgres running).
set -e

case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

# The config holds passwords: it ships root:root 0640, and the service (User=postgres)
# reads it through its group. Only files still in the shipped root group are
# touched, so an operator's own ownership choice survives upgrades.
if getent group postgres >/dev/null 2>&1; then
	for f in /etc/pgnoded/pgnoded.yml /etc/pgnoded/pg_exporter.yml; do
		if [ -f "$f" ] && [ "$(stat -c %G "$f")" = root ]; then
			chgrp postgres "$f"
		fi
	done
else
	echo "pgnoded: no 'postgres' group yet; install PostgreSQL, then: chgrp postgres /etc/pgnoded/*.yml" >&2
fi

# Let a running systemd see the new or changed unit.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
