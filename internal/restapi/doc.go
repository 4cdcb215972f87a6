// Package restapi serves the Patroni-compatible REST API (:8008) — health checks,
// the node status document, cluster documents, metrics and the guarded action
// endpoints — answering every read from the HA loop's immutable snapshot alone.
// The action endpoints hand validated requests to Actions and map the typed
// outcome (cluster.OpResult / *cluster.OpError) to Patroni's statuses (outcome.go).
package restapi
