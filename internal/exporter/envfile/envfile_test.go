package envfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pigstyFile is testdata/pigsty.env, the shape of the file Pigsty renders from
// its pg_exporter.env template (cmd/pgnoded's tests read it too).
func pigstyFile(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/pigsty.env")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePigstyFile(t *testing.T) {
	s := Parse("/etc/default/pg_exporter", pigstyFile(t))
	if len(s.Problems) != 0 {
		t.Fatalf("problems: %v", s.Problems)
	}
	want := map[string]string{
		"url":                "postgres://dbuser_monitor:DBUser.Monitor@:5432/postgres?sslmode=disable&host=/var/run/postgresql",
		"config":             "/etc/pg_exporter.yml",
		"label":              "",
		"tag":                "",
		"disable-cache":      "false",
		"auto-discovery":     "true",
		"exclude-database":   "template0,template1,postgres",
		"include-database":   "",
		"namespace":          "pg",
		"fail-fast":          "false",
		"connect-timeout":    "200",
		"web.telemetry-path": "/metrics",
		"web.listen-address": ":9630",
		"log.level":          "info",
	}
	got := map[string]string{}
	for _, n := range s.Names() {
		v, _ := s.Get(n)
		got[n] = v.Value
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("settings:\n got %v\nwant %v", got, want)
	}
	if v, _ := s.Get("config"); v.Origin.String() != "/etc/default/pg_exporter:3: PG_EXPORTER_CONFIG" {
		t.Errorf("origin of config = %q", v.Origin)
	}
	if v, _ := s.Get("log.level"); v.Origin.String() != "/etc/default/pg_exporter:14: PG_EXPORTER_OPTS --log.level" {
		t.Errorf("origin of log.level = %q", v.Origin)
	}
	if b, set, err := s.Bool("auto-discovery"); !b || !set || err != nil {
		t.Errorf("Bool(auto-discovery) = %v %v %v", b, set, err)
	}
}

func TestParseQuotesAndComments(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`PG_EXPORTER_TAG=a,b`, "a,b"},
		{`PG_EXPORTER_TAG = a,b  `, "a,b"},
		{`export PG_EXPORTER_TAG=a`, "a"},
		{`PG_EXPORTER_TAG='a b' # a comment`, "a b"},
		{`PG_EXPORTER_TAG="a b"   # a comment`, "a b"},
		{`PG_EXPORTER_TAG=a # a comment`, "a"},
		{`PG_EXPORTER_TAG=a#b`, "a#b"},
		{`PG_EXPORTER_TAG='a#b'`, "a#b"},
		{`PG_EXPORTER_TAG="say \"hi\" \$x"`, `say "hi" $x`},
		{`PG_EXPORTER_TAG='no \escapes'`, `no \escapes`},
		{`PG_EXPORTER_TAG="a "`, "a "},
		{`PG_EXPORTER_TAG="a"'b'c`, "abc"},
		{`PG_EXPORTER_TAG=`, ""},
		{"PG_EXPORTER_TAG=a\\\nb", "ab"},
	} {
		s := Parse("f", []byte("# leading comment\n; another\n\n"+tc.line+"\n"))
		if len(s.Problems) != 0 {
			t.Errorf("%q: problems %v", tc.line, s.Problems)
			continue
		}
		if v, ok := s.Get("tag"); !ok || v.Value != tc.want {
			t.Errorf("%q: tag = %q (%v), want %q", tc.line, v.Value, ok, tc.want)
		}
	}
}

func TestParseProblemsNameTheLine(t *testing.T) {
	s := Parse("/etc/default/pg_exporter", []byte(`PG_EXPORTER_CONFIG=/etc/pg_exporter.yml
SOMETHING_ELSE=1
PG_EXPORTER_LABEL='unterminated
just some words
1BAD=x
PG_EXPORTER_OPTS="--log.level debug --web.config.file=/etc/web.yml --bogus -Z --no-auto-discovery stray --web.listen-address=:1 --web.listen-address=:2 --namespace"
`))
	var got []string
	for _, p := range s.Problems {
		got = append(got, p.String())
	}
	want := []string{
		"/etc/default/pg_exporter:2: SOMETHING_ELSE: not a pg_exporter variable; not acted on",
		"/etc/default/pg_exporter:3: PG_EXPORTER_LABEL: unterminated quote",
		`/etc/default/pg_exporter:4: not a KEY=VALUE line: "just some words"`,
		`/etc/default/pg_exporter:5: invalid variable name "1BAD"`,
		"/etc/default/pg_exporter:6: PG_EXPORTER_OPTS --bogus: not a pg_exporter flag; not acted on",
		"/etc/default/pg_exporter:6: PG_EXPORTER_OPTS -Z: not a pg_exporter flag; not acted on",
		"/etc/default/pg_exporter:6: PG_EXPORTER_OPTS stray: unexpected argument; not acted on",
		"/etc/default/pg_exporter:6: PG_EXPORTER_OPTS --web.listen-address: only the first address (:1) is served; :2 is not",
		"/etc/default/pg_exporter:6: PG_EXPORTER_OPTS --namespace: flag needs a value",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	checks := map[string]string{"log.level": "debug", "web.config.file": "/etc/web.yml", "auto-discovery": "false",
		"web.listen-address": ":1", "config": "/etc/pg_exporter.yml"}
	for name, want := range checks {
		if v, _ := s.Get(name); v.Value != want {
			t.Errorf("%s = %q, want %q", name, v.Value, want)
		}
	}
	if _, ok := s.Get("label"); ok {
		t.Error("a line with an unterminated quote was used")
	}
}

func TestFlagsWinOverVariables(t *testing.T) {
	s := Parse("f", []byte("PG_EXPORTER_OPTS='-x a,b -Cm --connect-timeout 300 -i=db1'\nPG_EXPORTER_EXCLUDE_DATABASE=c\nPG_EXPORTER_CONNECT_TIMEOUT=100\nPGURL=postgres:///x\n"))
	for name, want := range map[string]string{"exclude-database": "a,b", "connect-timeout": "300",
		"include-database": "db1", "disable-cache": "m", NamePGURL: "postgres:///x"} {
		if v, _ := s.Get(name); v.Value != want {
			t.Errorf("%s = %q, want %q", name, v.Value, want)
		}
	}
	// "-Cm" is not two flags for us: the value "m" of a boolean is refused when read.
	if _, _, err := s.Bool("disable-cache"); err == nil {
		t.Error("Bool(disable-cache) accepted \"m\"")
	}
}

func TestReadMissingFile(t *testing.T) {
	_, err := Read(filepath.Join(t.TempDir(), "pg_exporter"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a missing file: %v", err)
	}
}

// Older Pigsty releases render pg_exporter_options with a syslog log format.
func TestParseOlderPigstyOptions(t *testing.T) {
	s := Parse("f", []byte(`PG_EXPORTER_OPTS='--log.level=info --log.format="logger:syslog?appname=pg_exporter&local=7"'`+"\n"))
	if len(s.Problems) != 0 {
		t.Fatalf("problems: %v", s.Problems)
	}
	if v, _ := s.Get("log.level"); v.Value != "info" {
		t.Errorf("log.level = %q", v.Value)
	}
	if v, _ := s.Get("log.format"); v.Value != `"logger:syslog?appname=pg_exporter&local=7"` || v.Origin.Name != "PG_EXPORTER_OPTS --log.format" {
		t.Errorf("log.format = %+v", v)
	}
}
