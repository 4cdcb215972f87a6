// Package ha runs pgnoded's high-availability loop: it observes this node,
// postgres and the cluster's keys, plans each cycle with the pure rules of
// package plan (ha/plan), and applies the plan to postgres, the etcd store
// (ha/dcs), the fence guard and the VIP; it also carries out the operator's
// requests (switchover, failover, restart, reinitialize, config edits).
// docs/architecture.md has the picture.
package ha
