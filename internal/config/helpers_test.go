package config

import (
	"reflect"
	"slices"
	"testing"
)

// loadDoc loads minimal plus extra YAML and fails the test on error.
func loadDoc(t *testing.T, extra string) *Config {
	t.Helper()
	cfg, _, err := Load(writeFile(t, t.TempDir(), "pgnoded.yml", minimal+extra), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestNamespace(t *testing.T) {
	for _, tc := range []struct{ ns, want string }{
		{"/pg/", "/pg"}, {"pg", "/pg"}, {"//pg//", "/pg"}, {"/a//b/", "/a/b"}, {"/", "/"}, {"/service", "/service"},
	} {
		cfg := loadDoc(t, "namespace: '"+tc.ns+"'\n")
		if cfg.Namespace != tc.want {
			t.Errorf("namespace %q -> %q, want %q", tc.ns, cfg.Namespace, tc.want)
		}
	}
}

func TestEtcdEndpoints(t *testing.T) {
	cases := []struct {
		name string
		etcd Etcd3
		want []string
	}{
		{"host without port", Etcd3{Host: "10.0.0.1", Protocol: "http"}, []string{"http://10.0.0.1:2379"}},
		{"ipv6 host", Etcd3{Host: "[fd00::1]:2380", Protocol: "https"}, []string{"https://[fd00::1]:2380"}},
		{"bare ipv6 host", Etcd3{Host: "fd00::1", Protocol: "http"}, []string{"http://[fd00::1]:2379"}},
		{"url", Etcd3{URL: "https://etcd.local:2379/", Protocol: "http"}, []string{"https://etcd.local:2379"}},
		{"hosts win", Etcd3{Host: "x", URL: "http://y:1", Hosts: CommaList{"a:1", "https://b:2"}, Protocol: "http"},
			[]string{"http://a:1", "https://b:2"}},
	}
	for _, tc := range cases {
		c := &Config{Etcd3: tc.etcd}
		if got := c.EtcdEndpoints(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestEffectiveTags(t *testing.T) {
	cases := []struct {
		name     string
		tags     string
		want     map[string]any
		noFail   bool
		priority int
	}{
		{"falsy built-ins dropped", "tags: {nofailover: false, noloadbalance: false, clonefrom: false, nosync: false, nostream: false}",
			map[string]any{}, false, 1},
		{"true built-ins kept", "tags: {nofailover: true, noloadbalance: yes, clonefrom: on, nosync: true, nostream: true}",
			map[string]any{"nofailover": true, "noloadbalance": true, "clonefrom": true, "nosync": true, "nostream": true}, true, 0},
		{"custom kept as written", "tags: {version: 15, zone: a, flag: false}",
			map[string]any{"version": 15, "zone": "a", "flag": false}, false, 1},
		{"failover_priority kept", "tags: {failover_priority: 0}",
			map[string]any{"failover_priority": 0}, true, 0},
		{"nofailover false kept beside priority", "tags: {nofailover: false, failover_priority: 0}",
			map[string]any{"nofailover": false, "failover_priority": 0}, false, 0},
		{"replicatefrom", "tags: {replicatefrom: pg-test-2, sync_priority: 3}",
			map[string]any{"replicatefrom": "pg-test-2", "sync_priority": 3}, false, 1},
		{"priority", "tags: {failover_priority: 5}", map[string]any{"failover_priority": 5}, false, 5},
		{"nosync false kept beside sync_priority", "tags: {nosync: false, sync_priority: 2}",
			map[string]any{"nosync": false, "sync_priority": 2}, false, 1},
		{"nofailover true wins over priority", "tags: {nofailover: true, failover_priority: 5}",
			map[string]any{"nofailover": true, "failover_priority": 5}, true, 0},
	}
	for _, tc := range cases {
		cfg := loadDoc(t, tc.tags+"\n")
		if got := cfg.EffectiveTags(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: tags %v, want %v", tc.name, got, tc.want)
		}
		if cfg.NoFailover() != tc.noFail || cfg.FailoverPriority() != tc.priority {
			t.Errorf("%s: NoFailover %v priority %d, want %v %d", tc.name, cfg.NoFailover(), cfg.FailoverPriority(), tc.noFail, tc.priority)
		}
	}
}

func TestAddressHelpers(t *testing.T) {
	cases := []struct {
		listen, restListen          string
		wantAddrs, wantLocal, wantR string
	}{
		{"0.0.0.0:5432", "*:8008", "0.0.0.0", "127.0.0.1:5432", ":8008"},
		{"*:5433", "0.0.0.0:8008", "*", "127.0.0.1:5433", "0.0.0.0:8008"},
		{"[::]:5432", "[::1]:8008", "::", "[::1]:5432", "[::1]:8008"},
		{"10.0.0.1, 127.0.0.1:5432", "10.0.0.1:8008", "10.0.0.1,127.0.0.1", "10.0.0.1:5432", "10.0.0.1:8008"},
	}
	path := writeFile(t, t.TempDir(), "pgnoded.yml", minimal)
	for _, tc := range cases {
		cfg, _, err := Load(path, []string{"PATRONI_POSTGRESQL_LISTEN=" + tc.listen, "PATRONI_RESTAPI_LISTEN=" + tc.restListen})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if got := cfg.PGListenAddresses(); got != tc.wantAddrs {
			t.Errorf("%s: listen_addresses %q, want %q", tc.listen, got, tc.wantAddrs)
		}
		if got := hostPort(cfg.PGHostPort()); got != tc.wantLocal {
			t.Errorf("%s: PGHostPort %q, want %q", tc.listen, got, tc.wantLocal)
		}
		if got := cfg.RESTListen(); got != tc.wantR {
			t.Errorf("%s: RESTListen %q, want %q", tc.restListen, got, tc.wantR)
		}
	}
}

func TestOptionsShapes(t *testing.T) {
	cfg := loadDoc(t, `  basebackup:
    max-rate: 100M
    checkpoint: fast
bootstrap:
  initdb:
    - --data-checksums
    - auth-local: trust
    - no-sync:
`)
	if got := cfg.PostgreSQL.Basebackup.Args(); !slices.Equal(got, []string{"--max-rate=100M", "--checkpoint=fast"}) {
		t.Errorf("basebackup mapping form: %v", got)
	}
	if got := cfg.Bootstrap.InitDB.Args(); !slices.Equal(got, []string{"--data-checksums", "--auth-local=trust", "--no-sync"}) {
		t.Errorf("initdb: %v", got)
	}
	if v, ok := cfg.Bootstrap.InitDB.Get("auth-local"); !ok || v != "trust" {
		t.Errorf("Get(auth-local) = %q %v", v, ok)
	}
}

func TestCtlAuthFallback(t *testing.T) {
	c := &Config{RESTAPI: RESTAPI{Authentication: Auth{Username: "api", Password: "p"}}}
	if c.CtlAuth() != (Auth{Username: "api", Password: "p"}) {
		t.Errorf("fallback to restapi: %+v", c.CtlAuth())
	}
	c.Ctl.Authentication = Auth{Username: "ctl", Password: "q"}
	if c.CtlAuth() != c.Ctl.Authentication {
		t.Errorf("ctl auth: %+v", c.CtlAuth())
	}
}
