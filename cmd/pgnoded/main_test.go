package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, &out, &errb); code != exitOK || !strings.HasPrefix(out.String(), "pgnoded ") {
		t.Errorf("--version: code %d, out %q", code, out.String())
	}
	if code := run(nil, &out, &errb); code != exitConfig {
		t.Errorf("no config: code %d, want %d", code, exitConfig)
	}
	if code := run([]string{"a.yml", "b.yml"}, &out, &errb); code != exitConfig {
		t.Errorf("two positional configs: code %d, want %d", code, exitConfig)
	}
}

func TestValidateConfigExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(good, []byte(`scope: s
name: n1
restapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}
etcd3: {hosts: 127.0.0.1:2379}
postgresql: {listen: 127.0.0.1:5432, connect_address: 127.0.0.1:5432, data_dir: /nonexistent/data}
`), 0o600)
	os.WriteFile(bad, []byte(`scope: s
name: n1
restapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}
etcd3: {hosts: 127.0.0.1:2379}
bootstrap:
  dcs: {ttl: 10, loop_wait: 5, retry_timeout: 5}
postgresql: {listen: 5432, connect_address: 127.0.0.1:5432}
`), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"--validate-config", good}, &out, &errb); code != exitOK {
		t.Fatalf("good config: code %d, stderr %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"--validate-config", bad}, &out, &errb); code != exitConfig {
		t.Fatalf("bad config: code %d, want %d", code, exitConfig)
	}
	msg := errb.String()
	for _, want := range []string{"bad.yml:6:", "loop_wait", "bad.yml:7:", "postgresql.listen", "postgresql.data_dir"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error output lacks %q:\n%s", want, msg)
		}
	}
	// The daemon refuses a bad file with the same exit code, before touching anything.
	if code := run([]string{"--config", bad}, &out, &errb); code != exitConfig {
		t.Errorf("daemon with bad config: code %d, want %d", code, exitConfig)
	}
}

func TestPatroniLogFormat(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(&b, "info", false).With("member", "pg-1")
	log.Info("promoted self to leader", "reason", "leader key vanished", "timeline", 2)
	log.Debug("hidden")
	log.Warn("careful")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (debug filtered), got %q", b.String())
	}
	// Pigsty's log collection expects "YYYY-MM-DD HH:MM:SS +ZZZZ LEVEL: message".
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} INFO: promoted self to leader member=pg-1 reason="leader key vanished" timeline=2$`)
	if !re.MatchString(lines[0]) {
		t.Errorf("line %q does not match Patroni's format", lines[0])
	}
	if !strings.Contains(lines[1], " WARNING: careful") {
		t.Errorf("warn line %q", lines[1])
	}
	if parseLevel("DEBUG") != slog.LevelDebug || parseLevel("bogus") != slog.LevelInfo {
		t.Errorf("parseLevel")
	}
}

func TestLogDirWritesPatroniLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	out, closeLog, err := logOutput(dir, 1<<20, 2, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	newLogger(out, "INFO", false).Info("hello")
	closeLog()
	b, err := os.ReadFile(filepath.Join(dir, "patroni.log"))
	if err != nil || !strings.Contains(string(b), "INFO: hello") {
		t.Fatalf("patroni.log = %q, %v", b, err)
	}
}

func TestRuntimeSettings(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	cases := []struct {
		name         string
		env          map[string]string
		curProcs     int
		gc, procs    int
		noMemProfile bool
	}{
		{"defaults on a big host", nil, 64, gcPercent, maxProcs, true},
		{"already at the cap", nil, maxProcs, gcPercent, 0, true},
		{"environment wins", map[string]string{"GOGC": "100", "GOMAXPROCS": "8", "GODEBUG": "memprofilerate=1"}, 8, 0, 0, false},
		{"other GODEBUG settings", map[string]string{"GODEBUG": "gctrace=1"}, 4, gcPercent, maxProcs, true},
	}
	for _, c := range cases {
		gc, procs, noMP := runtimeSettings(env(c.env), c.curProcs)
		if gc != c.gc || procs != c.procs || noMP != c.noMemProfile {
			t.Errorf("%s: got gc=%d procs=%d noMemProfile=%v, want %d %d %v", c.name, gc, procs, noMP, c.gc, c.procs, c.noMemProfile)
		}
	}
}

// The Pigsty-shaped file validates with only the expected warnings; each
// refused setting makes it exit 2 naming the key and its line.
func TestValidatePigstyRefusals(t *testing.T) {
	base, err := os.ReadFile("../../internal/config/testdata/pigsty.yml")
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	plain := filepath.Join(t.TempDir(), "pigsty.yml")
	os.WriteFile(plain, base, 0o600)
	if code := run([]string{"--validate-config", plain}, &out, &errb); code != exitOK {
		t.Fatalf("plain pigsty file: code %d\n%s", code, errb.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		if !strings.Contains(l, "does not exist on this machine") && !strings.Contains(l, "postgresql.create_replica_methods: pgbackrest will not be used") {
			t.Errorf("unexpected warning on the plain file: %s", l)
		}
	}
	cases := []struct {
		name, from, to, key string
	}{
		{"synchronous_mode quorum", "    synchronous_mode: false\n", "    synchronous_mode: quorum\n", "bootstrap.dcs.synchronous_mode"},
		{"citus", "namespace: /pg/\n", "namespace: /pg/\ncitus:\n  group: 0\n  database: meta\n", "citus"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(string(base), c.from, c.to, 1)
			if doc == string(base) {
				t.Fatalf("pattern %q not in the file", c.from)
			}
			line, name := 0, c.key[strings.LastIndex(c.key, ".")+1:]
			for i, l := range strings.Split(doc, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), name+":") {
					line = i + 1
					break
				}
			}
			path := filepath.Join(t.TempDir(), "pigsty.yml")
			os.WriteFile(path, []byte(doc), 0o600)
			var out, errb bytes.Buffer
			if code := run([]string{"--validate-config", path}, &out, &errb); code != exitConfig {
				t.Fatalf("code %d, want %d\n%s", code, exitConfig, errb.String())
			}
			want := fmt.Sprintf("%s:%d: %s: pgnoded does not support ", path, line, c.key)
			if !strings.Contains(errb.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, errb.String())
			}
			t.Logf("%s", lastLine(errb.String()))
			// The daemon refuses it the same way before touching anything.
			errb.Reset()
			if code := run([]string{"--config", path}, &out, &errb); code != exitConfig || !strings.Contains(errb.String(), want) {
				t.Errorf("daemon: code %d, stderr %s", code, errb.String())
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
