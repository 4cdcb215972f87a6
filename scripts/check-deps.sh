#!/usr/bin/env bash
# Enforces the dependency direction between internal packages. Every rule
# names a package that must exist: a rule whose directory is gone fails, so a
# move or rename updates this file too.
#   cluster, pyfmt, pgbin, vip, fence, shlex, buildinfo -> nothing internal (pyfmt for cluster);
#   testenv -> pgbin (finding postgres), its own pki and nodeconf;
#   proc, restapi, exporter, ha -> cluster (value types), pyfmt (Python formatting); proc -> pgbin; ha -> ha/plan;
#   ha/plan -> cluster, pyfmt only, and no I/O from the standard library (os, net, io/fs, syscall);
#   hook, config -> cluster, pyfmt and shlex (command-line splitting);
#   ha/dcs -> cluster, pyfmt (never ha: pgnodectl links dcs without the HA loop);
#   peers -> ha, ha/plan, cluster, config, buildinfo;
#   ctl (pgnodectl) -> cluster, pyfmt, config, ha/dcs, buildinfo (never ha);
#   cmd/* -> anything internal but testenv (test-only).
set -euo pipefail
mod=github.com/pgnoded/pgnoded
fail=0
# check pkg allowed-regex: pkg may import only internal packages matching allowed.
check() {
  local pkg=$1 allowed=$2
  if [ ! -d "${pkg#$mod/}" ]; then
    echo "dependency rule names a missing package: $pkg (update scripts/check-deps.sh)"
    fail=1
    return 0
  fi
  local bad
  bad=$(go list -f '{{join .Imports "\n"}}' "$pkg" | grep "^$mod/" | grep -Ev "^($allowed)$" || true)
  if [ -n "$bad" ]; then echo "dependency rule broken: $pkg imports $bad"; fail=1; fi
}
# forbid pkg regex: pkg must not import (directly or through others) any internal package matching regex.
forbid() {
  local pkg=$1 banned=$2
  local bad
  bad=$(go list -deps "$pkg" | grep -E "^($banned)$" || true)
  if [ -n "$bad" ]; then echo "dependency rule broken: $pkg depends on $bad"; fail=1; fi
}
i=$mod/internal
check $i/cluster "$i/pyfmt"
check $i/pyfmt ''
check $i/vip ''
check $i/fence ''
check $i/shlex ''
check $i/buildinfo ''
check $i/pgbin ''
check $i/testenv "$i/pgbin|$i/testenv/pki"
check $i/testenv/pki ''
check $i/testenv/nodeconf ''
check $i/config "$i/cluster|$i/pyfmt|$i/shlex"
check $i/ha "$i/cluster|$i/pyfmt|$i/ha/plan"
check $i/ha/dcs "$i/cluster|$i/pyfmt|$i/ha/plan"
check $i/ha/plan "$i/cluster|$i/pyfmt"
# nostd pkg: the package may not reach the OS (pure rules, docs/architecture.md).
nostd() {
  local pkg=$1
  if [ ! -d "${pkg#$mod/}" ]; then
    echo "dependency rule names a missing package: $pkg (update scripts/check-deps.sh)"
    fail=1
    return 0
  fi
  local bad
  bad=$(go list -f '{{join .Imports "\n"}}' "$pkg" | grep -Ex 'os|os/.*|net|net/.*|io/fs|syscall|unsafe' || true)
  if [ -n "$bad" ]; then echo "dependency rule broken: $pkg must do no I/O but imports $bad"; fail=1; fi
}
nostd $i/ha/plan
check $i/peers "$i/ha|$i/ha/plan|$i/cluster|$i/config|$i/buildinfo"
check $i/proc "$i/cluster|$i/pyfmt|$i/pgbin"
check $i/restapi "$i/cluster|$i/pyfmt"
check $i/exporter "$i/cluster|$i/pyfmt"
check $i/exporter/envfile ''
check $i/hook "$i/cluster|$i/pyfmt|$i/shlex"
check $i/ctl "$i/cluster|$i/pyfmt|$i/config|$i/ha/dcs|$i/buildinfo"
forbid $mod/internal/ha/dcs "$i/ha"
forbid $mod/cmd/pgnodectl "$i/ha"
for d in cmd/*/; do
  d=${d%/}
  check "$mod/$d" "$i/[a-z0-9/]+"
  forbid "$mod/$d" "$i/testenv(/.*)?"
done
exit $fail
