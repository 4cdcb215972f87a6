// Package dcs is pgnoded's etcd v3 store: Patroni's key layout under /<namespace>/<scope>/,
// a per-node lease with explicit keepalives, a watch-backed cache of the cluster view,
// and leader-guarded writes; it implements ha.Store.
package dcs
