#!/usr/bin/env bash
# verify-units.sh BINARY — runs `systemd-analyze verify` on the unit and on the
# patroni drop-in, with ExecStart pointed at BINARY (the unit names the
# installed /usr/bin/pgnoded, which verify insists exists). Any finding fails.
# Skipped, with a note, where systemd-analyze is not installed.
set -euo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v systemd-analyze >/dev/null; then
	echo "systemd-analyze not installed: unit not verified" >&2
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/bin/pgnoded#$bin#g" "$here/systemd/pgnoded.service" >"$tmp/pgnoded.service"
mkdir "$tmp/patroni.service.d"
sed "s#/usr/bin/pgnoded#$bin#g" "$here/systemd/patroni.service.d/pgnoded.conf" >"$tmp/patroni.service.d/pgnoded.conf"
printf '[Unit]\nDescription=stand-in for patroni.service\n[Service]\nUser=postgres\nExecStart=/usr/bin/false\n' >"$tmp/patroni.service"
status=0
for u in pgnoded.service patroni.service; do
	if ! out=$(systemd-analyze verify "$tmp/$u" 2>&1) || [ -n "$out" ]; then
		echo "systemd-analyze verify $u:" >&2
		echo "${out//$tmp\//}" >&2
		status=1
	fi
done
[ $status -eq 0 ] && echo "systemd-analyze verify: pgnoded.service and the patroni drop-in are clean"
exit $status
