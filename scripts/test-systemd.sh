#!/usr/bin/env bash
# test-systemd.sh — the pgnoded package and unit under a real systemd.
#
# Boots Debian 12 with systemd in a systemd-nspawn container (own network
# namespace, throw-away overlay over a cached debootstrap rootfs), installs the
# .deb there with dpkg, runs a one-member etcd inside, and checks through
# nsenter: the unit passes systemd-analyze verify, READY, User= and ambient
# capabilities, /primary, the VIP inside the container, reload, a restart that
# keeps postgres, a watchdog restart of a frozen pgnoded, a clean stop, and
# dpkg -r / -P. Everything it starts is torn down on exit, failure included.
# Recipe: systemd-nspawn -b boots the container's systemd; systemctl and journalctl
# run inside through nsenter, because machinectl and systemctl -M need a systemd
# on the host (see systemd-nspawn(1), machinectl(1)).
#
# Usage (root): scripts/test-systemd.sh [PKG.deb]   (normally via `make test-systemd`)
# Env: PGNODED_NSPAWN_CACHE (default /var/tmp/pgnoded-nspawn-cache) holds the
# rootfs as a tar.zst and unpacked (booted only with --volatile=overlay, so it
# stays pristine); delete the directory to rebuild. KEEP_LOGS=1 keeps the logs
# and the container's journal in /var/tmp/pgnoded-systemd-test.PID.
set -euo pipefail

CACHE=${PGNODED_NSPAWN_CACHE:-/var/tmp/pgnoded-nspawn-cache}
ROOTFS_TAR=$CACHE/bookworm-pg15-v1.tar.zst # bump the suffix when the recipe changes
ROOTFS=${ROOTFS_TAR%.tar.zst}.root           # unpacked; only ever the read-only lower layer
REPO=$(cd "$(dirname "$0")/.." && pwd)
DEB=${1:-$(ls -t "$REPO"/dist/pgnoded_*.deb 2>/dev/null | head -1)}
NAME=pgnoded-st-$$
WORK=/var/tmp/pgnoded-systemd-test.$$
T0=$(date +%s.%N)
NSPAWN="" LEADER="" FAILED=0 CHECKS=0

# ---------------------------------------------------------------- helpers
secs() { echo "$(date +%s.%N) - ${1:-$T0}" | bc | xargs printf '%.1f'; }
say() { printf '[%6ss] %s\n' "$(secs)" "$*"; }
ok() { CHECKS=$((CHECKS + 1)); say "ok   $*"; }
info() { say "info $*"; }
fail() {
	say "FAIL $*"
	FAILED=1
	if [ -n "$LEADER" ]; then
		echo "---- journal of pgnoded (last 60 lines) ----"
		ct journalctl -b -u pgnoded --no-pager 2>/dev/null | tail -60 || true
	fi
	exit 1
}
# ct runs a command inside the container (all its namespaces, clean environment).
ct() { nsenter -t "$LEADER" -a -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb LANG=C "$@"; }
# ctnet runs a host binary (curl) in the container's network namespace only.
ctnet() { nsenter -t "$LEADER" -n -- "$@"; }
prop() { ct systemctl show -p "$1" --value pgnoded; }
journal() { ct journalctl -b -u pgnoded --no-pager -o cat; }
http_code() { ctnet curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true; }
postmaster() { ct head -1 /var/lib/pgnoded/data/postmaster.pid 2>/dev/null || true; }
pm_start() { ct sed -n 3p /var/lib/pgnoded/data/postmaster.pid 2>/dev/null || true; }
# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s until COMMAND succeeds.
wait_for() {
	local limit=$1 what=$2 start
	shift 2
	start=$(date +%s.%N)
	while ! "$@" >/dev/null 2>&1; do
		if [ "$(echo "$(date +%s.%N) - $start > $limit" | bc)" = 1 ]; then
			fail "timed out after ${limit}s waiting for: $what"
		fi
		sleep 0.2
	done
}
is_primary() { [ "$(http_code http://127.0.0.1:8008/primary)" = 200 ]; }
vip_bound() { ct ip -o addr show dev vip0 | grep -c 'inet 10.123.0.10/24'; }
leader_key() { # prints the etcd value of the leader key, empty when absent
	local k
	k=$(printf '/service/pgnoded-st/leader' | base64 -w0)
	ctnet curl -s -m 2 -X POST http://127.0.0.1:2379/v3/kv/range -d "{\"key\":\"$k\"}" |
		sed -n 's/.*"value":"\([^"]*\)".*/\1/p' | base64 -d 2>/dev/null || true
}

cleanup() {
	local rc=$?
	set +e
	if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
		[ "${KEEP_LOGS:-0}" = 1 ] && [ -n "$LEADER" ] && ct journalctl -b --no-pager >"$WORK/journal.log" 2>&1
		kill -TERM "$NSPAWN" # the container's systemd powers off in order
		for _ in $(seq 1 150); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
		kill -0 "$NSPAWN" 2>/dev/null && { echo "nspawn did not stop in 30 s: SIGKILL"; kill -KILL "$NSPAWN"; sleep 1; }
	fi
	if [ "${KEEP_LOGS:-0}" = 1 ]; then
		echo "logs kept in $WORK"
	else
		rm -rf "$WORK"
	fi
	if [ "$rc" -eq 0 ] && [ "$FAILED" -eq 0 ]; then
		say "PASS: $CHECKS checks in $(secs)s"
	else
		say "FAILED (rc=$rc)"
	fi
}

# ---------------------------------------------------------------- preconditions
[ "$(id -u)" -eq 0 ] || { echo "test-systemd needs root (systemd-nspawn, nsenter)"; exit 1; }
[ -f "$DEB" ] || { echo "no package: run make package first (or pass PKG.deb)"; exit 1; }
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v zstd >/dev/null || need+=(zstd)
command -v curl >/dev/null || need+=(curl)
command -v bc >/dev/null || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
	# Note: systemd-container may upgrade the host's systemd packages.
	echo "installing: ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi
trap cleanup EXIT
mkdir -p "$CACHE" "$WORK"
say "package: $(basename "$DEB")"

# ---------------------------------------------------------------- rootfs (cached)
build_rootfs() {
	local b=$CACHE/build.$$ mirror
	mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	mirror=${mirror:-http://deb.debian.org/debian}
	rm -rf "$b"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,procps \
		bookworm "$b" "$mirror" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; rm -rf "$b"; return 1; }
	say "debootstrap done"
	# postgresql-15 for its binaries only: no service may start while installing
	# (policy-rc.d), and the default cluster it creates is dropped.
	printf '#!/bin/sh\nexit 101\n' >"$b/usr/sbin/policy-rc.d"
	chmod 755 "$b/usr/sbin/policy-rc.d"
	systemd-nspawn -q -D "$b" --register=no --keep-unit --as-pid2 --console=pipe \
		-E DEBIAN_FRONTEND=noninteractive /bin/sh -c \
		'set -e; apt-get update -qq; apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
		 pg_lsclusters -h | while read v c _; do pg_dropcluster "$v" "$c"; done
		 systemctl disable -q postgresql.service || true
		 apt-get clean; rm -rf /var/lib/apt/lists/*' </dev/null >>"$WORK/debootstrap.log" 2>&1 ||
		{ tail -20 "$WORK/debootstrap.log"; rm -rf "$b"; return 1; }
	rm -f "$b/usr/sbin/policy-rc.d"
	: >"$b/etc/machine-id" # each boot makes its own
	echo pgnoded-st >"$b/etc/hostname"
	rm -rf "$b"/var/log/journal/* "$b"/var/cache/apt/archives/*.deb
	tar --numeric-owner -C "$b" -cf - . | zstd -q -T2 -3 -o "$ROOTFS_TAR.tmp.$$"
	mv "$ROOTFS_TAR.tmp.$$" "$ROOTFS_TAR"
	rm -rf "$b"
}
t=$(date +%s.%N)
(
	flock 9 # concurrent runs build the cache once
	[ -f "$ROOTFS_TAR" ] || { say "building rootfs cache (debootstrap, once)"; build_rootfs; }
	if [ ! -d "$ROOTFS" ]; then
		rm -rf "$ROOTFS.tmp"
		mkdir "$ROOTFS.tmp"
		zstd -q -dc "$ROOTFS_TAR" | tar --numeric-owner -C "$ROOTFS.tmp" -xf -
		mv "$ROOTFS.tmp" "$ROOTFS"
		say "rootfs unpacked"
	fi
) 9>"$CACHE/lock"
say "rootfs cache ready ($(du -h "$ROOTFS_TAR" | cut -f1) tar.zst) in $(secs "$t")s"

# etcd for inside the container, and the rootfs copy this run boots from.
t=$(date +%s.%N)
(cd "$REPO" && CGO_ENABLED=0 "${GO:-go}" build -o "$WORK/etcd" go.etcd.io/etcd/server/v3)
say "etcd built in $(secs "$t")s"

# ---------------------------------------------------------------- boot
t=$(date +%s.%N)
setsid systemd-nspawn -D "$ROOTFS" -M "$NAME" -b --register=no --keep-unit --private-network \
	--volatile=overlay --console=passive \
	--bind-ro="$DEB":/root/pgnoded.deb --bind-ro="$WORK/etcd":/usr/local/bin/etcd \
	</dev/null >"$WORK/console.log" 2>&1 &
NSPAWN=$!
for _ in $(seq 1 300); do # the first child can be nspawn's short-lived helper: wait for systemd
	for c in $(ps -o pid= --ppid "$NSPAWN" 2>/dev/null); do
		[ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ] && LEADER=$c
	done
	[ -n "$LEADER" ] && break
	kill -0 "$NSPAWN" 2>/dev/null || { cat "$WORK/console.log"; fail "systemd-nspawn exited"; }
	sleep 0.05
done
[ -n "$LEADER" ] || fail "no systemd in the container after 15 s"
state=""
for _ in $(seq 1 300); do
	state=$(ct systemctl is-system-running 2>/dev/null || true)
	case "$state" in running | degraded) break ;; esac
	sleep 0.1
done
case "$state" in running | degraded) ;; *) fail "container not booted: $state" ;; esac
say "container booted ($state) in $(secs "$t")s: nspawn $NSPAWN, systemd $LEADER"

# ---------------------------------------------------------------- install
t=$(date +%s.%N)
ct dpkg -i /root/pgnoded.deb >"$WORK/dpkg-i.log" 2>&1 || { cat "$WORK/dpkg-i.log"; fail "dpkg -i"; }
say "dpkg -i in $(secs "$t")s"
for f in /usr/bin/pgnoded /usr/bin/pgnodectl /usr/bin/pgnoded-fence-guard /lib/systemd/system/pgnoded.service /etc/pgnoded/pgnoded.yml \
	/etc/pgnoded/pg_exporter.yml /usr/share/pgnoded/patroni.service.d/pgnoded.conf; do
	ct test -f "$f" || fail "package did not install $f"
done
ok "package files in place"
perm=$(ct stat -c '%U:%G %a' /etc/pgnoded/pgnoded.yml)
[ "$perm" = "root:postgres 640" ] || fail "config ownership $perm, want root:postgres 640"
ok "postinst: /etc/pgnoded/pgnoded.yml is $perm"
[ "$(prop LoadState)" = loaded ] || fail "unit not loaded after dpkg -i (postinst daemon-reload)"
[ "$(prop ActiveState)" = inactive ] || fail "postinst started the service"
[ "$(ct systemctl is-enabled pgnoded 2>/dev/null || true)" = disabled ] || fail "postinst enabled the service"
ok "postinst: unit loaded (daemon-reload), not started, not enabled"
out=$(ct systemd-analyze verify /lib/systemd/system/pgnoded.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify findings: $out"
ok "systemd-analyze verify pgnoded.service: clean"
ct mkdir -p /tmp/v/patroni.service.d
ct cp /usr/share/pgnoded/patroni.service.d/pgnoded.conf /tmp/v/patroni.service.d/
printf '[Unit]\nDescription=stand-in for Pigsty patroni.service\n[Service]\nUser=postgres\nExecStart=/usr/bin/false\n' |
	ct tee /tmp/v/patroni.service >/dev/null
out=$(ct systemd-analyze verify /tmp/v/patroni.service 2>&1) || fail "verify patroni drop-in: $out"
[ -z "$out" ] || fail "systemd-analyze verify findings (patroni drop-in): $out"
ok "systemd-analyze verify patroni.service + pgnoded.conf drop-in: clean"

# ---------------------------------------------------------------- node setup
ct systemd-run -q --unit=test-etcd /usr/local/bin/etcd --name st --data-dir /var/lib/test-etcd \
	--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster st=http://127.0.0.1:2380 --log-level warn
wait_for 30 "etcd healthy" sh -c "nsenter -t $LEADER -n curl -s -m 2 http://127.0.0.1:2379/health | grep -q true"
say "etcd up inside the container"
# The VIP's link: a veth pair inside the container (this kernel has no dummy links).
ct ip link add vip0 type veth peer name vip0p
ct ip addr add 10.123.0.1/24 dev vip0
ct ip link set vip0 up
ct ip link set vip0p up
ct install -d -o postgres -g postgres -m 0700 /var/lib/pgnoded
ct tee /etc/pgnoded/pgnoded.yml >/dev/null <<'EOF'
scope: pgnoded-st
name: node1
namespace: /service/
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
etcd3:
  hosts: 127.0.0.1:2379
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /var/lib/pgnoded/data
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: /var/lib/pgnoded/pgpass
  authentication:
    superuser: { username: postgres, password: st-super }
    replication: { username: replicator, password: st-repl }
  parameters:
    unix_socket_directories: /var/run/postgresql
vip:
  enabled: true
  address: 10.123.0.10/24
  interface: vip0
  arp_count: 1
exporter:
  enabled: true
  listen: 127.0.0.1:9630
  config: /etc/pgnoded/pg_exporter.yml
EOF
out=$(ct runuser -u postgres -- /usr/bin/pgnoded --validate-config /etc/pgnoded/pgnoded.yml 2>&1) ||
	fail "the test config does not validate as postgres: $out"

# ---------------------------------------------------------------- start: READY, user, caps
t=$(date +%s.%N)
ct systemctl start pgnoded || fail "systemctl start pgnoded"
say "systemctl start returned (READY=1) in $(secs "$t")s"
[ "$(ct systemctl is-active pgnoded)" = active ] || fail "not active after start"
ok "Type=notify: start returned after READY=1, unit active"
PID=$(prop MainPID)
uid=$(ct awk '/^Uid:/{print $2}' "/proc/$PID/status")
[ "$uid" = "$(ct id -u postgres)" ] || fail "MainPID $PID runs as uid $uid"
amb=$(ct awk '/^CapAmb:/{print $2}' "/proc/$PID/status")
[ "$amb" = 0000000000003000 ] || fail "CapAmb $amb, want 0000000000003000"
ok "MainPID $PID: uid $uid (postgres), CapAmb $amb (NET_ADMIN|NET_RAW)"
wait_for 60 "/primary 200" is_primary
ok "/primary answers 200 ($(secs "$t")s after start)"
wait_for 20 "VIP on vip0" vip_bound
[ "$(ip -o addr | grep -c '10.123.0.10/' || true)" = 0 ] || fail "the VIP leaked onto the host"
ok "VIP 10.123.0.10/24 bound on vip0 inside the container, not on the host"
[ "$(http_code http://127.0.0.1:9630/metrics)" = 200 ] || fail "exporter /metrics with the packaged collector file"
up=$(ctnet curl -s -m 5 http://127.0.0.1:9630/metrics | awk '$1=="pg_up"{print $2}')
[ "$up" = 1 ] || fail "pg_up=$up with /etc/pgnoded/pg_exporter.yml"
ok "exporter answers with the packaged collector file, pg_up=1"
[ -n "$(leader_key)" ] || fail "no leader key in etcd"
rd=$(ct stat -c '%U:%G %a' /run/postgresql)
[ "$rd" = "postgres:postgres 2775" ] || fail "/run/postgresql is $rd"
ok "RuntimeDirectory /run/postgresql: $rd"
notify_leak=$(journal | grep -c 'but reception only permitted for main PID' || true)
[ "$notify_leak" = 0 ] || fail "a child of pgnoded (postgres) sent sd_notify messages to the unit"
ok "no sd_notify from postgres (NOTIFY_SOCKET not inherited)"
PM=$(postmaster) PMSTART=$(pm_start)
info "postmaster $PM (started $PMSTART); oom_score_adj: pgnoded $(ct cat "/proc/$PID/oom_score_adj")," \
	"postmaster $(ct cat "/proc/$PM/oom_score_adj")"

# ---------------------------------------------------------------- reload
work_mem() { ct runuser -u postgres -- psql -h /run/postgresql -p 5432 -d postgres -XAtc 'SHOW work_mem' 2>/dev/null || true; }
ct sed -i 's#^    unix_socket_directories: /var/run/postgresql#&\n    work_mem: 7MB#' /etc/pgnoded/pgnoded.yml
ct systemctl reload pgnoded || fail "systemctl reload"
wait_for 10 "reload logged" sh -c "nsenter -t $LEADER -a -- journalctl -b -u pgnoded -o cat --no-pager | grep -c 'reload: configuration file re-read'"
[ "$(ct systemctl is-active pgnoded)" = active ] && [ "$(prop MainPID)" = "$PID" ] || fail "unit changed on reload"
ok "systemctl reload: logged, still active, same MainPID"
wait_for 10 "work_mem=7MB in postgres after reload" sh -c "[ \"\$(nsenter -t $LEADER -a -- runuser -u postgres -- psql -h /run/postgresql -d postgres -XAtc 'SHOW work_mem')\" = 7MB ]"
ok "reload applied postgresql.parameters: postgres reports work_mem=$(work_mem)"

# ---------------------------------------------------------------- reinstall (upgrade path)
ct dpkg -i /root/pgnoded.deb >"$WORK/dpkg-i2.log" 2>&1 || { cat "$WORK/dpkg-i2.log"; fail "dpkg -i over the running install"; }
ct grep -c '^scope: pgnoded-st' /etc/pgnoded/pgnoded.yml >/dev/null || fail "reinstall replaced the edited config"
[ "$(prop MainPID)" = "$PID" ] && [ "$(postmaster)" = "$PM" ] || fail "reinstall restarted pgnoded or postgres"
ok "dpkg -i over a running node: edited config kept, pgnoded and postgres untouched"

# ---------------------------------------------------------------- restart keeps postgres
t=$(date +%s.%N)
ct systemctl restart pgnoded || fail "systemctl restart"
NPID=$(prop MainPID)
[ "$NPID" != "$PID" ] || fail "MainPID unchanged after restart"
journal | grep -c 'SIGUSR2: exiting, postgres keeps running' >/dev/null || fail "old pgnoded did not get SIGUSR2"
[ "$(postmaster)" = "$PM" ] && [ "$(pm_start)" = "$PMSTART" ] || fail "postmaster changed: $(postmaster)/$(pm_start), was $PM/$PMSTART"
ct kill -0 "$PM" || fail "postmaster $PM gone after restart"
wait_for 60 "/primary 200 after restart" is_primary
vip_bound >/dev/null || fail "VIP lost after restart"
ct test -S /run/postgresql/.s.PGSQL.5432 || fail "postgres socket gone after restart (RuntimeDirectoryPreserve)"
ok "systemctl restart: SIGUSR2, MainPID $PID -> $NPID, postmaster $PM kept (same start time), primary again in $(secs "$t")s"

# ---------------------------------------------------------------- watchdog
ct mkdir -p /etc/systemd/system/pgnoded.service.d
printf '[Service]\nWatchdogSec=3\n' | ct tee /etc/systemd/system/pgnoded.service.d/watchdog-test.conf >/dev/null
ct systemctl daemon-reload
ct systemctl restart pgnoded # the new process gets WATCHDOG_USEC=3s
[ "$(prop WatchdogUSec)" = 3s ] || fail "WatchdogSec override not applied: $(prop WatchdogUSec)"
sleep 4 # deliberately longer than WatchdogSec: the pings must keep it alive
[ "$(ct systemctl is-active pgnoded)" = active ] || fail "killed by the watchdog while healthy"
PID=$(prop MainPID) NR=$(prop NRestarts)
t=$(date +%s.%N)
ct kill -STOP "$PID"
wait_for 30 "watchdog restart" sh -c "[ \"\$(nsenter -t $LEADER -a -- systemctl show -p NRestarts --value pgnoded)\" -gt $NR ]"
journal | grep -c 'Watchdog timeout' >/dev/null || fail "no 'Watchdog timeout' in the journal"
wait_for 30 "active after watchdog restart" sh -c "[ \"\$(nsenter -t $LEADER -a -- systemctl is-active pgnoded)\" = active ]"
NPID=$(prop MainPID)
[ "$(postmaster)" = "$PM" ] && ct kill -0 "$PM" || fail "postmaster did not survive the watchdog kill"
wait_for 60 "/primary 200 after watchdog restart" is_primary
ok "watchdog: SIGSTOPped pgnoded $PID killed ('Watchdog timeout', result $(journal | grep -o "Failed with result '[a-z-]*'" | tail -1)), restarted as $NPID, postmaster $PM kept, primary again $(secs "$t")s after the freeze"
ct rm -rf /etc/systemd/system/pgnoded.service.d
ct systemctl daemon-reload

# ---------------------------------------------------------------- stop
t=$(date +%s.%N)
ct systemctl stop pgnoded || fail "systemctl stop"
[ "$(ct systemctl is-active pgnoded || true)" = inactive ] || fail "not inactive after stop"
journal | grep -c 'stopping: postgres stops and leadership is handed over' >/dev/null || fail "no clean-stop log line"
ct kill -0 "$PM" 2>/dev/null && fail "postmaster $PM still running after systemctl stop"
[ -z "$(leader_key)" ] || fail "leader key still in etcd after a clean stop"
ok "systemctl stop in $(secs "$t")s: postgres stopped, leader key released"
# KillMode=process leaves the detached fence guard; disarmed and without a client
# after a clean stop, it must exit on its own (idle exit) rather than linger.
t=$(date +%s.%N)
wait_for 40 "fence guard exits after the stop" sh -c "! nsenter -t $LEADER -a -- pgrep -f '^/usr/bin/pgnoded'"
ok "no pgnoded process left $(secs "$t")s after the stop (fence guard idle exit)"

# ---------------------------------------------------------------- remove, purge
ct dpkg -r pgnoded >"$WORK/dpkg-r.log" 2>&1 || { cat "$WORK/dpkg-r.log"; fail "dpkg -r"; }
for f in /usr/bin/pgnoded /usr/bin/pgnodectl /usr/bin/pgnoded-fence-guard /lib/systemd/system/pgnoded.service /usr/share/pgnoded; do
	ct test -e "$f" && fail "dpkg -r left $f"
done
ct test -f /etc/pgnoded/pgnoded.yml || fail "dpkg -r removed the conffile (only purge should)"
[ "$(prop LoadState)" = not-found ] || fail "unit still known after dpkg -r (postrm daemon-reload): $(prop LoadState)"
ok "dpkg -r: binaries, unit and /usr/share/pgnoded gone, config kept, systemd forgot the unit"
ct dpkg -P pgnoded >"$WORK/dpkg-p.log" 2>&1 || { cat "$WORK/dpkg-p.log"; fail "dpkg -P"; }
ct test -e /etc/pgnoded && fail "dpkg -P left /etc/pgnoded: $(ct ls -la /etc/pgnoded)"
ct dpkg -s pgnoded >/dev/null 2>&1 && fail "package still known to dpkg"
ok "dpkg -P: /etc/pgnoded gone, package unknown to dpkg"
[ -e "$ROOTFS/usr/bin/pgnoded" ] && fail "the cached rootfs was modified (not booted read-only?)"
true
