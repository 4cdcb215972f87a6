package main

import (
	"bytes"
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
