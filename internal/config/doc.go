// Package config loads pgnoded's configuration: Patroni's YAML format (so a
// Pigsty-rendered patroni.yml loads unchanged) plus pgnoded's own vip, exporter
// and pgnoded sections, with PATRONI_* / PGNODED_* environment overrides and
// errors that name the key path and the file line.
package config
