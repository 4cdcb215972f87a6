package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/exporter"
	"github.com/pgnoded/pgnoded/internal/exporter/envfile"
)

const planBase = `scope: s
name: n1
restapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}
etcd3: {hosts: 127.0.0.1:2379}
postgresql: {listen: 127.0.0.1:5432, connect_address: 127.0.0.1:5432, data_dir: /nonexistent/data}
`

// pigstyExporterEnv reads the shape of /etc/default/pg_exporter on a Pigsty
// node, the envfile package's fixture.
func pigstyExporterEnv(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../internal/exporter/envfile/testdata/pigsty.env")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadPlanConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgnoded.yml")
	if err := os.WriteFile(path, []byte(planBase+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestPlanExporterPigstyNode(t *testing.T) {
	cfg := loadPlanConfig(t, "")
	p := planExporter(cfg, envfile.Parse("/etc/default/pg_exporter", pigstyExporterEnv(t)))
	want := exporter.Config{
		Listen:           ":9630",
		CollectorFile:    "/etc/pg_exporter.yml",
		CollectorSearch:  []string{"/etc/pg_exporter.yml", "/etc/pg_exporter"},
		ExcludeDatabases: []string{"template0", "template1", "postgres"},
		ConnectTimeout:   200 * time.Millisecond,
	}
	if !reflect.DeepEqual(p.cfg, want) {
		t.Errorf("plan:\n got %+v\nwant %+v", p.cfg, want)
	}
	if p.logLevel == nil || *p.logLevel != slog.LevelInfo {
		t.Errorf("log level = %v", p.logLevel)
	}
	// Pigsty's URL names the monitor role; pgnoded does not use it, and says so.
	if len(p.ignored) != 1 || !strings.Contains(p.ignored[0], "/etc/default/pg_exporter:2: PG_EXPORTER_URL") {
		t.Errorf("not acted on: %q, want only PG_EXPORTER_URL", p.ignored)
	}
	if joined := strings.Join(p.ignored, "\n"); strings.Contains(joined, "DBUser.Monitor") || !strings.Contains(joined, "dbuser_monitor:xxxxx@") {
		t.Errorf("the URL's password is not hidden: %s", joined)
	}
	joined := strings.Join(p.applied, "\n")
	for _, name := range []string{"PG_EXPORTER_CONFIG", "PG_EXPORTER_EXCLUDE_DATABASE", "PG_EXPORTER_CONNECT_TIMEOUT",
		"PG_EXPORTER_OPTS --web.listen-address", "PG_EXPORTER_OPTS --log.level", "PG_EXPORTER_AUTO_DISCOVERY"} {
		if !strings.Contains(joined, name) {
			t.Errorf("applied settings do not name %s:\n%s", name, joined)
		}
	}
}

func TestPlanExporterSectionWins(t *testing.T) {
	cfg := loadPlanConfig(t, `exporter:
  listen: 127.0.0.1:19630
  config: /srv/mine.yml
  exclude_databases: [scratch]
`)
	p := planExporter(cfg, envfile.Parse("/etc/default/pg_exporter", pigstyExporterEnv(t)))
	if p.cfg.Listen != "127.0.0.1:19630" || p.cfg.CollectorFile != "/srv/mine.yml" || !reflect.DeepEqual(p.cfg.ExcludeDatabases, []string{"scratch"}) {
		t.Errorf("the exporter section did not win: %+v", p.cfg)
	}
	if n := strings.Count(strings.Join(p.applied, "\n"), " wins"); n != 3 {
		t.Errorf("%d notes of the section winning, want 3:\n%s", n, strings.Join(p.applied, "\n"))
	}
}

func TestPlanExporterWarnsByName(t *testing.T) {
	cfg := loadPlanConfig(t, "")
	env := `SOMETHING_ELSE=1
PG_EXPORTER_NAMESPACE=pgx
PG_EXPORTER_FAIL_FAST=true
PG_EXPORTER_DISABLE_INTRO=yes-please
PG_EXPORTER_CONNECT_TIMEOUT=soon
PG_EXPORTER_LABEL="cls=pg-test, ins=pg-test-1, broken, bad-name=x"
PG_EXPORTER_TAG=a,b
PG_EXPORTER_DISABLE_CACHE=true
PG_EXPORTER_AUTO_DISCOVERY=false
PG_EXPORTER_INCLUDE_DATABASE=app,meta
PG_EXPORTER_TELEMETRY_PATH=/pgmetrics
PG_EXPORTER_OPTS="--web.config.file=/etc/pg_exporter/web.yml --log.format=json --log.level=loud --dry-run"
`
	p := planExporter(cfg, envfile.Parse("/etc/default/pg_exporter", []byte(env)))
	joined := strings.Join(p.ignored, "\n")
	for _, want := range []string{
		":1: SOMETHING_ELSE", ":2: PG_EXPORTER_NAMESPACE", ":3: PG_EXPORTER_FAIL_FAST", ":4: PG_EXPORTER_DISABLE_INTRO",
		":5: PG_EXPORTER_CONNECT_TIMEOUT", `label "broken"`, `label name "bad-name"`,
		"PG_EXPORTER_OPTS --web.config.file", "PG_EXPORTER_OPTS --log.format", "PG_EXPORTER_OPTS --log.level", "PG_EXPORTER_OPTS --dry-run",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("not warned about %s:\n%s", want, joined)
		}
	}
	if n := len(p.ignored); n != 11 {
		t.Errorf("%d warnings, want 11:\n%s", n, joined)
	}
	want := exporter.Config{
		Listen:               ":9630",
		CollectorSearch:      []string{"/etc/pg_exporter.yml", "/etc/pg_exporter"},
		ExcludeDatabases:     []string{"template0", "template1"},
		IncludeDatabases:     []string{"app", "meta"},
		DisableAutoDiscovery: true,
		DisableCache:         true,
		Tags:                 []string{"a", "b"},
		ConstLabels:          map[string]string{"cls": "pg-test", "ins": "pg-test-1"},
		MetricsPath:          "/pgmetrics",
	}
	if !reflect.DeepEqual(p.cfg, want) {
		t.Errorf("plan:\n got %+v\nwant %+v", p.cfg, want)
	}
}

// The collector file: exporter.config, else PG_EXPORTER_CONFIG, else the search list.
func TestPlanExporterCollectorFile(t *testing.T) {
	dir := t.TempDir()
	file, confDir := filepath.Join(dir, "pg_exporter.yml"), filepath.Join(dir, "pg_exporter")
	os.WriteFile(file, []byte("x: {}\n"), 0o644)
	os.Mkdir(confDir, 0o755)
	search := "exporter:\n  config_search: [" + file + ", " + confDir + "]\n"
	envCfg := envfile.Parse("env", []byte("PG_EXPORTER_CONFIG=/from/env.yml\n"))
	for _, tc := range []struct {
		name, extra string
		env         *envfile.Settings
		want        string
	}{
		{"exporter.config", "exporter:\n  config: /srv/mine.yml\n  config_search: [" + file + "]\n", envCfg, "/srv/mine.yml"},
		{"PG_EXPORTER_CONFIG", search, envCfg, "/from/env.yml"},
		{"search: the file first", search, nil, file},
		{"search: the directory", "exporter:\n  config_search: [" + filepath.Join(dir, "none.yml") + ", " + confDir + "]\n", nil, confDir},
		{"built-in", "exporter:\n  config_search: []\n", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planExporter(loadPlanConfig(t, tc.extra), tc.env)
			got := exporter.SelectSource(p.cfg.CollectorFile, p.cfg.CollectorSearch, os.Stat)
			if got.Path != tc.want {
				t.Errorf("source = %+v, want %q", got, tc.want)
			}
		})
	}
}

func TestReadPGExporterEnvMissingOrOff(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if pe := readPGExporterEnv("", log); pe != nil {
		t.Error("empty env_file read")
	}
	if pe := readPGExporterEnv(filepath.Join(t.TempDir(), "pg_exporter"), log); pe != nil {
		t.Error("missing env file gave settings")
	}
}

func TestLevelHandlerLowersAndRaises(t *testing.T) {
	var b bytes.Buffer
	base := newLogger(&b, "info", false)
	debug := slog.New(levelHandler{level: slog.LevelDebug, h: base.Handler()}).With("component", "exporter")
	debug.Debug("shown")
	quiet := slog.New(levelHandler{level: slog.LevelError, h: base.Handler()})
	quiet.Warn("hidden")
	if out := b.String(); !strings.Contains(out, "DEBUG: shown component=exporter") || strings.Contains(out, "hidden") {
		t.Errorf("log:\n%s", out)
	}
}

// An exporter that cannot be built is logged and left out; pgnoded carries on.
func TestBuildExporterNeverFails(t *testing.T) {
	var b bytes.Buffer
	d := &supervisor{exporterStatus: &exporter.Status{}}
	d.buildExporter(loadPlanConfig(t, "exporter:\n  env_file: \"\"\n"), "postgres://x@/db?bad_option=%zz", newLogger(&b, "info", false))
	if d.exporter != nil || !strings.Contains(b.String(), "the exporter cannot start; postgres and HA carry on without it") {
		t.Errorf("exporter %v, log:\n%s", d.exporter, b.String())
	}
	if d.exporterStatus.Up() {
		t.Error("pgnoded_exporter_up would read 1")
	}
	d.reloadExporter() // no exporter: nothing to reload, no panic
}

// --validate-config warns about pg_exporter settings not acted on and a collector file that cannot be loaded.
func TestValidateConfigExporterWarnings(t *testing.T) {
	dir := t.TempDir()
	env, yml := filepath.Join(dir, "pg_exporter.env"), filepath.Join(dir, "pg_exporter.yml")
	os.WriteFile(env, []byte("PG_EXPORTER_NAMESPACE=pgx\n"), 0o600)
	os.WriteFile(yml, []byte("broken:\n  query: SELECT 1 AS one\n  metrics:\n    - one: {usage: NOPE}\n"), 0o600)
	path := filepath.Join(dir, "pgnoded.yml")
	os.WriteFile(path, []byte(planBase+"exporter:\n  env_file: "+env+"\n  config_search: ["+yml+"]\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"--validate-config", path}, &out, &errb); code != exitOK {
		t.Fatalf("code %d, stderr %s", code, errb.String())
	}
	for _, want := range []string{env + ":1: PG_EXPORTER_NAMESPACE", yml + ":4:", "the built-in set would be served"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("warnings lack %q:\n%s", want, errb.String())
		}
	}
}
