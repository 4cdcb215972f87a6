package exporter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fullCollector = `# a comment line
pg_full_branch:
  name: pg_full
  desc: every field
  query: |
    SELECT 1 AS a, 'x' AS l
  ttl: 2.5
  timeout: -1
  priority: 7
  min_version: 090400
  max_version: 170000
  fatal: true
  skip: false
  tags: [cluster, primary, "extension:pg_stat_statements"]
  predicate_queries:
    - name: has_view
      predicate_query: SELECT true
      ttl: 30
    - query: SELECT false
  metrics:
    - l:    { usage: label, description: "a label" }
    - a:    { usage: COUNTER, rename: b, description: "a counter", default: 0, scale: 1e-3 }
    - junk: { usage: DISCARD }
    - h:
        usage: HISTOGRAM
        bucket: [1, 10, 100]
        description: "a histogram"

second:
  query: SELECT 1 AS v
  priority: 1
  metrics:
    - v: { usage: GAUGE }
`

func TestParseEveryField(t *testing.T) {
	cs, err := ParseCollectors([]byte(fullCollector), "full.yml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if len(cs) != 2 {
		t.Fatalf("got %d collectors", len(cs))
	}
	if cs[0].Branch != "second" || cs[0].Name != "second" {
		t.Errorf("priority order or default name wrong: %+v", cs[0])
	}
	c := cs[1]
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("Branch", c.Branch, "pg_full_branch")
	check("Name", c.Name, "pg_full")
	check("Desc", c.Desc, "every field")
	check("Query", c.Query, "SELECT 1 AS a, 'x' AS l")
	check("TTL", c.TTL, 2500*time.Millisecond)
	check("Timeout", c.Timeout, -time.Second)
	check("Priority", c.Priority, 7)
	check("MinVersion", c.MinVersion, 90400)
	check("MaxVersion", c.MaxVersion, 170000)
	check("Fatal", c.Fatal, true)
	check("Skip", c.Skip, false)
	check("File", c.File, "full.yml")
	check("Line", c.Line, 2)
	check("Tags", strings.Join(c.Tags, ","), "cluster,primary,extension:pg_stat_statements")
	if len(c.Predicates) != 2 {
		t.Fatalf("predicates: %+v", c.Predicates)
	}
	check("Pred0.Name", c.Predicates[0].Name, "has_view")
	check("Pred0.Query", c.Predicates[0].Query, "SELECT true")
	check("Pred0.TTL", c.Predicates[0].TTL, 30*time.Second)
	check("Pred1.Name", c.Predicates[1].Name, "pg_full_branch#1")
	check("Pred1.Query", c.Predicates[1].Query, "SELECT false")
	if len(c.Columns) != 4 {
		t.Fatalf("columns: %+v", c.Columns)
	}
	l, a, junk, h := c.Columns[0], c.Columns[1], c.Columns[2], c.Columns[3]
	check("l.Usage", l.Usage, UsageLabel)
	check("l.Description", l.Description, "a label")
	check("a.Usage", a.Usage, UsageCounter)
	check("a.Rename", a.Rename, "b")
	check("a.MetricSuffix", a.MetricSuffix(), "b")
	check("a.Scale", a.Scale, 1e-3)
	if a.Default == nil || *a.Default != 0 {
		t.Errorf("a.Default = %v", a.Default)
	}
	check("a.Line", a.Line, 22)
	check("junk.Usage", junk.Usage, UsageDiscard)
	check("junk.Default", junk.Default == nil, true)
	check("h.Usage", h.Usage, UsageHistogram)
	check("h.Buckets", len(h.Buckets), 3)
	check("ClusterLevel", c.ClusterLevel(), true)
	check("second.ClusterLevel", cs[0].ClusterLevel(), false)
}

func TestVersionPredicates(t *testing.T) {
	c := &Collector{MinVersion: 140000, MaxVersion: 170000}
	for v, want := range map[int]bool{130015: false, 140000: true, 150008: true, 169999: true, 170000: false, 180001: false} {
		if got := c.VersionOK(v); got != want {
			t.Errorf("VersionOK(%d) = %v, want %v", v, got, want)
		}
	}
	open := &Collector{}
	if !open.VersionOK(90000) || !open.VersionOK(999999) {
		t.Error("zero bounds must accept every version")
	}
	onlyMin := &Collector{MinVersion: 150000}
	if onlyMin.VersionOK(140010) || !onlyMin.VersionOK(190000) {
		t.Error("min_version only")
	}
}

func TestTagGating(t *testing.T) {
	primary := serverFacts{version: 150008, user: "dbuser_monitor", dbname: "postgres",
		extensions: map[string]bool{"pg_stat_statements": true}, schemas: map[string]bool{"monitor": true},
		tags: []string{"pigsty"}}
	replica := primary
	replica.inRecovery = true
	cases := []struct {
		tags             []string
		onPrimary, onRep bool
	}{
		{nil, true, true},
		{[]string{"cluster"}, true, true},
		{[]string{"primary"}, true, false},
		{[]string{"master"}, true, false},
		{[]string{"replica"}, false, true},
		{[]string{"standby"}, false, true},
		{[]string{"dbname:postgres"}, true, true},
		{[]string{"dbname:app"}, false, false},
		{[]string{"username:dbuser_monitor"}, true, true},
		{[]string{"username:other"}, false, false},
		{[]string{"extension:pg_stat_statements"}, true, true},
		{[]string{"extension:citus"}, false, false},
		{[]string{"schema:monitor"}, true, true},
		{[]string{"schema:nope"}, false, false},
		{[]string{"pigsty"}, true, true},
		{[]string{"other"}, false, false},
		{[]string{"not:pigsty"}, false, false},
		{[]string{"not:other"}, true, true},
		{[]string{"cluster", "primary", "pigsty"}, true, false},
	}
	for _, tc := range cases {
		c := &Collector{Tags: tc.tags}
		if got := c.applies(primary); got != tc.onPrimary {
			t.Errorf("tags %v on primary: %v, want %v", tc.tags, got, tc.onPrimary)
		}
		if got := c.applies(replica); got != tc.onRep {
			t.Errorf("tags %v on replica: %v, want %v", tc.tags, got, tc.onRep)
		}
	}
	if (&Collector{Skip: true}).applies(primary) {
		t.Error("skip: true must never apply")
	}
	if (&Collector{MinVersion: 160000}).applies(primary) {
		t.Error("version predicate ignored by applies")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"bad yaml", "ok_one:\n  query: SELECT 1\n  metrics:\n    - v: {usage: GAUGE}\nbroken:\n  query: SELECT 1\n  metrics: [\n    - v: {usage: GAUGE\n",
			[]string{"bad.yml:", `collector "broken"`, "invalid YAML"}},
		{"bad usage", "c1:\n  query: SELECT 1 AS v\n  metrics:\n    - v: { usage: GAGUE }\n",
			[]string{"bad.yml:4:", `collector "c1"`, `invalid usage "GAGUE"`}},
		{"missing query", "c2:\n  metrics:\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:1:", `collector "c2"`, "missing query"}},
		{"empty query", "c3:\n  query: \"  \"\n  metrics:\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:2:", `collector "c3"`, "empty query"}},
		{"missing metrics", "c4:\n  query: SELECT 1\n", []string{"bad.yml:1:", `collector "c4"`, "missing metrics"}},
		{"missing usage", "c5:\n  query: SELECT 1\n  metrics:\n    - v: { description: x }\n",
			[]string{"bad.yml:4:", `collector "c5"`, `column "v": missing usage`}},
		{"unknown field", "c6:\n  query: SELECT 1\n  min_verison: 1\n  metrics:\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:3:", `collector "c6"`, `unknown field "min_verison"`}},
		{"bad version", "c7:\n  query: SELECT 1\n  min_version: 9.4\n  metrics:\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:3:", `collector "c7"`, "not an integer"}},
		{"min above max", "c8:\n  query: SELECT 1\n  min_version: 170000\n  max_version: 140000\n  metrics:\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:1:", `collector "c8"`, "must be below max_version"}},
		{"bad ttl", "c9:\n  query: SELECT 1\n  ttl: soon\n  metrics:\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:3:", `collector "c9"`, `"soon" is not a number`}},
		{"no value column", "c10:\n  query: SELECT 1\n  metrics:\n    - v: { usage: LABEL }\n",
			[]string{"bad.yml:3:", `collector "c10"`, "no COUNTER, GAUGE or HISTOGRAM column"}},
		{"duplicate column", "c11:\n  query: SELECT 1\n  metrics:\n    - v: { usage: GAUGE }\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:5:", `collector "c11"`, `column "v" listed twice`}},
		{"bad label", "c12:\n  query: SELECT 1\n  metrics:\n    - bad-label: { usage: LABEL }\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:4:", `collector "c12"`, "not a valid label name"}},
		{"bad metric name", "c13:\n  name: pg-x\n  query: SELECT 1\n  metrics:\n    - v: { usage: GAUGE }\n",
			[]string{`collector "c13"`, "not a valid metric name"}},
		{"histogram without bucket", "c14:\n  query: SELECT 1\n  metrics:\n    - v: { usage: HISTOGRAM }\n",
			[]string{"bad.yml:4:", `collector "c14"`, "needs a bucket list"}},
		{"bucket not increasing", "c15:\n  query: SELECT 1\n  metrics:\n    - v: { usage: HISTOGRAM, bucket: [10, 1] }\n",
			[]string{"bad.yml:4:", `collector "c15"`, "must increase"}},
		{"duplicate collector", "c16:\n  query: SELECT 1\n  metrics:\n    - v: { usage: GAUGE }\nc16:\n  query: SELECT 2\n  metrics:\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:5:", `collector "c16"`, "duplicate collector"}},
		{"metrics not a list", "c17:\n  query: SELECT 1\n  metrics: {v: {usage: GAUGE}}\n",
			[]string{"bad.yml:3:", `collector "c17"`, "metrics must be a list"}},
		{"rename clash", "c18:\n  query: SELECT 1\n  metrics:\n    - a: { usage: GAUGE, rename: b }\n    - b: { usage: GAUGE }\n",
			[]string{"bad.yml:5:", `collector "c18"`, "produced twice"}},
		{"bad fatal", "c19:\n  query: SELECT 1\n  fatal: maybe\n  metrics:\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:3:", `collector "c19"`, "not a boolean"}},
		{"predicate without query", "c20:\n  query: SELECT 1\n  predicate_queries:\n    - name: p\n  metrics:\n    - v: { usage: GAUGE }\n",
			[]string{"bad.yml:4:", `collector "c20"`, "missing predicate_query"}},
		{"top level list", "- a\n- b\n", []string{"bad.yml:1:", "top level must be a map"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCollectors([]byte(tc.yaml), "bad.yml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseReportsAllErrors(t *testing.T) {
	y := "a:\n  query: SELECT 1\n  metrics:\n    - v: { usage: NOPE }\nb:\n  metrics:\n    - v: { usage: GAUGE }\n"
	_, err := ParseCollectors([]byte(y), "two.yml")
	if err == nil || !strings.Contains(err.Error(), `collector "a"`) || !strings.Contains(err.Error(), `collector "b"`) {
		t.Fatalf("want both collectors reported, got %v", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, y := range []string{"", "# only comments\n", "---\n"} {
		cs, err := ParseCollectors([]byte(y), "empty.yml")
		if err != nil || len(cs) != 0 {
			t.Errorf("%q: %v %v", y, cs, err)
		}
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("0200-b.yml", "b:\n  query: SELECT 1 AS v\n  metrics:\n    - v: { usage: GAUGE }\n")
	write("0100-a.yaml", "a:\n  query: SELECT 1 AS v\n  metrics:\n    - v: { usage: GAUGE }\n")
	write("0000-doc.yml", "# documentation only\n")
	write("README.md", "not yaml: [")
	cs, err := LoadCollectors(dir)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(cs) != 2 || cs[0].Branch != "a" || cs[1].Branch != "b" {
		t.Fatalf("want a, b in file order, got %v", cs)
	}
	write("0300-dup.yml", "\n\na:\n  query: SELECT 2 AS v\n  metrics:\n    - v: { usage: GAUGE }\n")
	_, err = LoadCollectors(dir)
	if err == nil || !strings.Contains(err.Error(), "0300-dup.yml:3:") || !strings.Contains(err.Error(), "duplicate collector") {
		t.Fatalf("want duplicate across files, got %v", err)
	}
	if _, err := LoadCollectors(filepath.Join(dir, "missing.yml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestDefaultCollectorsLoad(t *testing.T) {
	cs, err := DefaultCollectors()
	if err != nil {
		t.Fatalf("default set: %v", err)
	}
	names := map[string]bool{}
	for _, c := range cs {
		names[c.Name] = true
		if c.Desc == "" {
			t.Errorf("%s: no desc", c.Branch)
		}
		for _, col := range c.Columns {
			if col.Usage.isValue() && col.Description == "" {
				t.Errorf("%s.%s: no description", c.Branch, col.Name)
			}
		}
	}
	for _, n := range []string{"pg", "pg_setting", "pg_repl", "pg_sync_standby", "pg_downstream", "pg_slot", "pg_recv",
		"pg_size", "pg_bgwriter", "pg_checkpointer", "pg_checkpoint", "pg_timeline", "pg_wal", "pg_activity",
		"pg_lock", "pg_db", "pg_db_confl", "pg_table", "pg_index"} {
		if !names[n] {
			t.Errorf("default set lacks %s", n)
		}
	}
	// Exactly one branch per name applies to any server version and role.
	for _, v := range []int{140000, 150008, 160000, 170000, 180000} {
		for _, rec := range []bool{false, true} {
			seen := map[string]string{}
			for _, c := range cs {
				if !c.applies(serverFacts{version: v, inRecovery: rec}) {
					continue
				}
				if prev, dup := seen[c.Name]; dup {
					t.Errorf("version %d recovery %v: %s and %s both apply", v, rec, prev, c.Branch)
				}
				seen[c.Name] = c.Branch
			}
		}
	}
}
