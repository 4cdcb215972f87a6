package config

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// minimal is a small valid configuration the error tests start from.
const minimal = `scope: pg-test
name: pg-test-1
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
etcd3:
  host: 127.0.0.1:2379
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /tmp/pgnoded-test-data
  authentication:
    replication:
      username: replicator
`

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPigsty(t *testing.T) {
	cfg, warns, err := Load("testdata/pigsty.yml", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	// Pigsty's file is used as it is: create_replica_methods [basebackup, pgbackrest] included.
	if len(warns) != 0 {
		t.Errorf("unexpected warnings: %v", warns)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"scope", cfg.Scope, "pg-test"},
		{"name", cfg.Name, "pg-test-1"},
		{"namespace", cfg.Namespace, "/pg"},
		{"etcd hosts", []string(cfg.Etcd3.Hosts), []string{"10.10.10.10:2379", "10.10.10.11:2379", "10.10.10.12:2379"}},
		{"etcd endpoints", cfg.EtcdEndpoints(), []string{"https://10.10.10.10:2379", "https://10.10.10.11:2379", "https://10.10.10.12:2379"}},
		{"etcd user", cfg.Etcd3.Username, "pg-test"},
		{"etcd cacert", cfg.Etcd3.CACert, "/pg/cert/ca.crt"},
		{"restapi listen", cfg.RESTListen(), "10.10.10.11:8008"},
		{"api url", cfg.APIURL(), "http://10.10.10.11:8008/patroni"},
		{"restapi auth", cfg.RESTAPI.Authentication, Auth{Username: "postgres", Password: "Patroni.API"}},
		{"allowlist", cfg.RESTAPI.Allowlist, []string{"10.10.10.10", "10.10.10.11", "10.10.10.12", "10.10.10.13"}},
		{"ctl insecure", cfg.Ctl.Insecure, true},
		{"tags clonefrom", cfg.Tags.CloneFrom, true},
		{"tags custom", cfg.Tags.Custom, map[string]any{"version": "16", "spec": "2C.4G.80G", "conf": "oltp.yml"}},
		{"effective tags", cfg.EffectiveTags(), map[string]any{"clonefrom": true, "version": "16", "spec": "2C.4G.80G", "conf": "oltp.yml"}},
		{"watchdog mode", cfg.Watchdog.Mode, "off"},
		{"failsafe", cfg.Bootstrap.Dynamic.FailsafeMode, true},
		{"ttl", cfg.Bootstrap.Dynamic.TTL, 30},
		{"loop_wait", cfg.Bootstrap.Dynamic.LoopWait, 5},
		{"retry_timeout", cfg.Bootstrap.Dynamic.RetryTimeout, 10},
		{"primary_start_timeout", cfg.Bootstrap.Dynamic.PrimaryStartTimeout, 25},
		{"dcs use_pg_rewind", cfg.Bootstrap.Dynamic.UsePgRewind, true},
		{"dcs use_slots", cfg.Bootstrap.Dynamic.UseSlots, true},
		{"dcs max_connections", cfg.Bootstrap.Dynamic.Parameters["max_connections"], 500},
		{"dcs wal_level", cfg.Bootstrap.Dynamic.Parameters["wal_level"], "logical"},
		{"dcs custom key kept", cfg.Bootstrap.DCS["pg_cluster"], "pg-test"},
		{"initdb", cfg.Bootstrap.InitDB.Args(), []string{"--data-checksums", "--encoding=UTF8", "--locale=C", "--lc-collate=C", "--lc-ctype=C"}},
		{"pg listen", cfg.PGListenAddresses(), "0.0.0.0"},
		{"pg local", hostPort(cfg.PGHostPort()), "127.0.0.1:5432"},
		{"pg connect", hostPort(cfg.ConnectHostPort()), "10.10.10.11:5432"},
		{"conn url", cfg.ConnURL(), "postgres://10.10.10.11:5432/postgres"},
		{"config_dir", cfg.PostgreSQL.ConfigDir, "/pg/data"},
		{"use_pg_rewind", cfg.PostgreSQL.UsePgRewind, true},
		{"remove on rewind failure", cfg.PostgreSQL.RemoveDataDirectoryOnRewindFailure, true},
		{"use_unix_socket", cfg.PostgreSQL.UseUnixSocket, true},
		{"parameters", cfg.PostgreSQL.Parameters, map[string]any{"unix_socket_directories": "/var/run/postgresql, /tmp"}},
		{"replication user", cfg.PostgreSQL.Authentication.Replication.Username, "replicator"},
		{"rewind user", cfg.RewindUser().Username, "replicator"},
		{"callbacks", cfg.PostgreSQL.Callbacks.OnRoleChange, "/pg/bin/pg-failover-callback"},
		{"replica methods", cfg.PostgreSQL.CreateReplicaMethods, []string{"basebackup", "pgbackrest"}},
		{"pgbackrest section", cfg.PostgreSQL.ReplicaMethods["pgbackrest"].(map[string]any)["keep_data"], true},
		{"basebackup", cfg.PostgreSQL.Basebackup.Args(), []string{"--max-rate=1000M", "--checkpoint=fast", "--verbose", "--progress"}},
		{"pg_ctl_timeout", cfg.PostgreSQL.PgCtlTimeout, 60 * time.Second},
		{"log dir", cfg.Log.Dir, "/pg/log/patroni"},
		{"log file_size", cfg.Log.FileSize, int64(33554432)},
		{"exporter default", cfg.Exporter, Exporter{Enabled: true, Listen: ":9630", ExcludeDatabases: CommaList{"template0", "template1"},
			ConfigSearch: CommaList{"/etc/pg_exporter.yml", "/etc/pg_exporter"}, EnvFile: "/etc/default/pg_exporter"}},
		{"vip default", cfg.VIP.Enabled, false},
		{"compat default", cfg.PGNoded.Compat, cluster.Compat302},
		{"os user default", cfg.PGNoded.OSUser, "postgres"},
		{"fence default", cfg.PGNoded.Fence.Enabled, true},
		{"sources", cfg.Sources, []string{"testdata/pigsty.yml"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if at := cfg.Position("postgresql.listen"); at.File != "testdata/pigsty.yml" || at.Line == 0 {
		t.Errorf("Position(postgresql.listen) = %v", at)
	}
}

func hostPort(h string, p int) string { return net.JoinHostPort(h, strconv.Itoa(p)) }

func TestLoadPgnodedSections(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "pgnoded.yml", minimal+`vip:
  enabled: yes
  address: fd00::10/64
  interface: auto
  arp_count: 3
  arp_interval: 250ms
exporter:
  enabled: false
  listen: 127.0.0.1:9631
  config: /etc/pg_exporter.yml
  exclude_databases: template0, template1, scratch
  config_search: []
  env_file: ""
pgnoded:
  os_user: pgsql
  compat: 4.1.4
  fence:
    enabled: off
    margin: 1.5
  postgres_log:
    max_size: 1048576
bootstrap:
  dcs:
    ttl: 3
    loop_wait: 1
    retry_timeout: 1
`)
	cfg, warns, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	want := VIP{Enabled: true, Address: "fd00::10/64", ARPCount: 3, ARPInterval: 250 * time.Millisecond}
	want.Prefix = cfg.VIP.Prefix
	if !reflect.DeepEqual(cfg.VIP, want) || cfg.VIP.Prefix.String() != "fd00::10/64" {
		t.Errorf("vip = %+v", cfg.VIP)
	}
	wantExp := Exporter{Listen: "127.0.0.1:9631", Config: "/etc/pg_exporter.yml", ExcludeDatabases: CommaList{"template0", "template1", "scratch"},
		ConfigSearch: CommaList{}}
	if !reflect.DeepEqual(cfg.Exporter, wantExp) {
		t.Errorf("exporter = %+v", cfg.Exporter)
	}
	wantPG := PGNoded{OSUser: "pgsql", Compat: cluster.Compat4, Fence: Fence{Margin: 1500 * time.Millisecond},
		PostgresLog: PostgresLog{MaxSize: 1 << 20, Keep: 4}}
	if !reflect.DeepEqual(cfg.PGNoded, wantPG) {
		t.Errorf("pgnoded = %+v", cfg.PGNoded)
	}
	if d := cfg.Bootstrap.Dynamic; d.TTL != 3 || d.LoopWait != 1 || d.RetryTimeout != 1 {
		t.Errorf("timing = %d/%d/%d", d.TTL, d.LoopWait, d.RetryTimeout)
	}
}

func TestLoadDefaults(t *testing.T) {
	path := writeFile(t, t.TempDir(), "pgnoded.yml", minimal)
	cfg, _, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Bootstrap.Dynamic
	if d.TTL != 30 || d.LoopWait != 10 || d.RetryTimeout != 10 || d.MaximumLagOnFailover != 1048576 {
		t.Errorf("dynamic defaults = %+v", d)
	}
	if cfg.Namespace != "/service" {
		t.Errorf("namespace = %q", cfg.Namespace)
	}
	if cfg.PostgreSQL.ConfigDir != cfg.PostgreSQL.DataDir || cfg.PostgreSQL.Database != "postgres" {
		t.Errorf("postgresql defaults = %+v", cfg.PostgreSQL)
	}
	if cfg.Etcd3.Protocol != "http" || !slices.Equal(cfg.EtcdEndpoints(), []string{"http://127.0.0.1:2379"}) {
		t.Errorf("etcd = %v", cfg.EtcdEndpoints())
	}
	if cfg.VIP.ARPCount != 5 || cfg.VIP.ARPInterval != time.Second || cfg.Watchdog.Mode != "automatic" {
		t.Errorf("vip/watchdog defaults = %+v %+v", cfg.VIP, cfg.Watchdog)
	}
}

func TestLoadDirectory(t *testing.T) {
	cfg, warns, err := Load("testdata/confdir", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if cfg.Name != "pg-test-2" || cfg.PostgreSQL.ConnectAddress != "127.0.0.2:5432" {
		t.Errorf("later file did not win: name %q connect %q", cfg.Name, cfg.PostgreSQL.ConnectAddress)
	}
	if cfg.PostgreSQL.DataDir != "/tmp/pgnoded-test-data" {
		t.Errorf("earlier key lost in merge: data_dir %q", cfg.PostgreSQL.DataDir)
	}
	wantParams := map[string]any{"max_connections": 100, "work_mem": "8MB"}
	if !reflect.DeepEqual(cfg.PostgreSQL.Parameters, wantParams) {
		t.Errorf("parameters = %v, want deep merge %v", cfg.PostgreSQL.Parameters, wantParams)
	}
	if !cfg.Tags.NoFailover {
		t.Errorf("tags from the yaml file not merged")
	}
	wantSources := []string{"testdata/confdir/00-base.yml", "testdata/confdir/10-node.yaml", "testdata/confdir/20-tags.yml"}
	if !slices.Equal(cfg.Sources, wantSources) {
		t.Errorf("sources = %v, want %v", cfg.Sources, wantSources)
	}
	if at := cfg.Position("name"); at.File != "testdata/confdir/10-node.yaml" || at.Line != 2 {
		t.Errorf("Position(name) = %v", at)
	}
}

func TestLoadDirectoryErrorNamesFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "00-base.yml", minimal)
	writeFile(t, dir, "10-bad.yml", "postgresql:\n  use_pg_rewind: maybe\n")
	_, _, err := Load(dir, nil)
	errs := Errors(err)
	if len(errs) != 1 || errs[0].File != filepath.Join(dir, "10-bad.yml") || errs[0].Line != 2 ||
		errs[0].Key != "postgresql.use_pg_rewind" {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := Load(t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "no *.yml") {
		t.Errorf("empty directory: err = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yml")
	_, _, err := Load(missing, nil)
	errs := Errors(err)
	if len(errs) != 1 || errs[0].File != missing || !strings.Contains(errs[0].Msg, "no such file") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadAnchorsAndMergeKeys(t *testing.T) {
	path := writeFile(t, t.TempDir(), "pgnoded.yml", minimal+`tags:
  clonefrom: true
x-common: &auth
  username: replicator
  password: secret
`)
	// Unknown x-common is a warning; an alias of it used elsewhere resolves.
	_, warns, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || warns[0].Key != "x-common" {
		t.Errorf("warnings = %v", warns)
	}
	path = writeFile(t, t.TempDir(), "pgnoded.yml", `base: &base
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
scope: s
name: n
restapi:
  <<: *base
  listen: 127.0.0.1:9008
etcd3: {host: 127.0.0.1}
postgresql: {listen: "127.0.0.1:5432", connect_address: "127.0.0.1:5432", data_dir: /tmp/d,
  authentication: {replication: {username: r}}}
`)
	cfg, _, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RESTAPI.Listen != "127.0.0.1:9008" || cfg.RESTAPI.ConnectAddress != "127.0.0.1:8008" {
		t.Errorf("merge key: restapi = %+v", cfg.RESTAPI)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, warns, err := Load("../../deploy/pgnoded.example.yml", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if !cfg.VIP.Enabled || cfg.VIP.Prefix.String() != "10.10.10.3/24" || cfg.VIP.Interface != "" {
		t.Errorf("vip = %+v", cfg.VIP)
	}
	if cfg.Namespace != "/pg" || cfg.Scope != "pg-test" || cfg.PGNoded.Compat != cluster.Compat302 {
		t.Errorf("namespace %q scope %q compat %q", cfg.Namespace, cfg.Scope, cfg.PGNoded.Compat)
	}
}
