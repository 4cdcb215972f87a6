package config

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// FuzzLoad: any file either loads or is refused with located errors; it
// never panics, and a refused file yields no configuration.
func FuzzLoad(f *testing.F) {
	pigsty, _ := os.ReadFile("testdata/pigsty.yml")
	for _, s := range []string{
		minimal, string(pigsty), "", "{}", "[]", "scope: [", "a: &x {b: *x}",
		minimal + "bootstrap:\n  dcs:\n    synchronous_mode: quorum\n",
		minimal + "bootstrap:\n  dcs:\n    standby_cluster: {host: x}\n",
		minimal + "citus: {group: 0}\n", minimal + "watchdog: {mode: required}\n",
		minimal + "postgresql:\n  create_replica_methods: [wal_e]\n",
		minimal + "vip: {enabled: false, address: 10.0.0.2/24}\n",
		minimal + "<<: {ttl: 3}\nbootstrap: {dcs: {ttl: 1e9, loop_wait: -1}}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		// Through PATRONI_CONFIGURATION: the same parser as a file, without the disk.
		cfg, warns, err := Load("", []string{envConfiguration + "=" + doc})
		path := envConfiguration
		if doc == "" {
			path = "environment"
		}
		if err != nil {
			if cfg != nil {
				t.Fatalf("refused file returned a configuration")
			}
			errs := Errors(err)
			if len(errs) == 0 {
				t.Fatalf("error without *Error: %v", err)
			}
			for _, e := range errs {
				if e.File != path || e.Msg == "" {
					t.Fatalf("error not located: %+v", e)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatalf("nil configuration without error")
		}
		for _, w := range warns {
			if w.Msg == "" {
				t.Fatalf("empty warning %+v", w)
			}
		}
		// A loaded configuration refuses nothing in its own bootstrap.dcs.
		if r, _ := CheckDynamic(cfg.Bootstrap.DCS); len(r) > 0 {
			t.Fatalf("loaded a file whose bootstrap.dcs is refused: %v", r)
		}
	})
}

// FuzzCheckDynamic: any /config document is checked without panic, every
// refusal reads "pgnoded does not support … (what to do)", and the check
// does not modify the document.
func FuzzCheckDynamic(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"ttl":30,"synchronous_mode":false}`, `{"synchronous_mode":"quorum"}`, `{"synchronous_mode":1}`,
		`{"standby_cluster":null}`, `{"postgresql":{"pg_hba":[1,2],"x":{}}}`, `{"ignore_slots":[{"plugin":"x"}]}`,
		`{"slots":{"a":{"type":"logical"}},"pg_version":16}`, `{"synchronous_mode_strict":"yes"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil || doc == nil {
			return
		}
		before, _ := json.Marshal(doc)
		refused, _ := CheckDynamic(doc)
		after, _ := json.Marshal(doc)
		if string(before) != string(after) {
			t.Fatalf("CheckDynamic modified the document")
		}
		for _, r := range refused {
			if !strings.HasPrefix(r.Msg, "pgnoded does not support ") || !strings.HasSuffix(r.Msg, ")") || r.Key == "" {
				t.Fatalf("refusal %q", r)
			}
		}
	})
}
