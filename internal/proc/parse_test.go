package proc

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func TestSlotName(t *testing.T) {
	cases := map[string]string{
		"pg-test-1":                 "pg_test_1",
		"PG.Test_2":                 "pg_test_2",
		"node 1":                    "nodeu00321",
		"ñandú":                     "u0241andu0250",
		"a/b":                       "au0047b",
		strings.Repeat("x", 70):     strings.Repeat("x", 63),
		"10.10.10.11":               "10_10_10_11",
		"already_ok_123":            "already_ok_123",
		"with@symbol":               "withu0064symbol",
		strings.Repeat("é", 20):     strings.Repeat("u0233", 12) + "u02",
		"Upper-CASE.and-dots.mixed": "upper_case_and_dots_mixed",
	}
	for in, want := range cases {
		if got := cluster.SlotName(in); got != want {
			t.Errorf("SlotName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUserOptions(t *testing.T) {
	got, err := userOptions("initdb", []any{"data-checksums", map[string]any{"encoding": "UTF8"}, map[string]any{"locale": "C"}, "--no-instructions"}, initdbForbidden)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--data-checksums", "--encoding=UTF8", "--locale=C", "--no-instructions"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range [][]any{
		{"nosync"}, {map[string]any{"pgdata": "/x"}}, {map[string]any{"a": 1, "b": 2}}, {42}, {"--pwfile"}, {""},
	} {
		if _, err := userOptions("initdb", bad, initdbForbidden); err == nil {
			t.Errorf("userOptions(%v) accepted a bad option", bad)
		}
	}
	if _, err := userOptions("basebackup", []any{map[string]any{"max-rate": "100M"}, map[string]any{"checkpoint": "spread"}}, basebackupForbidden); err != nil {
		t.Errorf("basebackup options: %v", err)
	}
	if _, err := userOptions("basebackup", []any{map[string]any{"wal-method": "fetch"}}, basebackupForbidden); err == nil {
		t.Error("basebackup accepted wal-method")
	}
}

func TestParseControlData(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "controldata.txt"))
	if err != nil {
		t.Fatal(err)
	}
	cd, raw, err := parseControlData(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want := cluster.ControlData{
		SystemID: "7412345678901234567", ClusterState: "shut down in recovery", TimelineID: 2,
		CheckpointLSN: 0x3000060, CheckpointRedoLSN: 0x3000028, RedoWALFile: "000000020000000000000003", MinRecoveryEndLSN: 0x1_0300_0110, MinRecoveryEndTimeline: 2,
		WALLogHints: true, DataChecksumsEnabled: true,
	}
	if cd != want {
		t.Errorf("got  %+v\nwant %+v", cd, want)
	}
	if raw["max_connections setting"] != "100" {
		t.Errorf("raw max_connections = %q", raw["max_connections setting"])
	}
	if _, _, err := parseControlData("garbage"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestLSN(t *testing.T) {
	for s, want := range map[string]cluster.LSN{"0/0": 0, "16/B374D848": 0x16_B374D848, "0/3000060": 0x3000060} {
		got, err := ParseLSN(s)
		if err != nil || got != want {
			t.Errorf("ParseLSN(%q) = %v, %v", s, got, err)
		}
		if FormatLSN(got) != s {
			t.Errorf("FormatLSN(%v) = %s, want %s", got, FormatLSN(got), s)
		}
	}
	for _, bad := range []string{"", "1", "x/1", "1/zz"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) accepted", bad)
		}
	}
}

func TestParsePidFileAndOpts(t *testing.T) {
	pf, err := parsePidFile("4242\n/pg/data\n1700000000\n5432\n/var/run/postgresql\n*\n  5432001    32768\nready   \n")
	if err != nil {
		t.Fatal(err)
	}
	want := pidFile{PID: 4242, DataDir: "/pg/data", StartTime: time.Unix(1700000000, 0), Port: 5432, SocketDir: "/var/run/postgresql", Status: "ready"}
	if pf != want {
		t.Errorf("got %+v, want %+v", pf, want)
	}
	if _, err := parsePidFile("x\n"); err == nil {
		t.Error("bad pid accepted")
	}
	args := parsePostmasterOpts(`/usr/lib/postgresql/15/bin/postgres "-D" "/pg/data" "--config-file=/pg/data/postgresql.conf" "--listen_addresses=10.0.0.1,127.0.0.1" "--port=5432"` + "\n")
	wantArgs := []string{"/usr/lib/postgresql/15/bin/postgres", "-D", "/pg/data", "--config-file=/pg/data/postgresql.conf", "--listen_addresses=10.0.0.1,127.0.0.1", "--port=5432"}
	if !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("opts = %q", args)
	}
	m := cmdlineParams(args[1:])
	if m["port"] != "5432" || m["listen_addresses"] != "10.0.0.1,127.0.0.1" || len(m) != 3 {
		t.Errorf("cmdline params = %v", m)
	}
}

func TestPendingCmdline(t *testing.T) {
	running := map[string]string{"max_connections": "100", "port": "5432", "wal_level": "replica"}
	wanted := map[string]string{"max_connections": "200", "port": "5432", "wal_level": "replica", "shared_buffers": "1GB"}
	got := pendingCmdline(running, wanted)
	if len(got) != 1 || got["max_connections"] != (cluster.PendingChange{OldValue: "100", NewValue: "200"}) {
		t.Errorf("pending = %v", got)
	}
	if pendingCmdline(nil, wanted) != nil {
		t.Error("pending without a running command line")
	}
}

func TestEffectiveParamsEdges(t *testing.T) {
	c := Config{Scope: "s", ListenAddresses: "*", Port: 5433, SocketDir: "/tmp/s"}
	p, _, w := effectiveParams(c, map[string]any{
		"wal_keep_segments": "64", "max_locks_per_transaction": "x", "wal_level": "minimal",
		"port": 1, "Work_Mem": "4MB", "nothing": nil,
	}, nil)
	if p["wal_keep_size"] != "1024MB" {
		t.Errorf("wal_keep_size = %q", p["wal_keep_size"])
	}
	if _, ok := p["wal_keep_segments"]; ok {
		t.Error("wal_keep_segments kept")
	}
	if p["max_locks_per_transaction"] != "64" || p["wal_level"] != "replica" || p["port"] != "5433" {
		t.Errorf("defaults not applied: %v", p)
	}
	if p["work_mem"] != "4MB" || p["unix_socket_directories"] != "/tmp/s" || p["listen_addresses"] != "*" {
		t.Errorf("params = %v", p)
	}
	if _, ok := p["nothing"]; ok {
		t.Error("nil parameter written")
	}
	if len(w) != 2 {
		t.Errorf("warnings = %q", w)
	}
	for in, ok := range map[string]bool{"16MB": true, "15": false, "1GB": true, "16384kB": true, "1PB": false, "x": false} {
		if _, got := sizeAtLeastMB(16)(in); got != ok {
			t.Errorf("sizeAtLeastMB(%q) = %v", in, got)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for in, want := range map[any]string{true: "on", false: "off", float64(3): "3", 2.5: "2.5", 7: "7", "x": "x", int64(9): "9"} {
		if got := formatValue(in); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", in, got, want)
		}
	}
	if got := formatValue([]any{"a", float64(1)}); got != "a, 1" {
		t.Errorf("list: %q", got)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]int{
		"postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)\n": 150000,
		"postgres (PostgreSQL) 17beta1":                        170000,
		"postgres (PostgreSQL) 13.2":                           130000,
	} {
		if got, err := parseVersion(in); err != nil || got != want {
			t.Errorf("parseVersion(%q) = %d, %v", in, got, err)
		}
	}
	if _, err := parseVersion("nope"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestCheckRemovable(t *testing.T) {
	for _, bad := range []string{"", "/", "relative/dir", "/usr", "/var/lib/postgresql", "/home/postgres/", "/etc/"} {
		if checkRemovable(bad, "/home/postgres") == nil {
			t.Errorf("checkRemovable(%q) allowed", bad)
		}
	}
	for _, ok := range []string{"/pg/data", "/var/lib/postgresql/15/main", "/data/postgres/pg-test-15"} {
		if err := checkRemovable(ok, "/home/postgres"); err != nil {
			t.Errorf("checkRemovable(%q): %v", ok, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Name: "n", Scope: "s", DataDir: "/pg/data", BinDir: t.TempDir(), OSUser: "postgres"}
	if err := os.WriteFile(filepath.Join(good.BinDir, "postgres"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	c := good.WithDefaults()
	if c.ConfigDir != "/pg/data" || c.Port != 5432 || c.Superuser.Username != "postgres" || c.Rewind.Username != "postgres" ||
		c.PGCtlTimeout != DefaultPGCtlTimeout || c.LogFile != "/pg/data/log/postgres.log" || c.PgPass == "" || c.SocketDir == "" {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil && os.Geteuid() == 0 {
		t.Errorf("validate: %v", err)
	}
	bad := good
	bad.Name, bad.DataDir, bad.Port = "", "rel", 70000
	bad.InitdbOptions = []any{"nosync"}
	bad.Parameters = map[string]any{"unix_socket_directories": "/a, /b"}
	bad.SocketDir = "/c"
	err := bad.WithDefaults().Validate()
	for _, want := range []string{"name", "data_dir", "port", "nosync", "unix_socket_directories"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate error %v does not mention %q", err, want)
		}
	}
	sock := Config{Parameters: map[string]any{"unix_socket_directories": "/var/run/postgresql, /tmp"}}
	if got := defaultSocketDir(sock, osUser{}); got != "/var/run/postgresql" {
		t.Errorf("socket dir from parameter = %q", got)
	}
}

func TestWithoutSettings(t *testing.T) {
	in := "# Do not edit this file manually!\nprimary_conninfo = 'host=x'\nwork_mem = '4MB'\n  Primary_Slot_Name='s'\nrestore_command\t= 'cp'\n#primary_conninfo = 'old'\n"
	out, removed := withoutSettings(in, recoveryGUCs)
	if want := "# Do not edit this file manually!\nwork_mem = '4MB'\n#primary_conninfo = 'old'\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	if !reflect.DeepEqual(removed, []string{"primary_conninfo", "primary_slot_name", "restore_command"}) {
		t.Errorf("removed %q", removed)
	}
	if out, removed := withoutSettings("work_mem = '1MB'", recoveryGUCs); out != "work_mem = '1MB'" || removed != nil {
		t.Errorf("unchanged file: %q %q", out, removed)
	}
}
