package ctl

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFlagsParse(t *testing.T) {
	var force bool
	var sets []string
	var watch watchValue
	var g globalOpts
	f := newFlags("x", "x")
	g.register(f)
	f.boolVar(&force, "", "--force")
	f.listVar(&sets, "", "-s", "--set")
	f.value(&watch, "", "-w", "--watch")
	f.value(fixedWatch{w: &watch, every: patronictlWatch}, "", "-W")
	pos, err := f.parse([]string{"pg-test", "-s", "a=1", "m1", "--force", "--set=b=2", "-w", "2.5", "-c", "/x.yml", "--", "-s"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pos, []string{"pg-test", "m1", "-s"}) || !force || !reflect.DeepEqual(sets, []string{"a=1", "b=2"}) ||
		time.Duration(watch) != 2500*time.Millisecond || g.configPath != "/x.yml" {
		t.Errorf("pos %q force %v sets %q watch %v config %q", pos, force, sets, time.Duration(watch), g.configPath)
	}
	for _, c := range []struct {
		args []string
		want time.Duration
	}{{[]string{"--watch"}, time.Second}, {[]string{"-w", "pg-test"}, time.Second}, {[]string{"-W"}, 2 * time.Second}, {nil, 0}} {
		watch = 0
		if _, err := f.parse(c.args); err != nil || time.Duration(watch) != c.want {
			t.Errorf("%q: watch %v err %v, want %v", c.args, time.Duration(watch), err, c.want)
		}
	}
}

func TestDCSURL(t *testing.T) {
	cases := []struct {
		url, protocol string
		want          etcdTarget
	}{
		{"etcd3://10.0.0.1:2379/pg", "http", etcdTarget{endpoints: []string{"http://10.0.0.1:2379"}, namespace: "/pg"}},
		{"etcd3://u:p@a,b:2380", "https", etcdTarget{endpoints: []string{"https://a:2379", "https://b:2380"}, namespace: "/service", username: "u", password: "p"}},
		{"https://[::1]:2379/", "", etcdTarget{endpoints: []string{"https://[::1]:2379"}, namespace: "/service"}},
		{"127.0.0.1", "", etcdTarget{endpoints: []string{"http://127.0.0.1:2379"}, namespace: "/service"}},
	}
	for _, c := range cases {
		got := etcdTarget{namespace: "/service"}
		if err := applyDCSURL(&got, c.url, c.protocol); err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v (%v), want %+v", c.url, got, err, c.want)
		}
	}
	for _, bad := range []string{"consul://h:8500", "etcd3:///ns"} {
		if err := applyDCSURL(&etcdTarget{}, bad, ""); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestConfigLoading(t *testing.T) {
	dir := t.TempDir()
	// An operator's file with only etcd and credentials, like Pigsty's patronictl.yml.
	ctlOnly := filepath.Join(dir, "ctl.yml")
	os.WriteFile(ctlOnly, []byte("etcd3:\n  hosts: 10.0.0.1:2379,10.0.0.2:2379\n  username: root\nnamespace: /pg\nctl:\n  authentication:\n    username: admin\n"), 0o600)
	cfg, err := loadConfig(ctlOnly, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scope != "" || cfg.Name != "" || cfg.Namespace != "/pg" || cfg.CtlAuth().Username != "admin" {
		t.Errorf("scope %q name %q ns %q auth %+v", cfg.Scope, cfg.Name, cfg.Namespace, cfg.CtlAuth())
	}
	tg, err := target(cfg, "")
	if err != nil || !reflect.DeepEqual(tg.endpoints, []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379"}) || tg.username != "root" {
		t.Errorf("target %+v, %v", tg, err)
	}
	// Real problems are still errors, with the file and line.
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("scope: x\netcd3:\n  host: 10.0.0.1:2379\nrestapi:\n  verify_client: maybe\n"), 0o600)
	if _, err := loadConfig(bad, nil, false); err == nil || !strings.Contains(err.Error(), "bad.yml:5") {
		t.Errorf("bad config: %v", err)
	}
	// No etcd anywhere: an error unless --dcs-url gives one.
	noEtcd := filepath.Join(dir, "noetcd.yml")
	os.WriteFile(noEtcd, []byte("scope: x\n"), 0o600)
	if _, err := loadConfig(noEtcd, nil, false); err == nil {
		t.Error("a config without etcd3 was accepted")
	}
	if _, err := loadConfig(noEtcd, nil, true); err != nil {
		t.Errorf("with --dcs-url: %v", err)
	}

	// -c beats PGNODECTL_CONFIG beats PGNODED_CONFIG; a missing named file is an error.
	r := runCtl(t, &fakeStore{}, "", []string{"PGNODECTL_CONFIG=" + filepath.Join(dir, "missing.yml"), "PGNODED_CONFIG=" + ctlOnly}, "history")
	if r.code != 1 || !strings.Contains(r.stderr, "missing.yml does not exist") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCtl(t, &fakeStore{}, "", []string{"PGNODED_CONFIG=" + ctlOnly}, "history")
	if r.code != 2 || r.stderr != "pgnodectl: history: no cluster name given and no scope in the configuration\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
