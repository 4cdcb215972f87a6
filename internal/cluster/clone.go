package cluster

// CloneOptions says how a replica's data directory is built. The zero value
// tries postgresql.create_replica_methods as configured (pg_basebackup when
// none is), from the given source.
type CloneOptions struct {
	// Methods names the methods to try, in order, instead of the configured
	// list (standby_cluster.create_replica_methods); each name other than
	// basebackup refers to its postgresql.<name> section.
	Methods []string
	// BasebackupOnly runs pg_basebackup only (reinitialize with from_leader).
	BasebackupOnly bool
}

// Patroni's states while a custom bootstrap method runs (Bootstrap._custom_bootstrap
// in Patroni's postgresql/bootstrap.py).
const (
	StateCustomBootstrap       PGState = "running custom bootstrap script"
	StateCustomBootstrapFailed PGState = "custom bootstrap failed"
)
