// Package cluster holds the value types shared by the HA loop, the local
// postgres owner, the REST API and the exporter: Patroni's DCS records, the
// observed state of postgres, and the immutable node snapshot the HA loop publishes.
package cluster
