#!/bin/sh
# pgnoded package: after removal or upgrade; systemd forgets the removed unit.
# /etc/pgnoded is kept on remove (dpkg removes it on purge) and data
# directories are never touched.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
