// Package nodeconf renders the configuration file of one test or demo node:
// Patroni's YAML with pgnoded's own sections (exporter, vip), or Patroni's
// YAML alone when the node runs Patroni itself. The integration tests'
// loopback and namespace clusters, their Patroni side-by-side clusters and
// tools/demo all render their nodes with Render, so the settings they compare
// are the same by construction.
package nodeconf

import (
	"bytes"
	"fmt"
	"text/template"
)

// Flavour is the daemon a configuration is written for.
type Flavour int

// The flavours.
const (
	Pgnoded Flavour = iota // Patroni's keys plus pgnoded's exporter and vip sections
	Patroni                // Patroni's keys only, with log.level INFO
)

// Passwords are the database roles' passwords.
type Passwords struct {
	Superuser, Replication, Rewind string
}

// Security puts authentication and client-certificate HTTPS on the REST API
// (verify_client: required) and the matching ctl section.
type Security struct {
	User, Password        string
	ServerCert, ServerKey string
	CA                    string
	ClientCert, ClientKey string
}

// VIP is the vip section of a node that may hold the cluster's address.
type VIP struct {
	Enabled     bool
	Address     string // with prefix length, e.g. 10.0.0.100/24
	Interface   string
	ARPInterval string // e.g. 500ms
}

// Sync is bootstrap.dcs's synchronous replication settings (Patroni's
// synchronous_mode, synchronous_mode_strict, synchronous_node_count).
type Sync struct {
	// Strict is synchronous_mode_strict: commits wait when no standby can be synchronous.
	Strict bool
	// NodeCount is synchronous_node_count (0: not written, Patroni's default of 1).
	NodeCount int
	// Quorum writes synchronous_mode: quorum instead of true (pgnoded flavour only).
	Quorum bool
}

// Options is everything that differs between the nodes Render writes.
type Options struct {
	Flavour   Flavour
	Comment   string // a first line "# Comment" when set
	Namespace string // the DCS namespace, e.g. /itest/
	Scope     string
	Name      string
	// Listen is the address the REST API and postgres listen on; Host the one they announce.
	Listen, Host string
	APIPort      int
	PGPort       int
	MetricPort   int
	// Etcd is etcd3.hosts (host:port, comma-separated).
	Etcd string
	// Dir holds the node's data directory (Dir/data), pgpass and unix socket.
	Dir    string
	BinDir string
	// TTL, LoopWait and RetryTimeout are the bootstrap DCS timing in seconds.
	TTL, LoopWait, RetryTimeout int
	Failsafe                    bool
	// Sync, when set, turns synchronous_mode on in bootstrap.dcs (nil: the key is not written, asynchronous).
	Sync *Sync
	// PermanentSlot, when set, is a permanent physical slot in bootstrap.dcs.slots.
	PermanentSlot string
	Passwords     Passwords
	// Subnet, when set, is trusted in pg_hba besides 127.0.0.1/32.
	Subnet string
	// PGExtra are lines added to the postgresql section (indented by two spaces).
	PGExtra string
	// PGParams are lines added to postgresql.parameters (indented by four spaces).
	PGParams string
	// Secure, when set, secures the REST API (pgnoded flavour only).
	Secure *Security
	// VIP, when set, describes the vip section (pgnoded flavour only); nil writes enabled: false.
	VIP *VIP
	// Compat, when set, is pgnoded.compat, e.g. 4.1.4 (pgnoded flavour only).
	Compat string
}

var tmpl = template.Must(template.New("node").Parse(`{{with .Comment}}# {{.}}
{{end}}scope: {{.Scope}}
namespace: {{.Namespace}}
name: {{.Name}}
{{- if .Patroni}}
log:
  level: INFO
{{- end}}
restapi:
  listen: {{.Listen}}:{{.APIPort}}
  connect_address: {{.Host}}:{{.APIPort}}
{{- with .Secure}}
  authentication: {username: {{.User}}, password: {{.Password}}}
  certfile: {{.ServerCert}}
  keyfile: {{.ServerKey}}
  cafile: {{.CA}}
  verify_client: required
ctl:
  cacert: {{.CA}}
  certfile: {{.ClientCert}}
  keyfile: {{.ClientKey}}
{{- end}}
etcd3:
  hosts: {{.Etcd}}
bootstrap:
  dcs:
    ttl: {{.TTL}}
    loop_wait: {{.LoopWait}}
    retry_timeout: {{.RetryTimeout}}
    maximum_lag_on_failover: 1048576
    failsafe_mode: {{.Failsafe}}
{{- with .Sync}}
    synchronous_mode: {{if .Quorum}}quorum{{else}}true{{end}}
    synchronous_mode_strict: {{.Strict}}
{{- if .NodeCount}}
    synchronous_node_count: {{.NodeCount}}
{{- end}}
{{- end}}
{{- if .PermanentSlot}}
    slots:
      {{.PermanentSlot}}:
        type: physical
{{- end}}
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: {{.Listen}}:{{.PGPort}}
  connect_address: {{.Host}}:{{.PGPort}}
  data_dir: {{.Dir}}/data
  bin_dir: {{.BinDir}}
  pgpass: {{.Dir}}/pgpass
{{- if .PGExtra}}
{{.PGExtra}}
{{- end}}
  authentication:
    superuser: {username: postgres, password: {{printf "%q" .Passwords.Superuser}}}
    replication: {username: replicator, password: {{printf "%q" .Passwords.Replication}}}
    rewind: {username: rewinder, password: {{printf "%q" .Passwords.Rewind}}}
  parameters:
    unix_socket_directories: {{.Dir}}
    max_connections: 50
    shared_buffers: 32MB
{{- if .PGParams}}
{{.PGParams}}
{{- end}}
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 md5
{{- if .Subnet}}
    - host all all {{.Subnet}} md5
{{- end}}
    - host replication replicator 127.0.0.1/32 md5
{{- if .Subnet}}
    - host replication replicator {{.Subnet}} md5
{{- end}}
{{- with .Compat}}
pgnoded:
  compat: "{{.}}"
{{- end}}
tags:
  nofailover: false
  noloadbalance: false
{{- if not .Patroni}}
exporter:
  listen: {{.Host}}:{{.MetricPort}}
vip:
{{- with .VIP}}
  enabled: {{.Enabled}}
  address: {{.Address}}
  interface: {{.Interface}}
  arp_count: 3
  arp_interval: {{.ARPInterval}}
{{- else}}
  enabled: false
{{- end}}
{{- end}}
`))

// Render returns the node's configuration file.
func Render(o Options) ([]byte, error) {
	if o.Flavour == Patroni && (o.Secure != nil || o.VIP != nil || o.Compat != "" || (o.Sync != nil && o.Sync.Quorum)) {
		return nil, fmt.Errorf("node %s: Secure, VIP, Compat and Sync.Quorum are written for pgnoded only", o.Name)
	}
	if o.Namespace == "" || o.Scope == "" || o.Name == "" {
		return nil, fmt.Errorf("node config: namespace, scope and name are required (got %q, %q, %q)", o.Namespace, o.Scope, o.Name)
	}
	var buf bytes.Buffer
	data := struct {
		Options
		Patroni bool
	}{o, o.Flavour == Patroni}
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render config of node %s: %w", o.Name, err)
	}
	return buf.Bytes(), nil
}
