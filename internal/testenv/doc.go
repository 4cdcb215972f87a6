// Package testenv gives tests real dependencies: an embedded etcd server on
// free ports, the PostgreSQL binaries, data directories owned by the postgres
// OS user, and root gating. Everything it makes is removed by t.Cleanup.
package testenv
