// Package proc is the single owner of the local postgres: it writes the files
// pgnoded manages, runs initdb/pg_basebackup/pg_rewind, starts the postmaster
// directly, watches it with a pidfd (adopting one it finds already running),
// and observes it over one local pgx connection.
package proc
