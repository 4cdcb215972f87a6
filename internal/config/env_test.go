package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func TestEnvOverridesWin(t *testing.T) {
	path := writeFile(t, t.TempDir(), "pgnoded.yml", minimal+`vip:
  enabled: false
  address: 10.0.0.5/24
exporter:
  listen: :9630
`)
	env := []string{
		"HOME=/root",
		"PATRONI_NAME=from-env",
		"PATRONI_SCOPE=scope-env",
		"PATRONI_NAMESPACE=/env/",
		"PATRONI_RESTAPI_LISTEN=0.0.0.0:18008",
		"PATRONI_RESTAPI_CONNECT_ADDRESS=10.1.1.1:18008",
		"PATRONI_RESTAPI_USERNAME=api",
		"PATRONI_RESTAPI_PASSWORD=secret",
		"PATRONI_RESTAPI_CERTFILE=/etc/pgnoded/server.crt",
		"PATRONI_RESTAPI_ALLOWLIST=[10.0.0.1, 10.0.0.0/24]",
		"PATRONI_POSTGRESQL_LISTEN=127.0.0.1,10.1.1.1:15432",
		"PATRONI_POSTGRESQL_CONNECT_ADDRESS=10.1.1.1:15432",
		"PATRONI_POSTGRESQL_DATA_DIR=/srv/pg",
		"PATRONI_POSTGRESQL_BIN_DIR=/usr/lib/postgresql/15/bin",
		"PATRONI_POSTGRESQL_PGPASS=/tmp/pgpass",
		"PATRONI_SUPERUSER_USERNAME=dba",
		"PATRONI_SUPERUSER_PASSWORD=dbapw",
		"PATRONI_REPLICATION_USERNAME=repl",
		"PATRONI_REPLICATION_PASSWORD=replpw",
		"PATRONI_REWIND_USERNAME=rew",
		"PATRONI_ETCD3_HOSTS=10.0.0.1:2379,10.0.0.2",
		"PATRONI_ETCD3_PROTOCOL=https",
		"PATRONI_ETCD3_USERNAME=etcduser",
		"PATRONI_ETCD3_CACERT=/etc/ca.crt",
		"PATRONI_LOG_LEVEL=DEBUG",
		"PATRONI_LOG_DIR=/var/log/pgnoded",
		"PGNODED_VIP_ENABLED=on",
		"PGNODED_VIP_ADDRESS=10.1.1.100/24",
		"PGNODED_VIP_INTERFACE=eth1",
		"PGNODED_EXPORTER_LISTEN=127.0.0.1:19630",
		"PGNODED_EXPORTER_CONFIG=/etc/pg_exporter.yml",
		"PGNODED_OS_USER=pgsql",
		"PGNODED_COMPAT=4.1.4",
	}
	cfg, warns, err := Load(path, env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", cfg.Name, "from-env"},
		{"scope", cfg.Scope, "scope-env"},
		{"namespace", cfg.Namespace, "/env"},
		{"rest listen", cfg.RESTListen(), "0.0.0.0:18008"},
		{"api url", cfg.APIURL(), "https://10.1.1.1:18008/patroni"},
		{"rest auth", cfg.RESTAPI.Authentication, Auth{Username: "api", Password: "secret"}},
		{"allowlist", cfg.RESTAPI.Allowlist, []string{"10.0.0.1", "10.0.0.0/24"}},
		{"pg listen", cfg.PGListenAddresses(), "127.0.0.1,10.1.1.1"},
		{"pg local", hostPort(cfg.PGHostPort()), "127.0.0.1:15432"},
		{"conn url", cfg.ConnURL(), "postgres://10.1.1.1:15432/postgres"},
		{"data dir", cfg.PostgreSQL.DataDir, "/srv/pg"},
		{"config dir follows data dir", cfg.PostgreSQL.ConfigDir, "/srv/pg"},
		{"bin dir", cfg.PostgreSQL.BinDir, "/usr/lib/postgresql/15/bin"},
		{"pgpass", cfg.PostgreSQL.PgPass, "/tmp/pgpass"},
		{"superuser", cfg.PostgreSQL.Authentication.Superuser, PGUser{Username: "dba", Password: "dbapw"}},
		{"replication", cfg.PostgreSQL.Authentication.Replication, PGUser{Username: "repl", Password: "replpw"}},
		{"rewind", cfg.RewindUser().Username, "rew"},
		{"etcd", cfg.EtcdEndpoints(), []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}},
		{"etcd user", cfg.Etcd3.Username, "etcduser"},
		{"etcd cacert", cfg.Etcd3.CACert, "/etc/ca.crt"},
		{"log", []string{cfg.Log.Level, cfg.Log.Dir}, []string{"DEBUG", "/var/log/pgnoded"}},
		{"vip enabled", cfg.VIP.Enabled, true},
		{"vip prefix", cfg.VIP.Prefix.String(), "10.1.1.100/24"},
		{"vip interface", cfg.VIP.Interface, "eth1"},
		{"exporter", []string{cfg.Exporter.Listen, cfg.Exporter.Config}, []string{"127.0.0.1:19630", "/etc/pg_exporter.yml"}},
		{"os user", cfg.PGNoded.OSUser, "pgsql"},
		{"compat", cfg.PGNoded.Compat, cluster.Compat4},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if at := cfg.Position("postgresql.data_dir"); at != (Position{File: "env PATRONI_POSTGRESQL_DATA_DIR"}) {
		t.Errorf("Position(postgresql.data_dir) = %v", at)
	}
}

func TestEnvListForms(t *testing.T) {
	path := writeFile(t, t.TempDir(), "pgnoded.yml", minimal)
	for _, tc := range []struct{ value, want string }{
		{"[a:2379, 'b:2380']", "http://a:2379 http://b:2380"},
		{"a:2379, b", "http://a:2379 http://b:2379"},
		{"[fd00::1]:2379", "http://[fd00::1]:2379"},
	} {
		cfg, _, err := Load(path, []string{"PATRONI_ETCD3_HOSTS=" + tc.value})
		if err != nil {
			t.Fatalf("%q: %v", tc.value, err)
		}
		if got := strings.Join(cfg.EtcdEndpoints(), " "); got != tc.want {
			t.Errorf("PATRONI_ETCD3_HOSTS=%q: endpoints %q, want %q", tc.value, got, tc.want)
		}
	}
}

func TestEnvBadValues(t *testing.T) {
	path := writeFile(t, t.TempDir(), "pgnoded.yml", minimal)
	cases := []struct {
		env, key, msg string
	}{
		{"PATRONI_POSTGRESQL_LISTEN=5432", "postgresql.listen", `expected "host:port", got "5432"`},
		{"PGNODED_VIP_ADDRESS=10.0.0.1", "vip.address", "CIDR"},
		{"PGNODED_VIP_ENABLED=perhaps", "vip.enabled", "expected a boolean"},
		{"PGNODED_VIP_ARP_INTERVAL=soon", "vip.arp_interval", "expected a duration"},
		{"PGNODED_COMPAT=2", "pgnoded.compat", "expected"},
		{"PATRONI_RESTAPI_ALLOWLIST=[a, b", "restapi.allowlist", "invalid YAML"},
		{"PATRONI_ETCD_HOST=127.0.0.1:2379", "etcd", "pgnoded does not support the etcd v2 API (use an etcd3 section)"},
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			_, _, err := Load(path, []string{tc.env})
			name, _, _ := strings.Cut(tc.env, "=")
			for _, e := range Errors(err) {
				if e.Key == tc.key && strings.Contains(e.Msg, tc.msg) {
					if e.File != "env "+name || e.Line != 0 {
						t.Errorf("error located at %s:%d, want env %s", e.File, e.Line, name)
					}
					if !strings.HasPrefix(e.Error(), "env "+name+": "+tc.key+": ") {
						t.Errorf("message %q", e.Error())
					}
					return
				}
			}
			t.Errorf("no error for %s containing %q in %v", tc.key, tc.msg, err)
		})
	}
}

func TestEnvUnknownPatroniVariableWarns(t *testing.T) {
	path := writeFile(t, t.TempDir(), "pgnoded.yml", minimal)
	_, warns, err := Load(path, []string{"PATRONI_FOO=1", "PATRONI_RESTAPI_SERVER_TOKENS=Minimal", "PGNODED_CONFIG=/x"})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, w := range warns {
		keys[w.File+"|"+w.Key] = true
	}
	if !keys["env PATRONI_FOO|"] || !keys["env PATRONI_RESTAPI_SERVER_TOKENS|restapi.server_tokens"] || len(warns) != 2 {
		t.Errorf("warnings = %v", warns)
	}
}

func TestPatroniConfiguration(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.yml")
	env := []string{
		"PATRONI_CONFIGURATION=" + minimal,
		"PATRONI_NAME=ignored", // Patroni ignores the other PATRONI_* variables then
		"PGNODED_VIP_ADDRESS=10.0.0.9/24",
	}
	for _, path := range []string{missing, ""} {
		cfg, _, err := Load(path, env)
		if err != nil {
			t.Fatalf("Load(%q): %v", path, err)
		}
		if cfg.Name != "pg-test-1" || cfg.VIP.Address != "10.0.0.9/24" {
			t.Errorf("Load(%q): name %q vip %q", path, cfg.Name, cfg.VIP.Address)
		}
		if !reflect.DeepEqual(cfg.Sources, []string{"PATRONI_CONFIGURATION"}) {
			t.Errorf("sources = %v", cfg.Sources)
		}
	}
	_, _, err := Load("", []string{"PATRONI_CONFIGURATION=scope: [x"})
	if errs := Errors(err); len(errs) != 1 || errs[0].File != "PATRONI_CONFIGURATION" || errs[0].Line != 1 {
		t.Errorf("bad PATRONI_CONFIGURATION: %v", err)
	}
}

func TestEnvOnly(t *testing.T) {
	env := []string{
		"PATRONI_SCOPE=s", "PATRONI_NAME=n",
		"PATRONI_RESTAPI_LISTEN=127.0.0.1:8008", "PATRONI_RESTAPI_CONNECT_ADDRESS=127.0.0.1:8008",
		"PATRONI_ETCD3_HOST=127.0.0.1:2379",
		"PATRONI_POSTGRESQL_LISTEN=127.0.0.1:5432", "PATRONI_POSTGRESQL_CONNECT_ADDRESS=127.0.0.1:5432",
		"PATRONI_POSTGRESQL_DATA_DIR=/tmp/d", "PATRONI_REPLICATION_USERNAME=r",
		"PGNODED_VIP_ARP_INTERVAL=100ms",
	}
	cfg, warns, err := Load("", env)
	if err != nil || len(warns) != 0 {
		t.Fatalf("Load: %v %v", err, warns)
	}
	if cfg.Name != "n" || cfg.VIP.ARPInterval != 100*time.Millisecond {
		t.Errorf("cfg = %+v", cfg)
	}
	_, _, err = Load("", env[2:])
	if errs := Errors(err); len(errs) != 2 || errs[0].File != "environment" {
		t.Errorf("missing scope and name: %v", err)
	}
}
