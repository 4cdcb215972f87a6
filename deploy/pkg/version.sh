#!/bin/sh
# Prints the package version derived from `git describe`, in a form both dpkg
# and rpm accept and that sorts in commit order (the raw describe output may
# start with "v" or be a bare commit hash, which dpkg rejects):
#   v1.2.3                 -> 1.2.3
#   v1.2.3-rc1             -> 1.2.3~rc1              (before 1.2.3)
#   v1.2.3-4-gabc1234      -> 1.2.3+git4.gabc1234    (after 1.2.3)
#   abc1234 (no tag yet)   -> 0.0.0~git9.gabc1234    (9 = commits so far)
#   ... with local changes -> ... .dirty
# Usage: version.sh [DESCRIBE]   (default: `git describe --tags --always --dirty`)
set -eu
d=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo unknown)}
dirty=""
case "$d" in *-dirty) dirty=".dirty"; d=${d%-dirty} ;; esac
since=""
if echo "$d" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
	since=$(echo "$d" | sed -E 's/^.*-([0-9]+)-(g[0-9a-f]+)$/+git\1.\2/')
	d=$(echo "$d" | sed -E 's/-[0-9]+-g[0-9a-f]+$//')
fi
d=${d#v}
if [ -z "$since" ] && echo "$d" | grep -Eq '^[0-9a-f]{7,40}$'; then
	base="0.0.0~git$(git rev-list --count HEAD 2>/dev/null || echo 0).g${d}" # no tag: a bare hash
else
	case "$d" in
	[0-9]*) base=$(echo "$d" | tr '-' '~') ;;
	*) base="0.0.0~${d}" ;;
	esac
fi
# Anything else dpkg or rpm would reject becomes a dot.
echo "${base}${since}${dirty}" | sed -E 's/[^A-Za-z0-9.+~]/./g'
