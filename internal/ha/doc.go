// Package ha runs pgnoded's high-availability loop: the etcd store (leases,
// watch, Patroni's key layout), the pure decision function, and the loop that
// applies its actions to postgres and the VIP, and carries out the operator's
// requests (switchover, failover, restart, reinitialize, config edits).
package ha
