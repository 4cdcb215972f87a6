package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// markedLine returns the 1-based line of the YAML that carries the "#<" marker.
func markedLine(t *testing.T, doc string) int {
	t.Helper()
	for i, l := range strings.Split(doc, "\n") {
		if strings.Contains(l, "#<") {
			return i + 1
		}
	}
	t.Fatalf("no #< marker in document:\n%s", doc)
	return 0
}

// without removes the lines of minimal that contain any of the given substrings.
func without(drop ...string) string {
	var out []string
	for _, l := range strings.Split(minimal, "\n") {
		keep := true
		for _, d := range drop {
			if strings.Contains(l, d) {
				keep = false
			}
		}
		if keep {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestLoadBadInput(t *testing.T) {
	cases := []struct {
		name string
		doc  string // the line an error must point at carries "#<"; none means line 0
		key  string
		msg  string
	}{
		{"yaml syntax", minimal + "tags:\n  clonefrom: [true #<\n  nosync: false\n", "", "invalid YAML"},
		{"yaml bad indentation", strings.Replace(minimal, "  data_dir:", " data_dir: #<", 1), "", "did not find expected key"},
		{"yaml stray list item", minimal + "log:\n  level: INFO #<\n  - dir\n", "", "did not find expected key"},
		{"yaml unclosed quote", minimal + "log:\n  dir: '/x #<\n", "", "end of stream"},
		{"yaml mapping in scalar", minimal + "log:\n  dir: a: b #<\n", "", "mapping values are not allowed"},
		{"yaml tab indentation", minimal + "tags:\n\tclonefrom: true #<\n", "", "invalid YAML"},
		{"top level not a mapping", "- scope #<\n- name\n", "", "top level must be a mapping"},
		{"wrong type bool", minimal + "  use_pg_rewind: maybe #<\n", "postgresql.use_pg_rewind", `expected a boolean`},
		{"wrong type list", minimal + "tags:\n  clonefrom: true\nrestapi2: 1\n" + "watchdog:\n  safety_margin: lots #<\n", "watchdog.safety_margin", "expected an integer"},
		{"wrong type mapping", minimal + "log: verbose #<\n", "log", "expected a mapping"},
		{"wrong type string", minimal + "  bin_dir: [a, b] #<\n", "postgresql.bin_dir", "expected a string, got a list"},
		{"allowlist not a list", strings.Replace(minimal, "  connect_address: 127.0.0.1:8008\n",
			"  connect_address: 127.0.0.1:8008\n  allowlist: 10.0.0.1 #<\n", 1), "restapi.allowlist", "expected a list"},
		{"failover_priority", minimal + "tags:\n  failover_priority: high #<\n", "tags.failover_priority", "expected an integer"},
		{"dcs ttl type", minimal + "bootstrap:\n  dcs:\n    ttl: thirty #<\n", "bootstrap.dcs.ttl", "expected an integer"},
		{"dcs failsafe type", minimal + "bootstrap:\n  dcs:\n    failsafe_mode: sometimes #<\n", "bootstrap.dcs.failsafe_mode", "expected a boolean"},
		{"dcs quorum", minimal + "bootstrap:\n  dcs:\n    synchronous_mode: quorum #<\n", "bootstrap.dcs.synchronous_mode", "quorum"},
		{"initdb bad item", minimal + "bootstrap:\n  initdb:\n    - {a: 1, b: 2} #<\n", "bootstrap.initdb[0]", "one-key mapping"},
		{"missing scope", without("scope:"), "scope", "required key is missing"},
		{"missing data_dir", strings.Replace(without("data_dir"), "postgresql:", "postgresql: #<", 1), "postgresql.data_dir", "required key is missing"},
		{"missing restapi section", without("restapi:", "8008"), "restapi.listen", "required key is missing"},
		{"empty name", strings.Replace(minimal, "name: pg-test-1", "name: '' #<", 1), "name", "must not be empty"},
		{"missing etcd3", strings.Replace(without("host: 127.0.0.1:2379"), "etcd3:", "etcd3: #<", 1), "etcd3", "one of etcd3.host, etcd3.hosts or etcd3.url is required"},
		{"etcd v2", strings.Replace(minimal, "etcd3:", "etcd: #<", 1), "etcd", "pgnoded does not support the etcd v2 API (use an etcd3 section)"},
		{"consul", minimal + "consul: #<\n  host: 127.0.0.1:8500\n", "consul", "does not support the consul DCS"},
		{"etcd protocol", minimal + "  protocol: udp #<\n", "postgresql.protocol", ""}, // appended under postgresql: unknown, see below
		{"pg listen no port", strings.Replace(minimal, "listen: 127.0.0.1:5432", "listen: 5432 #<", 1), "postgresql.listen", `expected "host:port", got "5432"`},
		{"pg listen bad port", strings.Replace(minimal, "listen: 127.0.0.1:5432", "listen: 127.0.0.1:99999 #<", 1), "postgresql.listen", `expected "host:port"`},
		{"connect no host", strings.Replace(minimal, "connect_address: 127.0.0.1:5432", "connect_address: :5432 #<", 1), "postgresql.connect_address", "host is empty"},
		{"restapi listen", strings.Replace(minimal, "listen: 127.0.0.1:8008", "listen: localhost #<", 1), "restapi.listen", `expected "host:port"`},
		{"timing rule", minimal + "bootstrap:\n  dcs:\n    ttl: 20 #<\n    loop_wait: 10\n    retry_timeout: 10\n", "bootstrap.dcs", "loop_wait + 2*retry_timeout <= ttl"},
		{"timing rule defaults", minimal + "bootstrap:\n  dcs:\n    loop_wait: 11 #<\n", "bootstrap.dcs", "loop_wait (11) + 2*retry_timeout (10) = 31 > ttl (30)"},
		{"ttl minimum", minimal + "bootstrap:\n  dcs:\n    ttl: 1 #<\n    loop_wait: 1\n", "bootstrap.dcs.ttl", "at least 2"},
		{"loop_wait minimum", minimal + "bootstrap:\n  dcs:\n    loop_wait: 0 #<\n", "bootstrap.dcs.loop_wait", "at least 1"},
		{"vip bare address", minimal + "vip:\n  enabled: true\n  address: 10.10.10.2 #<\n", "vip.address", "CIDR"},
		{"vip garbage", minimal + "vip:\n  address: 10.10.10.300/24 #<\n", "vip.address", "CIDR"},
		{"vip enabled without address", minimal + "vip: #<\n  enabled: true\n", "vip.address", "required when vip.enabled"},
		{"bad duration", minimal + "vip:\n  arp_interval: fast #<\n", "vip.arp_interval", "expected a duration"},
		{"negative fence margin", minimal + "pgnoded:\n  fence:\n    margin: -1s #<\n", "pgnoded.fence.margin", "negative"},
		{"fence margin over ttl", minimal + "bootstrap:\n  dcs: {ttl: 3, loop_wait: 1, retry_timeout: 1}\npgnoded:\n  fence:\n    margin: 3s #<\n", "pgnoded.fence.margin", "shorter than"},
		{"bad compat", minimal + "pgnoded:\n  compat: '5.0' #<\n", "pgnoded.compat", `expected "3.0.2" or "4.1.4"`},
		{"negative postgres log size", minimal + "pgnoded:\n  postgres_log:\n    max_size: -1 #<\n", "pgnoded.postgres_log.max_size", "negative"},
		{"no postgres log copies", minimal + "pgnoded:\n  postgres_log:\n    keep: 0 #<\n", "pgnoded.postgres_log.keep", "at least 1"},
		{"watchdog mode", minimal + "watchdog:\n  mode: sometimes #<\n", "watchdog.mode", "expected off, automatic or required"},
		{"log level", minimal + "log:\n  level: LOUD #<\n", "log.level", "expected DEBUG"},
		{"verify_client without cafile", strings.Replace(minimal, "  connect_address: 127.0.0.1:8008\n",
			"  connect_address: 127.0.0.1:8008\n  certfile: /x.crt\n  verify_client: required #<\n", 1), "restapi.verify_client", "cafile"},
		{"replica method without command", minimal + "  create_replica_methods: [pgbackrest, basebackup] #<\n", "postgresql.create_replica_methods", "command is not set"},
		{"replica method section without command", minimal + "  create_replica_methods: [pgbackrest]\n  pgbackrest: #<\n    keep_data: true\n", "postgresql.pgbackrest", "command is not set"},
		{"pg_ctl_timeout", minimal + "  pg_ctl_timeout: 0 #<\n", "postgresql.pg_ctl_timeout", "must be positive"},
	}
	for _, tc := range cases {
		if tc.name == "etcd protocol" {
			tc.doc = strings.Replace(minimal, "  host: 127.0.0.1:2379\n", "  host: 127.0.0.1:2379\n  protocol: udp #<\n", 1)
			tc.key, tc.msg = "etcd3.protocol", "expected http or https"
		}
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "pgnoded.yml", tc.doc)
			line := 0
			if strings.Contains(tc.doc, "#<") {
				line = markedLine(t, tc.doc)
			}
			cfg, _, err := Load(path, nil)
			if err == nil {
				t.Fatalf("Load succeeded, want an error about %s", tc.key)
			}
			if cfg != nil {
				t.Errorf("Load returned a config along with the error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			var found *Error
			for _, e := range Errors(err) {
				if e.Key == tc.key && strings.Contains(e.Msg, tc.msg) {
					found = e
				}
			}
			if found == nil {
				t.Fatalf("no error with key %q and message containing %q in:\n%v", tc.key, tc.msg, err)
			}
			if found.File != path || found.Line != line {
				t.Errorf("error at %s:%d, want %s:%d (%v)", found.File, found.Line, path, line, found)
			}
			prefix := path
			if line > 0 {
				prefix = path + ":" + itoa(line)
			}
			if tc.key != "" {
				prefix += ": " + tc.key + ":"
			}
			if !strings.HasPrefix(found.Error(), prefix) {
				t.Errorf("message %q does not start with %q", found.Error(), prefix)
			}
		})
	}
}

func itoa(i int) string {
	if i >= 10 {
		return itoa(i/10) + string(rune('0'+i%10))
	}
	return string(rune('0' + i))
}

func TestLoadReportsEveryProblem(t *testing.T) {
	doc := `scope: pg-test
restapi:
  listen: 8008
  connect_address: 127.0.0.1:8008
etcd3:
  host: 127.0.0.1
postgresql:
  listen: 5432
  connect_address: 127.0.0.1:5432
  data_dir: /tmp/x
  use_pg_rewind: perhaps
bootstrap:
  dcs:
    ttl: 10
`
	path := writeFile(t, t.TempDir(), "pgnoded.yml", doc)
	_, _, err := Load(path, nil)
	got := map[string]int{}
	for _, e := range Errors(err) {
		got[e.Key] = e.Line
	}
	want := map[string]int{
		"name": 0, "restapi.listen": 3, "postgresql.listen": 8, "postgresql.use_pg_rewind": 11, "bootstrap.dcs": 14,
	}
	for k, line := range want {
		if l, ok := got[k]; !ok || l != line {
			t.Errorf("error for %s at line %d (present %v), want line %d; all:\n%v", k, l, ok, line, err)
		}
	}
	// Errors come sorted by line.
	errs := Errors(err)
	for i := 1; i < len(errs); i++ {
		if errs[i].Line < errs[i-1].Line {
			t.Errorf("errors not in line order: %v", err)
		}
	}
	if !strings.Contains(err.Error(), filepath.Base(path)+":8: postgresql.listen: expected \"host:port\", got \"5432\"") {
		t.Errorf("joined message lacks the listen error:\n%v", err)
	}
}

func TestUnknownKeysWarn(t *testing.T) {
	doc := minimal + `tags:
  clonefrom: true
  nosync: true
  nosync: false
ttl: 30
`
	path := writeFile(t, t.TempDir(), "pgnoded.yml", strings.Replace(doc,
		"  connect_address: 127.0.0.1:8008\n", "  connect_address: 127.0.0.1:8008\n  server_tokens: minimal\n", 1)+
		"log:\n  traceback_level: ERROR\n")
	cfg, warns, err := Load(path, nil)
	if err != nil {
		t.Fatalf("unknown keys must not be fatal: %v", err)
	}
	want := map[string]string{
		"restapi.server_tokens": "the Server header is not changed",
		"tags.nosync":           "duplicate key",
		"ttl":                   "dynamic-only",
		"log.traceback_level":   "no Python tracebacks",
	}
	got := map[string]Warning{}
	for _, w := range warns {
		got[w.Key] = w
	}
	for key, msg := range want {
		w, ok := got[key]
		if !ok || !strings.Contains(w.Msg, msg) || w.Line == 0 || w.File != path {
			t.Errorf("warning for %s = %+v (present %v), want %q with a line", key, w, ok, msg)
		}
	}
	if len(warns) != len(want) {
		t.Errorf("got %d warnings, want %d: %v", len(warns), len(want), warns)
	}
	if cfg.Tags.NoSync {
		t.Errorf("duplicate key: the last value must win")
	}
	if !strings.HasPrefix(got["restapi.server_tokens"].String(), path+":6: restapi.server_tokens: ") {
		t.Errorf("warning text = %q", got["restapi.server_tokens"].String())
	}
}

// A postgresql.<name> section with a command is a replica method that
// standby_cluster.create_replica_methods may name even when
// postgresql.create_replica_methods does not: it is not an unknown key. A
// section without a command is not a method and still warns.
func TestUnlistedReplicaMethodSections(t *testing.T) {
	doc := minimal + "  pgbackrest:\n    command: /usr/bin/pgbackrest --stanza=main restore\n  typo_section:\n    keep_data: true\n"
	_, warns, err := Load(writeFile(t, t.TempDir(), "pgnoded.yml", doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, w := range warns {
		got[w.Key] = true
	}
	if got["postgresql.pgbackrest"] {
		t.Errorf("postgresql.pgbackrest (a method with a command) warned: %v", warns)
	}
	if !got["postgresql.typo_section"] {
		t.Errorf("postgresql.typo_section (no command) not warned: %v", warns)
	}
}
