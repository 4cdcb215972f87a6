// Package proc is the single owner of the local postgres: it writes the files
// pgnoded manages, runs initdb/pg_basebackup/pg_rewind, starts the postmaster
// directly, watches it with a pidfd (adopting one it finds already running),
// and observes it over one local pgx connection, over which it also runs the
// few statements the HA loop asks for by name (admin.go: roles, slots,
// CHECKPOINT, timeline history), so the HA loop writes no SQL. The exporter's
// collectors keep their own connections and queries.
package proc
