#!/usr/bin/env bash
# Installs the system packages the tests need when they are missing (root only).
# Safe to run repeatedly; a non-root user is told what to install instead.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql-15)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v patronictl >/dev/null 2>&1 || need+=(patroni) # patronictl reads our DCS keys (compat test)
command -v pgbackrest >/dev/null 2>&1 || need+=(pgbackrest) # replicas and bootstraps from a backup (pgbackrest tests)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} — install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 0
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts packaged daemons on install; the tests run their own instances.
for svc in postgresql haproxy prometheus patroni; do
  (systemctl stop "$svc" 2>/dev/null || service "$svc" stop 2>/dev/null || true) >/dev/null 2>&1
done
pkill -x prometheus 2>/dev/null || true
