package config

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// The generated table in docs/ must match the key table in the code.
func TestKeysDocIsCurrent(t *testing.T) {
	got, err := os.ReadFile("../../docs/config-keys.md")
	if err != nil {
		t.Fatalf("docs/config-keys.md: %v (run go generate ./internal/config)", err)
	}
	if string(got) != RenderKeysDoc() {
		t.Fatalf("docs/config-keys.md is stale: run go generate ./internal/config")
	}
}

func TestKeyTableIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range keyTable {
		id := string(rune('0'+r.Where)) + r.Key
		if seen[id] {
			t.Errorf("%s listed twice", r.Key)
		}
		seen[id] = true
		if r.Note == "" || r.Class == 0 || r.Where == 0 {
			t.Errorf("%s: incomplete row %+v", r.Key, r)
		}
		if r.Class == Honoured && (r.When != nil || r.Decide != nil) {
			t.Errorf("%s: an honoured row has no condition", r.Key)
		}
		if r.Class == Refused && r.Decide == nil && !strings.HasPrefix(r.Note, "pgnoded does not support ") && !strings.HasPrefix(r.Key, "bootstrap.<") {
			t.Errorf("%s: a refusal must read \"pgnoded does not support … (what to do)\": %q", r.Key, r.Note)
		}
	}
	for _, e := range EnvTable() {
		if e.Class == 0 {
			t.Errorf("%s: no class", e.Name)
		}
	}
	c := Counts()
	if c[Honoured] == 0 || c[Refused] == 0 || c[Warned] == 0 {
		t.Errorf("counts %v", c)
	}
}

// Every refusal the drop-in rules name, each from the file with its line.
func TestRefusedKeysInFile(t *testing.T) {
	cases := []struct {
		name, doc, key, msg string
	}{
		{"synchronous_mode quorum", "bootstrap:\n  dcs:\n    synchronous_mode: quorum #<\n", "bootstrap.dcs.synchronous_mode", "set synchronous_mode: on"},
		{"synchronous_node_count 0", "bootstrap:\n  dcs:\n    synchronous_mode: true\n    synchronous_node_count: 0 #<\n", "bootstrap.dcs.synchronous_node_count", "at least 1"},
		{"citus", "citus: #<\n  group: 0\n  database: citus\n", "citus", "Citus"},
		{"bootstrap.method without its command", "bootstrap:\n  method: pgbackrest #<\n  pgbackrest:\n    keep_existing_recovery_conf: true\n", "bootstrap.method", "bootstrap.pgbackrest.command"},
		{"watchdog required", "watchdog:\n  mode: required #<\n", "watchdog.mode", "required watchdog"},
		{"etcd v2", "etcd: #<\n  host: 127.0.0.1:2379\n", "etcd", "etcd v2 API"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := minimal + c.doc
			line := 0
			for i, l := range strings.Split(doc, "\n") {
				if strings.Contains(l, "#<") {
					line = i + 1
				}
			}
			path := writeFile(t, t.TempDir(), "pgnoded.yml", doc)
			for _, load := range []func() error{
				func() error { _, _, err := Load(path, nil); return err },
				func() error { _, err := Validate(path, nil); return err },
			} {
				err := load()
				found := false
				for _, e := range Errors(err) {
					if e.Key == c.key && e.Line == line && strings.Contains(e.Msg, c.msg) &&
						strings.HasPrefix(e.Msg, "pgnoded does not support ") && strings.HasSuffix(e.Msg, ")") {
						found = true
					}
				}
				if !found {
					t.Errorf("want %s:%d: %s: pgnoded does not support …%s…, got %v", path, line, c.key, c.msg, err)
				}
			}
		})
	}
}

func TestRefusedKeyFromEnvironment(t *testing.T) {
	path := writeFile(t, t.TempDir(), "pgnoded.yml", minimal)
	_, _, err := Load(path, []string{"PATRONI_CITUS_GROUP=1", "PATRONI_CITUS_DATABASE=citus"})
	if err == nil || !strings.Contains(err.Error(), "env PATRONI_CITUS_") || !strings.Contains(err.Error(), "citus: pgnoded does not support Citus") {
		t.Fatalf("err = %v", err)
	}
}

func TestWarnedKeysInFile(t *testing.T) {
	cases := []struct {
		name, doc, key, msg string // msg "" means: no warning for key
	}{
		{"watchdog automatic explicit", "watchdog:\n  mode: automatic\n", "watchdog.mode", "fence guard"},
		{"watchdog default is silent", "", "watchdog.mode", ""},
		{"watchdog off is silent", "watchdog:\n  mode: off\n  device: /dev/watchdog\n", "watchdog.device", ""},
		{"vip address while disabled", "vip:\n  enabled: false\n  address: 10.0.0.2/24\n", "vip.address", "not bound"},
		{"vip address enabled is silent", "vip:\n  enabled: true\n  address: 10.0.0.2/24\n", "vip.address", ""},
		{"synchronous_mode false is silent", "bootstrap:\n  dcs:\n    synchronous_mode: false\n    synchronous_node_count: 2\n", "bootstrap.dcs.synchronous_mode", ""},
		{"primary_race_backoff", "bootstrap:\n  dcs:\n    primary_race_backoff: 5\n", "bootstrap.dcs.primary_race_backoff", "back-off"},
		{"post_bootstrap is run", "bootstrap:\n  post_bootstrap: /bin/true\n", "bootstrap.post_bootstrap", ""},
		{"custom bootstrap method is run", "bootstrap:\n  method: pgbackrest\n  pgbackrest:\n    command: pgbackrest --stanza=x restore\n    no_params: true\n    recovery_conf:\n      recovery_target_action: promote\n", "bootstrap.method", ""},
		{"replica methods without basebackup are run", "postgresql:\n  create_replica_methods: [pgbackrest]\n  pgbackrest:\n    command: pgbackrest restore\n    no_leader: true\n", "postgresql.create_replica_methods", ""},
		{"log format", "log:\n  format: '%(message)s'\n", "log.format", "not applied"},
		{"dynamic pg_hba not local", "bootstrap:\n  dcs:\n    postgresql:\n      pg_hba: [host all all 0.0.0.0/0 md5]\n", "bootstrap.dcs.postgresql.pg_hba", "local postgresql.pg_hba"},
		{"custom dcs key is kept", "bootstrap:\n  dcs:\n    pg_version: 16\n", "bootstrap.dcs.pg_version", ""},
		{"unix socket false", "postgresql:\n  use_unix_socket: false\n", "postgresql.use_unix_socket", "unix socket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := minimal + c.doc
			if strings.HasPrefix(c.doc, "postgresql:") {
				doc = strings.Replace(minimal, "postgresql:\n", c.doc, 1)
			}
			path := writeFile(t, t.TempDir(), "pgnoded.yml", doc)
			_, warns, err := Load(path, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var got []Warning
			for _, w := range warns {
				if w.Key == c.key {
					got = append(got, w)
				}
			}
			switch {
			case c.msg == "" && len(got) > 0:
				t.Errorf("unexpected warning %v", got)
			case c.msg != "" && (len(got) != 1 || !strings.Contains(got[0].Msg, c.msg) || got[0].Line == 0):
				t.Errorf("want one warning for %s containing %q, got %v (all %v)", c.key, c.msg, got, warns)
			}
		})
	}
}

func TestCheckDynamic(t *testing.T) {
	cases := []struct {
		doc     string
		refused []string
		warned  []string
	}{
		{`{"ttl": 30, "synchronous_mode": false, "pg_version": 16}`, nil, nil},
		{`{"synchronous_mode": true, "synchronous_node_count": 2, "maximum_lag_on_syncnode": 1048576}`, nil, nil},
		{`{"synchronous_mode": "quorum"}`, []string{"synchronous_mode"}, nil},
		{`{"synchronous_mode": "sometimes"}`, []string{"synchronous_mode"}, nil},
		{`{"synchronous_mode": true, "synchronous_node_count": 0}`, []string{"synchronous_node_count"}, nil},
		{`{"synchronous_mode": true, "synchronous_node_count": "two"}`, []string{"synchronous_node_count"}, nil},
		{`{"synchronous_mode": 1}`, nil, nil},
		{`{"synchronous_mode_strict": "on"}`, nil, nil},
		{`{"synchronous_mode": true, "primary_stop_timeout": 30}`, nil, []string{"primary_stop_timeout"}},
		{`{"standby_cluster": {"host": "10.0.0.1", "create_replica_methods": ["pgbackrest"]}}`, nil, nil},
		{`{"standby_cluster": {"host": "10.0.0.1", "port": 5432, "primary_slot_name": "s", "restore_command": "cp", "archive_cleanup_command": "x", "recovery_min_apply_delay": "1s"}}`, nil, nil},
		{`{"standby_cluster": {"host": "10.0.0.1", "create_replica_methods": ["basebackup", "wal_g"], "hots": "x"}}`, nil, []string{"standby_cluster.hots"}},
		{`{"standby_cluster": null}`, nil, nil},
		{`{"postgresql": {"use_slots": true, "pg_hba": ["local all all trust"]}}`, nil, []string{"postgresql.pg_hba"}},
	}
	for _, c := range cases {
		dec := json.NewDecoder(strings.NewReader(c.doc))
		dec.UseNumber()
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		refused, warned := CheckDynamic(doc)
		var rk, wk []string
		for _, r := range refused {
			rk = append(rk, r.Key)
			if !strings.HasPrefix(r.Msg, "pgnoded does not support ") {
				t.Errorf("%s: message %q", c.doc, r.Msg)
			}
		}
		for _, w := range warned {
			wk = append(wk, w.Key)
		}
		if strings.Join(rk, ",") != strings.Join(c.refused, ",") || strings.Join(wk, ",") != strings.Join(c.warned, ",") {
			t.Errorf("%s: refused %v warned %v, want %v %v", c.doc, rk, wk, c.refused, c.warned)
		}
	}
}

// Found by FuzzLoad: an anchor used inside itself used to expand until the
// node limit, building ever longer key paths (minutes and gigabytes).
func TestRecursiveAliasIsAnError(t *testing.T) {
	for _, doc := range []string{"a: &x {b: *x}\n", "a: &x [1, *x]\n", minimal + "tags: &t {<<: *t}\n"} {
		path := writeFile(t, t.TempDir(), "pgnoded.yml", doc)
		_, _, err := Load(path, nil)
		if err == nil || !strings.Contains(err.Error(), "recursive YAML alias") {
			t.Errorf("%q: err = %v", doc, err)
		}
	}
}

// pgnodectl reads a file with refused settings (it only needs to reach the cluster).
func TestLoadForToolWarnsRefusals(t *testing.T) {
	path := writeFile(t, t.TempDir(), "pgnoded.yml", minimal+"citus: {group: 0}\nbootstrap:\n  dcs:\n    synchronous_mode: quorum\n")
	if _, _, err := Load(path, nil); err == nil {
		t.Fatal("Load accepted refused settings")
	}
	cfg, warns, err := LoadForTool(path, nil)
	if err != nil || cfg == nil {
		t.Fatalf("LoadForTool: %v", err)
	}
	n := 0
	for _, w := range warns {
		if strings.HasPrefix(w.Msg, "pgnoded does not support ") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("want 2 refusals as warnings, got %v", warns)
	}
}

// Every key the loader decodes has a row: a new field without one would be
// accepted without the table saying what pgnoded does with it.
func TestEveryFieldHasARow(t *testing.T) {
	var walk func(rt reflect.Type, prefix string)
	walk = func(rt reflect.Type, prefix string) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			tag := f.Tag.Get("yaml")
			if !f.IsExported() || tag == "" || tag == "-" || tag == ",rest" {
				continue
			}
			path := tag
			if prefix != "" {
				path = prefix + "." + tag
			}
			ft := f.Type
			if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]() && ft.PkgPath() == rt.PkgPath() {
				walk(ft, path)
				continue
			}
			if ruleFor(path) == nil && Rule(Dynamic, path) == nil {
				t.Errorf("%s has no row in the key table (internal/config/keys.go)", path)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
}

// A standby_cluster section loads (no refusal, no warning) and a bad port is an error naming the key.
func TestStandbyClusterInFile(t *testing.T) {
	good := minimal + "bootstrap:\n  dcs:\n    standby_cluster:\n      host: 10.0.0.1,10.0.0.2\n      port: 5432\n      primary_slot_name: dr\n" +
		"      restore_command: cp /a/%f %p\n      create_replica_methods: [basebackup]\n"
	c, _, err := Load(writeFile(t, t.TempDir(), "pgnoded.yml", good), nil)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if sc := c.Bootstrap.Dynamic.StandbyCluster; !sc.Active() || !sc.MultiHost() || sc.PrimarySlotName != "dr" {
		t.Fatalf("standby_cluster = %+v", sc)
	}
	bad := strings.Replace(good, "port: 5432", "port: fifty", 1)
	_, _, err = Load(writeFile(t, t.TempDir(), "pgnoded.yml", bad), nil)
	if err == nil || !strings.Contains(err.Error(), "standby_cluster.port") {
		t.Fatalf("bad port: %v", err)
	}
}

// synchronous_mode: quorum is acted on under pgnoded.compat 4.1.4 only: in the
// file, in PATCH /config and etcd's /config (CheckDynamicFor), in pgnodectl.
func TestQuorumModeByCompat(t *testing.T) {
	doc := map[string]any{"synchronous_mode": "quorum", "synchronous_node_count": 2}
	if r, _ := CheckDynamicFor(doc, cluster.Compat4); len(r) != 0 {
		t.Errorf("compat 4.1.4 refuses %v", r)
	}
	if r, _ := CheckDynamicFor(doc, cluster.Compat302); len(r) != 1 || !strings.Contains(r[0].Msg, "set synchronous_mode: on") {
		t.Errorf("compat 3.0.2: %v", r)
	}
	refused, _ := DynamicChecks(cluster.Compat4)
	if r := refused(doc); len(r) != 0 {
		t.Errorf("DynamicChecks(4.1.4) refuses %v", r)
	}
	dir := t.TempDir()
	four := writeFile(t, dir, "four.yml", minimal+"pgnoded:\n  compat: \"4.1.4\"\nbootstrap:\n  dcs:\n    synchronous_mode: quorum\n    synchronous_node_count: 2\n")
	cfg, _, err := Load(four, nil)
	if err != nil {
		t.Fatalf("compat 4.1.4 with quorum: %v", err)
	}
	if d := cfg.Bootstrap.Dynamic; !d.SynchronousMode || !d.SynchronousQuorum || d.SynchronousNodeCount != 2 {
		t.Errorf("dynamic %+v", d)
	}
	three := writeFile(t, dir, "three.yml", minimal+"bootstrap:\n  dcs:\n    synchronous_mode: quorum\n")
	if _, _, err := Load(three, nil); err == nil || !strings.Contains(err.Error(), "synchronous_mode") {
		t.Errorf("compat 3.0.2 with quorum: %v", err)
	}
}
