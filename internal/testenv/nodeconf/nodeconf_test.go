package nodeconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/pgnoded/pgnoded/internal/config"
)

func base(f Flavour) Options {
	return Options{
		Flavour: f, Namespace: "/itest/", Scope: "s1", Name: "n1", Listen: "127.0.0.1", Host: "127.0.0.1",
		APIPort: 18008, PGPort: 15432, MetricPort: 19630, Etcd: "127.0.0.1:2379", Dir: "/tmp/x", BinDir: "/usr/lib/postgresql/15/bin",
		TTL: 10, LoopWait: 2, RetryTimeout: 4, Passwords: Passwords{"a", "b", "c"},
	}
}

// Every variant is YAML, and pgnoded's loader accepts the pgnoded flavour.
func TestRenderVariants(t *testing.T) {
	secure := base(Pgnoded)
	secure.Secure = &Security{User: "u", Password: "p", ServerCert: "/c", ServerKey: "/k", CA: "/ca", ClientCert: "/cc", ClientKey: "/ck"}
	netns := base(Pgnoded)
	netns.Listen, netns.Host, netns.Subnet = "0.0.0.0", "10.1.2.11", "10.1.2.0/24"
	netns.VIP = &VIP{Enabled: true, Address: "10.1.2.100/24", Interface: "eth0", ARPInterval: "500ms"}
	netns.PermanentSlot, netns.Failsafe = "keep", true
	extra := base(Pgnoded)
	extra.PGExtra = "  remove_data_directory_on_rewind_failure: true"
	extra.PGParams = "    track_functions: all"
	syncPG := base(Pgnoded)
	syncPG.Sync = &Sync{Strict: true, NodeCount: 2}
	syncPT := base(Patroni)
	syncPT.Sync = &Sync{}
	quorum := base(Pgnoded)
	quorum.Sync, quorum.Compat = &Sync{Quorum: true, NodeCount: 2}, "4.1.4"
	cases := map[string]struct {
		o        Options
		has, not []string
	}{
		"loopback":     {base(Pgnoded), []string{"\nexporter:\n  listen: 127.0.0.1:19630\n", "vip:\n  enabled: false\n", "  nofailover: false\n"}, []string{"log:", "ctl:", "pgnoded:"}},
		"secure":       {secure, []string{"\nctl:\n  cacert: /ca\n", "verify_client: required"}, nil},
		"netns":        {netns, []string{"address: 10.1.2.100/24", "- host all all 10.1.2.0/24 md5", "      keep:\n        type: physical", "failsafe_mode: true"}, nil},
		"extra":        {extra, []string{"  pgpass: /tmp/x/pgpass\n  remove_data", "shared_buffers: 32MB\n    track_functions: all\n"}, nil},
		"patroni":      {base(Patroni), []string{"log:\n  level: INFO\n"}, []string{"exporter:", "vip:"}},
		"async":        {base(Pgnoded), nil, []string{"synchronous_"}},
		"sync-strict":  {syncPG, []string{"    synchronous_mode: true\n    synchronous_mode_strict: true\n    synchronous_node_count: 2\n"}, nil},
		"quorum-4.1.4": {quorum, []string{"    synchronous_mode: quorum\n", "\npgnoded:\n  compat: \"4.1.4\"\ntags:\n"}, nil},
		"sync-patroni": {syncPT, []string{"    failsafe_mode: false\n    synchronous_mode: true\n    synchronous_mode_strict: false\n"},
			[]string{"synchronous_node_count"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := Render(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := yaml.Unmarshal(b, &m); err != nil {
				t.Fatalf("not YAML: %v\n%s", err, b)
			}
			for _, s := range tc.has {
				if !strings.Contains(string(b), s) {
					t.Errorf("missing %q in\n%s", s, b)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(string(b), s) {
					t.Errorf("unexpected %q in\n%s", s, b)
				}
			}
			if tc.o.Flavour != Pgnoded {
				return
			}
			path := filepath.Join(t.TempDir(), "pgnoded.yml")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := config.Validate(path, nil); err != nil {
				t.Fatalf("pgnoded refuses it: %v\n%s", err, b)
			}
		})
	}
}

func TestRenderRefusesMismatch(t *testing.T) {
	o := base(Patroni)
	o.VIP = &VIP{Enabled: true}
	if _, err := Render(o); err == nil {
		t.Error("a Patroni config with a vip section was rendered")
	}
	o = base(Patroni)
	o.Compat = "4.1.4"
	if _, err := Render(o); err == nil {
		t.Error("a Patroni config with pgnoded.compat was rendered")
	}
	o = base(Patroni)
	o.Sync = &Sync{Quorum: true}
	if _, err := Render(o); err == nil {
		t.Error("a Patroni 3.0.2 config with synchronous_mode quorum was rendered")
	}
	if _, err := Render(Options{}); err == nil {
		t.Error("a config without scope was rendered")
	}
}
