// Package exporter serves pg_exporter-compatible PostgreSQL metrics and pgnoded's
// own HA metrics on :9630, from collectors defined in pg_exporter's YAML format.
package exporter
