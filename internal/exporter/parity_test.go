package exporter

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgnoded/pgnoded/internal/testenv"
	dto "github.com/prometheus/client_model/go"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/golden_*.txt from this run")

// pgExporterList is the family list of pg_exporter v1.4.1's default collector set.
const pgExporterList = "testdata/pg_exporter_v1.4.1_families.txt"

// listedFamily is one row of pgExporterList.
type listedFamily struct {
	name, typ, labels string // labels: sorted, comma separated, "" for none
	primary, replica  []int  // PostgreSQL majors where the role serves it
	extension         string // needed extension, "" for none
}

func (f listedFamily) self() bool {
	return f.name == "pg_up" || f.name == "pg_version" || f.name == "pg_in_recovery" ||
		strings.HasPrefix(f.name, "pg_exporter_")
}

func (f listedFamily) servedOn(major int, replica bool) bool {
	if replica {
		return slices.Contains(f.replica, major)
	}
	return slices.Contains(f.primary, major)
}

func readFamilyList(t *testing.T) []listedFamily {
	t.Helper()
	file, err := os.Open(pgExporterList)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	majors := func(s string) []int {
		if s == "-" {
			return nil
		}
		var out []int
		for _, m := range strings.Split(s, ",") {
			v, err := strconv.Atoi(m)
			if err != nil {
				t.Fatalf("%s: bad major %q", pgExporterList, m)
			}
			out = append(out, v)
		}
		return out
	}
	var out []listedFamily
	sc := bufio.NewScanner(file)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) < 5 || len(fields) > 6 {
			t.Fatalf("%s:%d: want 5 or 6 fields: %q", pgExporterList, line, text)
		}
		f := listedFamily{name: fields[0], typ: fields[1], labels: fields[2],
			primary: majors(fields[3]), replica: majors(fields[4])}
		if f.labels == "-" {
			f.labels = ""
		}
		if len(fields) == 6 {
			f.extension = strings.TrimPrefix(fields[5], "extension:")
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 200 {
		t.Fatalf("%s: only %d families", pgExporterList, len(out))
	}
	return out
}

// declaredFamily is a family the built-in set declares for some server.
type declaredFamily struct{ typ, labels string }

// declaredFamilies lists what the built-in set's collectors that apply to a
// server of this version and role declare, with every extension present.
// A HISTOGRAM column is one histogram family here; pg_exporter 1.4.1 exposes
// it as three gauges (<name>_bucket{le}, _count, _sum): see pgExporterView.
func declaredFamilies(t *testing.T, version int, replica bool) map[string]declaredFamily {
	t.Helper()
	specs, err := DefaultCollectors()
	if err != nil {
		t.Fatal(err)
	}
	facts := serverFacts{version: version, inRecovery: replica, user: "postgres", dbname: "postgres",
		extensions: map[string]bool{"pg_stat_statements": true}, schemas: map[string]bool{}}
	out := map[string]declaredFamily{}
	for _, s := range specs {
		if !s.applies(facts) {
			continue
		}
		cc, err := compile(s)
		if err != nil {
			t.Fatal(err)
		}
		labels := slices.Clone(cc.labelNames)
		sort.Strings(labels)
		for _, v := range cc.values {
			name := s.Name + "_" + v.col.MetricSuffix()
			typ := strings.ToLower(string(v.col.Usage))
			if prev, dup := out[name]; dup && prev.typ != typ {
				t.Errorf("%s declared twice for %d with types %s and %s", name, version, prev.typ, typ)
			}
			out[name] = declaredFamily{typ: typ, labels: strings.Join(labels, ",")}
		}
	}
	return out
}

// pgExporterView rewrites a histogram family as the three gauge families
// pg_exporter 1.4.1 exposes for it. The series names on the wire are the same;
// only the TYPE line differs (a histogram keeps promtool clean, see docs).
func pgExporterView(name string, f declaredFamily) map[string]declaredFamily {
	if f.typ != "histogram" {
		return map[string]declaredFamily{name: f}
	}
	bucket := "le"
	if f.labels != "" {
		ls := append(strings.Split(f.labels, ","), "le")
		sort.Strings(ls)
		bucket = strings.Join(ls, ",")
	}
	return map[string]declaredFamily{
		name + "_bucket": {typ: "gauge", labels: bucket},
		name + "_count":  {typ: "gauge", labels: f.labels},
		name + "_sum":    {typ: "gauge", labels: f.labels},
	}
}

// TestDefaultSetDeclaresPgExporterFamilies is the version and role predicate
// test for PostgreSQL 13 to 17: for each major and role, the collectors of the
// built-in set that apply declare exactly pg_exporter v1.4.1's families, with
// the same TYPEs and label sets (self metrics aside, which are not collectors).
func TestDefaultSetDeclaresPgExporterFamilies(t *testing.T) {
	list := readFamilyList(t)
	for _, major := range []int{13, 14, 15, 16, 17} {
		for _, replica := range []bool{false, true} {
			role := map[bool]string{false: "primary", true: "replica"}[replica]
			t.Run(fmt.Sprintf("%d_%s", major, role), func(t *testing.T) {
				got := map[string]declaredFamily{}
				for name, f := range declaredFamilies(t, major*10000+2, replica) {
					for n, v := range pgExporterView(name, f) {
						got[n] = v
					}
				}
				want := map[string]declaredFamily{}
				for _, f := range list {
					if !f.self() && f.servedOn(major, replica) {
						want[f.name] = declaredFamily{typ: f.typ, labels: f.labels}
					}
				}
				for name, w := range want {
					if g, ok := got[name]; !ok {
						t.Errorf("missing %s (%s {%s})", name, w.typ, w.labels)
					} else if g != w {
						t.Errorf("%s: got %s {%s}, pg_exporter has %s {%s}", name, g.typ, g.labels, w.typ, w.labels)
					}
				}
				for name, g := range got {
					if _, ok := want[name]; !ok {
						t.Errorf("extra %s (%s {%s}) not served by pg_exporter on %d %s", name, g.typ, g.labels, major, role)
					}
				}
				t.Logf("%d families, as pg_exporter v1.4.1", len(got))
			})
		}
	}
}

// TestDefaultSetVersionBranches pins the built-in branches whose catalogs differ by version.
func TestDefaultSetVersionBranches(t *testing.T) {
	specs, err := DefaultCollectors()
	if err != nil {
		t.Fatal(err)
	}
	byBranch := map[string]*Collector{}
	for _, s := range specs {
		byBranch[s.Branch] = s
	}
	for _, tc := range []struct {
		branch  string
		replica bool
		majors  []int // majors (of 13..17) where it runs
	}{
		{"pg_io", false, []int{16, 17}},
		{"pg_io", true, []int{16, 17}},
		{"pg_io_18", false, nil},
		{"pg_query", false, []int{13, 14, 15, 16}},
		{"pg_query_17", true, []int{17}},
		{"pg_slot_13", false, []int{13}},
		{"pg_slot", false, []int{14, 15}},
		{"pg_slot", true, nil},
		{"pg_slot_16", true, []int{16}},
		{"pg_slot_17", true, []int{17}},
		{"pg_db_13", false, []int{13}},
		{"pg_db", false, []int{14, 15, 16, 17}},
		{"pg_wal", false, []int{14, 15, 16, 17}},
		{"pg_bgwriter", false, []int{13, 14, 15, 16}},
		{"pg_bgwriter_17", false, []int{17}},
		{"pg_checkpointer_17", true, []int{17}},
		{"pg_table", false, []int{13, 14, 15}},
		{"pg_table_16", false, []int{16, 17}},
		{"pg_sub", false, []int{13, 14}},
		{"pg_sub_15", false, []int{15, 16, 17}},
		{"pg_recovery_prefetch", true, []int{15, 16, 17}},
		{"pg_recovery_prefetch", false, nil},
		{"pg_db_confl_16", true, []int{16, 17}},
		{"pg_vacuuming", false, []int{13, 14, 15, 16}},
		{"pg_vacuuming_17", false, []int{17}},
		{"pg_vacuuming_17", true, nil},
		{"pg_primary_only", true, nil},
		{"pg_replica_only", true, []int{13, 14, 15, 16, 17}},
	} {
		s := byBranch[tc.branch]
		if s == nil {
			t.Errorf("no collector %s", tc.branch)
			continue
		}
		var got []int
		for major := 13; major <= 17; major++ {
			f := serverFacts{version: major*10000 + 5, inRecovery: tc.replica,
				extensions: map[string]bool{"pg_stat_statements": true}}
			if s.applies(f) {
				got = append(got, major)
			}
		}
		if !slices.Equal(got, tc.majors) {
			t.Errorf("%s (replica=%v) runs on %v, want %v", tc.branch, tc.replica, got, tc.majors)
		}
	}
	// pg_query needs the extension in the main database.
	if byBranch["pg_query"].applies(serverFacts{version: 150004, extensions: map[string]bool{}}) {
		t.Error("pg_query planned without pg_stat_statements")
	}
}

// stagePG15 starts a PostgreSQL 15 primary and a streaming replica with every
// object pg_exporter's default collectors report on: pg_stat_statements with
// statements of a non-bootstrap role, a function called, a sequence, a default
// partition, a publication and a (disconnected) subscription, a physical and a
// logical slot, a second database, and a transaction left open on both servers.
func stagePG15(t *testing.T) (primary, replica *testenv.PG) {
	t.Helper()
	primary = testenv.StartPostgres(t, "shared_preload_libraries = 'pg_stat_statements'",
		"track_functions = all", "wal_level = logical", "track_io_timing = on")
	execSQL(t, primary, "", testenv.SQLFile(t, "testdata/golden_staging.sql")...)
	execSQL(t, primary, "",
		"SELECT pg_create_physical_replication_slot('testenv_replica')",
		"SELECT pg_create_logical_replication_slot('logical_1', 'test_decoding')",
		"ANALYZE")
	execSQL(t, primary, "app", "CREATE TABLE a1 (id serial PRIMARY KEY)", "INSERT INTO a1 DEFAULT VALUES")
	replica = primary.StartReplica(t, "primary_slot_name = 'testenv_replica'", "hot_standby_feedback = on",
		fmt.Sprintf("primary_conninfo = 'host=%s port=%d user=%s password=Secret.Pass application_name=testenv_replica'",
			primary.SocketDir, primary.Port, primary.User))
	for _, pg := range []*testenv.PG{primary, replica} {
		appWorkload(t, pg)
		holdTransaction(t, pg)
	}
	return primary, replica
}

// appWorkload runs statements as role app (pg_query leaves out the bootstrap
// superuser's) and calls f1 (function statistics are flushed when the session ends).
func appWorkload(t *testing.T, pg *testenv.PG) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.Replace(pg.DSN(""), "user="+pg.User, "user=app", 1))
	if err != nil {
		t.Fatalf("connect as app: %v", err)
	}
	for i := range 10 {
		if _, err := conn.Exec(ctx, "SELECT count(*) FROM t1 WHERE id > $1", i); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "SELECT f1()"); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The session's function statistics reach pg_stat_user_functions as it exits.
	su, err := pgx.Connect(ctx, pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	waitFor(t, "f1's call statistics", 30*time.Second, func() bool {
		var n int
		err := su.QueryRow(ctx, "SELECT count(*) FROM pg_stat_user_functions WHERE funcname = 'f1'").Scan(&n)
		return err == nil && n > 0
	})
}

// holdTransaction leaves a session idle in transaction until the test ends.
func holdTransaction(t *testing.T, pg *testenv.PG) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// servedFamilies is what a scrape served, as "type labels" by family, leaving
// out the Go runtime and process families.
func servedFamilies(t *testing.T, e *Exporter) map[string]declaredFamily {
	t.Helper()
	mfs, err := e.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]declaredFamily{}
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		labels := map[string]bool{}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				labels[l.GetName()] = true
			}
		}
		ls := make([]string, 0, len(labels))
		for l := range labels {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		out[name] = declaredFamily{typ: strings.ToLower(dto.MetricType_name[int32(mf.GetType())]), labels: strings.Join(ls, ",")}
	}
	return out
}

// TestDefaultSetServesPgExporterFamilies scrapes a real PostgreSQL 15 primary and
// replica with the built-in set: the primary serves every family of pg_exporter
// v1.4.1's list for 15 (name, TYPE, labels), the replica every one for a 15
// replica, and both match their golden family lists (go test -update rewrites them).
func TestDefaultSetServesPgExporterFamilies(t *testing.T) {
	primary, replica := stagePG15(t)
	pe := newTestExporter(t, primary, nil, nil)
	re := newTestExporter(t, replica, nil, nil)
	waitFor(t, "the standby to stream", 30*time.Second, func() bool {
		f := gather(t, pe.Registry())
		v, ok := f["pg_downstream_count"].value(map[string]string{"state": "streaming"})
		return ok && v == 1
	})
	list := readFamilyList(t)
	for _, tc := range []struct {
		role    string
		e       *Exporter
		replica bool
	}{{"primary", pe, false}, {"replica", re, true}} {
		t.Run(tc.role, func(t *testing.T) {
			served := servedFamilies(t, tc.e)
			if v := gather(t, tc.e.Registry())["pg_up"].values[0]; v != 1 {
				t.Fatalf("pg_up = %v", v)
			}
			var checked int
			for _, f := range list {
				if !f.servedOn(15, tc.replica) || activityOnly[f.name] {
					continue
				}
				if tc.replica && strings.HasPrefix(f.name, "pg_repl_") {
					continue // rows need a standby cascading from this replica
				}
				name, want := f.name, declaredFamily{typ: f.typ, labels: f.labels}
				// a pg_exporter histogram (three gauges) is served as one histogram family
				for _, sfx := range []string{"_bucket", "_count", "_sum"} {
					base := strings.TrimSuffix(f.name, sfx)
					if g, ok := served[base]; ok && base != f.name && g.typ == "histogram" {
						name = base
						want = declaredFamily{typ: "histogram", labels: strings.Join(slices.DeleteFunc(
							strings.Split(f.labels, ","), func(l string) bool { return l == "le" }), ",")}
					}
				}
				checked++
				if g, ok := served[name]; !ok {
					t.Errorf("%s: %s not served", tc.role, f.name)
				} else if g != want {
					t.Errorf("%s: %s served as %s {%s}, pg_exporter has %s {%s}", tc.role, f.name, g.typ, g.labels, want.typ, want.labels)
				}
			}
			t.Logf("%s: %d of pg_exporter's families served with its TYPE and labels (%d activity-only left out)",
				tc.role, checked, len(activityOnly))
			if calls := gather(t, tc.e.Registry())["pg_query_calls"]; calls == nil {
				t.Error("pg_query_calls missing")
			} else if v, ok := calls.value(map[string]string{"datname": "postgres"}); !ok || v < 10 {
				t.Errorf("pg_query_calls = %v (found %v), want app's 10 calls of a statement", v, ok)
			}
			if tc.replica {
				meta := gather(t, tc.e.Registry())["pg_meta_info"]
				if ci := meta.series[0]["primary_conninfo"]; strings.Contains(ci, "Secret") || !strings.Contains(ci, "password=********") {
					t.Errorf("pg_meta_info primary_conninfo = %q, want the password masked", ci)
				}
			}
			compareGolden(t, filepath.Join("testdata", "golden_pg15_"+tc.role+".txt"), served)
			if promtool, err := exec.LookPath("promtool"); err == nil {
				checkPromtool(t, promtool, scrapeText(t, tc.e))
			} else {
				t.Log("promtool not installed: lint skipped")
			}
		})
	}
}

// compareGolden checks served against a golden "family type labels" file.
func compareGolden(t *testing.T, path string, served map[string]declaredFamily) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# Families the built-in set serves on PostgreSQL 15 (%s), staged by\n", strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "golden_pg15_"), ".txt"))
	b.WriteString("# TestDefaultSetServesPgExporterFamilies; go_* and process_* left out.\n")
	b.WriteString("# Regenerate: go test -run TestDefaultSetServesPgExporterFamilies ./internal/exporter/ -update\n")
	names := make([]string, 0, len(served))
	for n := range served {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := served[n].labels
		if l == "" {
			l = "-"
		}
		fmt.Fprintf(&b, "%s %s %s\n", n, served[n].typ, l)
	}
	if *updateGolden {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	listed, err := ReadFamilyList(bytes.NewReader(want))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	wantLines := map[string]bool{}
	for _, f := range listed {
		l := f.Labels
		if l == "" {
			l = "-"
		}
		wantLines[f.Name+" "+f.Type+" "+l] = true
	}
	gotLines := map[string]bool{}
	for _, l := range strings.Split(b.String(), "\n") {
		if l != "" && l[0] != '#' {
			gotLines[l] = true
			if !wantLines[l] {
				t.Errorf("%s: served but not in the golden list: %s", path, l)
			}
		}
	}
	for l := range wantLines {
		if !gotLines[l] {
			t.Errorf("%s: in the golden list but not served: %s", path, l)
		}
	}
}
