// Package plan holds the HA rules as pure functions: from one Observation of
// this node, its postgres and the cluster's keys, it computes the cycle's Plan
// (the action and every effect the loop applies). It does no I/O: the
// dependency check (scripts/check-deps.sh) allows it only internal/cluster and
// no os, net, io/fs or syscall. See docs/architecture.md.
package plan
