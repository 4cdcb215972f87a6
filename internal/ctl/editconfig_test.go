package ctl

import (
	"encoding/json"
	"github.com/pgnoded/pgnoded/internal/cluster"
	"reflect"
	"strings"
	"testing"
)

func mustDecode(t *testing.T, s string) map[string]any {
	t.Helper()
	m, err := decodeConfig([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestApplyConfigChanges(t *testing.T) {
	base := `{"ttl":30,"loop_wait":10,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"work_mem":"4MB"}},"a":{"x":1}}`
	cases := []struct {
		name  string
		pairs []string
		want  string
	}{
		{"nested int", []string{"a.b=1"}, `{"ttl":30,"loop_wait":10,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"work_mem":"4MB"}},"a":{"x":1,"b":1}}`},
		{"pg shorthand", []string{"postgresql.parameters.max_connections=200"}, `{"ttl":30,"loop_wait":10,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":200,"work_mem":"4MB"}},"a":{"x":1}}`},
		{"dotted GUC", []string{"postgresql.parameters.pg_stat_statements.max=5000"}, `{"ttl":30,"loop_wait":10,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"work_mem":"4MB","pg_stat_statements.max":5000}},"a":{"x":1}}`},
		{"null deletes and prunes", []string{"a.x=null"}, `{"ttl":30,"loop_wait":10,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"work_mem":"4MB"}}}`},
		{"empty value deletes", []string{"ttl="}, `{"loop_wait":10,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"work_mem":"4MB"}},"a":{"x":1}}`},
		{"yaml values", []string{"synchronous_mode=true", "tags=[a, b]", "name=\"007\"", "ratio=0.5"}, `{"ttl":30,"loop_wait":10,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"work_mem":"4MB"}},"a":{"x":1},"synchronous_mode":true,"tags":["a","b"],"name":"007","ratio":0.5}`},
		{"scalar parent replaced", []string{"ttl.x=1"}, `{"ttl":{"x":1},"loop_wait":10,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"work_mem":"4MB"}},"a":{"x":1}}`},
		{"delete missing", []string{"nope.deeper=null"}, base},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := mustDecode(t, base)
			got, err := applyConfigChanges(data, c.pairs)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustDecode(t, c.want); !reflect.DeepEqual(got, want) {
				gj, _ := json.Marshal(got)
				t.Errorf("got %s\nwant %s", gj, c.want)
			}
			if !reflect.DeepEqual(data, mustDecode(t, base)) {
				t.Error("the input was modified")
			}
		})
	}
	if _, err := applyConfigChanges(mustDecode(t, base), []string{"novalue"}); err == nil {
		t.Error("a pair without = was accepted")
	}
}

func TestPatchConfig(t *testing.T) {
	got := patchConfig(mustDecode(t, `{"a":{"b":1,"c":2},"d":"x","e":5}`),
		mustDecode(t, `{"a":{"b":null,"f":3},"d":null,"e":"5","g":{"h":1}}`))
	want := mustDecode(t, `{"a":{"c":2,"f":3},"e":5,"g":{"h":1}}`)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestShowConfigYAML(t *testing.T) {
	s, err := toYAML(mustDecode(t, `{"ttl":30,"maximum_lag_on_failover":1048576,"postgresql":{"pg_hba":["host all all 0.0.0.0/0 md5"],"parameters":{"max_connections":100,"ratio":0.9}},"pause":true}`), false)
	if err != nil {
		t.Fatal(err)
	}
	want := `maximum_lag_on_failover: 1048576
pause: true
postgresql:
  parameters:
    max_connections: 100
    ratio: 0.9
  pg_hba:
  - host all all 0.0.0.0/0 md5
ttl: 30
`
	if s != want {
		t.Errorf("got\n%s\nwant\n%s", s, want)
	}
}

func TestUnifiedDiff(t *testing.T) {
	before := "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\ni: 9\nj: 10\nk: 11\n"
	after := "a: 1\nb: 20\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\ni: 9\nj: 10\nk: 11\nl: 12\n"
	want := `--- 
+++ 
@@ -1,5 +1,5 @@
 a: 1
-b: 2
+b: 20
 c: 3
 d: 4
 e: 5
@@ -9,3 +9,4 @@
 i: 9
 j: 10
 k: 11
+l: 12
`
	if got := unifiedDiff(before, after); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := unifiedDiff(before, before); got != "" {
		t.Errorf("no change gave %q", got)
	}
	// Close changes share one hunk; a replaced block lists removals first.
	got := unifiedDiff("x\ny\nz\n", "X\nY\nz\n")
	want = "--- \n+++ \n@@ -1,3 +1,3 @@\n-x\n-y\n+X\n+Y\n z\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	got = unifiedDiff("{}\n", "ttl: 30\n")
	if want = "--- \n+++ \n@@ -1 +1 @@\n-{}\n+ttl: 30\n"; got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestEditConfigCommand(t *testing.T) {
	cfgPath := writeConfig(t, "")
	v := fixtureView()
	v.ConfigRaw = []byte(`{"ttl":30,"loop_wait":10,"postgresql":{"parameters":{"max_connections":100}}}`)
	v.ConfigRev = 7

	t.Run("set with force", func(t *testing.T) {
		st := &fakeStore{views: map[string]cluster.View{"pg-test": v}}
		r := runCtl(t, st, "", nil, "-c", cfgPath, "edit-config", "-s", "loop_wait=5", "-p", "max_connections=200", "--force")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if len(st.configs) != 1 || st.configs[0] != `{"loop_wait":5,"postgresql":{"parameters":{"max_connections":200}},"ttl":30}` {
			t.Fatalf("written %q", st.configs)
		}
		for _, s := range []string{"-loop_wait: 10\n+loop_wait: 5\n", "-    max_connections: 100\n+    max_connections: 200\n", "Configuration changed\n"} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
			}
		}
	})
	t.Run("declined", func(t *testing.T) {
		st := &fakeStore{views: map[string]cluster.View{"pg-test": v}}
		r := runCtl(t, st, "n\n", nil, "-c", cfgPath, "edit-config", "pg-test", "-s", "ttl=60")
		if r.code != 0 || len(st.configs) != 0 || !strings.Contains(r.stdout, "Apply these changes? [y/N]: ") {
			t.Fatalf("exit %d, writes %v, stdout %q", r.code, st.configs, r.stdout)
		}
	})
	t.Run("not changed", func(t *testing.T) {
		st := &fakeStore{views: map[string]cluster.View{"pg-test": v}}
		r := runCtl(t, st, "", nil, "-c", cfgPath, "edit-config", "-s", "ttl=30", "--force")
		if r.code != 0 || r.stdout != "Not changed\n" || len(st.configs) != 0 {
			t.Fatalf("exit %d, stdout %q, writes %v", r.code, r.stdout, st.configs)
		}
	})
	t.Run("concurrent change", func(t *testing.T) {
		st := &fakeStore{views: map[string]cluster.View{"pg-test": v}, casFail: true}
		r := runCtl(t, st, "", nil, "-c", cfgPath, "edit-config", "-s", "ttl=60", "--force")
		if r.code != 1 || r.stderr != "pgnodectl: edit-config: Config modification aborted due to concurrent changes\n" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("editor", func(t *testing.T) {
		st := &fakeStore{views: map[string]cluster.View{"pg-test": v}}
		env := []string{"EDITOR=sed -i s/ttl:.30/ttl:\\x2045/"}
		r := runCtl(t, st, "y\n", env, "-c", cfgPath, "edit-config")
		if r.code != 0 || len(st.configs) != 1 || !strings.Contains(st.configs[0], `"ttl":45`) {
			t.Fatalf("exit %d, stderr %q, writes %v", r.code, r.stderr, st.configs)
		}
	})
	t.Run("editor fails", func(t *testing.T) {
		st := &fakeStore{views: map[string]cluster.View{"pg-test": v}}
		r := runCtl(t, st, "", []string{"EDITOR=false"}, "-c", cfgPath, "edit-config")
		if r.code != 1 || !strings.Contains(r.stderr, "Editor exited with return code 1") || len(st.configs) != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("refused setting is not written", func(t *testing.T) {
		st := &fakeStore{views: map[string]cluster.View{"pg-test": v}}
		r := runCtl(t, st, "", nil, "-c", cfgPath, "edit-config", "-s", "synchronous_node_count=0", "--force")
		if r.code != 1 || len(st.configs) != 0 ||
			!strings.Contains(r.stderr, "not applied: synchronous_node_count: pgnoded does not support synchronous_node_count") {
			t.Fatalf("exit %d, writes %v, stderr %q", r.code, st.configs, r.stderr)
		}
		r = runCtl(t, st, "", nil, "-c", cfgPath, "edit-config", "-s", "synchronous_mode=quorum", "--force")
		if r.code != 1 || len(st.configs) != 0 || !strings.Contains(r.stderr, "synchronous_mode: pgnoded does not support quorum commit") {
			t.Fatalf("exit %d, writes %v, stderr %q", r.code, st.configs, r.stderr)
		}
		r = runCtl(t, st, "", nil, "-c", cfgPath, "edit-config", "-s", "synchronous_mode=false", "--force")
		if r.code != 0 || len(st.configs) != 1 {
			t.Fatalf("synchronous_mode=false: exit %d, writes %v, stderr %q", r.code, st.configs, r.stderr)
		}
	})
	t.Run("apply from stdin needs force", func(t *testing.T) {
		st := &fakeStore{views: map[string]cluster.View{"pg-test": v}}
		r := runCtl(t, st, "loop_wait: 3\n", nil, "-c", cfgPath, "edit-config", "--apply", "-")
		if r.code != 0 || !strings.HasSuffix(r.stdout, "Use --force option to apply changes\n") || len(st.configs) != 0 {
			t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
		}
	})
}
