// Package dcs is pgnoded's etcd v3 store: Patroni's key layout under /<namespace>/<scope>/,
// a per-node lease with explicit keepalives, a watch-backed cache of the cluster view,
// and leader-guarded writes; Store implements ha.Store (asserted in cmd/pgnoded,
// so that this package need not import ha). Client is the session-less view
// pgnodectl uses.
package dcs
