#!/usr/bin/env bash
# Enforces the dependency direction between internal packages:
#   cmd -> anything; proc, restapi, exporter -> cluster (value types) only; ha -> cluster, ha/plan;
#   hook, config -> cluster and shlex (command-line splitting);
#   ha/plan -> cluster (and a Python-format package) only, and no I/O from the standard library;
#   ha/dcs -> ha, cluster; peers -> ha, cluster, config, buildinfo;
#   vip, cluster, fence, shlex -> nothing internal.
set -euo pipefail
mod=github.com/pgnoded/pgnoded
fail=0
check() { # pkg allowed-regex
  local pkg=$1 allowed=$2
  [ -d "${pkg#$mod/}" ] || return 0
  local bad
  bad=$(go list -f '{{join .Imports "\n"}}' "$pkg" | grep "^$mod/" | grep -Ev "^($allowed)$" || true)
  if [ -n "$bad" ]; then echo "dependency rule broken: $pkg imports $bad"; fail=1; fi
}
check $mod/internal/cluster ''
check $mod/internal/vip ''
check $mod/internal/config "$mod/internal/cluster|$mod/internal/shlex"
check $mod/internal/fence ''
check $mod/internal/ha "$mod/internal/cluster|$mod/internal/ha/plan"
check $mod/internal/ha/plan "$mod/internal/cluster|$mod/internal/pyfmt"
check $mod/internal/ha/dcs "$mod/internal/ha|$mod/internal/cluster"
check $mod/internal/peers "$mod/internal/ha|$mod/internal/cluster|$mod/internal/config|$mod/internal/buildinfo"
check $mod/internal/proc "$mod/internal/cluster"
check $mod/internal/restapi "$mod/internal/cluster"
check $mod/internal/exporter "$mod/internal/cluster"
check $mod/internal/hook "$mod/internal/cluster|$mod/internal/shlex"
check $mod/internal/shlex ''
# nostd pkg: the package may not reach the OS (pure rules, docs/architecture.md).
nostd() {
  local pkg=$1
  [ -d "${pkg#$mod/}" ] || return 0
  local bad
  bad=$(go list -f '{{join .Imports "\n"}}' "$pkg" | grep -Ex 'os|os/.*|net|net/.*|io/fs|syscall|unsafe' || true)
  if [ -n "$bad" ]; then echo "dependency rule broken: $pkg must do no I/O but imports $bad"; fail=1; fi
}
nostd $mod/internal/ha/plan
exit $fail
