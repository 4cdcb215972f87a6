package exporter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// fakeFS answers stat for the paths it holds.
type fakeFS map[string]bool // path -> is a directory

type fakeInfo struct {
	fs.FileInfo
	dir bool
}

func (f fakeInfo) IsDir() bool { return f.dir }

func (f fakeFS) stat(p string) (fs.FileInfo, error) {
	dir, ok := f[p]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
	}
	return fakeInfo{dir: dir}, nil
}

func TestSelectSource(t *testing.T) {
	search := []string{"/etc/pg_exporter.yml", "/etc/pg_exporter"}
	for _, tc := range []struct {
		name     string
		explicit string
		files    fakeFS
		want     string
	}{
		{"explicit wins over both", "/srv/mine.yml", fakeFS{"/srv/mine.yml": false, "/etc/pg_exporter.yml": false, "/etc/pg_exporter": true}, "/srv/mine.yml"},
		{"explicit even when missing", "/srv/missing.yml", fakeFS{"/etc/pg_exporter.yml": false}, "/srv/missing.yml"},
		{"file before directory", "", fakeFS{"/etc/pg_exporter.yml": false, "/etc/pg_exporter": true}, "/etc/pg_exporter.yml"},
		{"directory when no file", "", fakeFS{"/etc/pg_exporter": true}, "/etc/pg_exporter"},
		{"built-in when nothing", "", fakeFS{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SelectSource(tc.explicit, search, tc.files.stat)
			if got.Path != tc.want || got.Reason == "" {
				t.Errorf("SelectSource = %+v, want path %q", got, tc.want)
			}
		})
	}
	if got := SelectSource("", nil, fakeFS{"/etc/pg_exporter.yml": false}.stat); !got.Builtin() {
		t.Errorf("empty search list: %+v, want the built-in set", got)
	}
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// oneCollector is a valid collector file with a single cluster-level collector.
func oneCollector(name string) string {
	return fmt.Sprintf(`%s:
  query: SELECT 1 AS one
  tags: [cluster]
  ttl: 10
  metrics:
    - one: {usage: GAUGE, description: always one}
`, name)
}

// badCollector fails to load: line 4 has a usage pg_exporter does not know.
const badCollector = `broken:
  query: SELECT 1 AS one
  metrics:
    - one: {usage: NOT_A_USAGE}
`

func writeCollectorFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBadFileFallsBackToBuiltin(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "pg_exporter.yml")
	writeCollectorFile(t, bad, badCollector)
	var logs logBuffer
	e, err := New(Config{DSN: deadDSN(t), CollectorFile: bad, Logger: logs.logger()}, nil)
	if err != nil {
		t.Fatalf("New with a bad collector file: %v (it must fall back to the built-in set)", err)
	}
	defer e.Close()
	if !e.Source().Builtin() || !e.Status().Fallback() {
		t.Errorf("source %+v, fallback %v; want the built-in set and fallback set", e.Source(), e.Status().Fallback())
	}
	if want := bad + ":4"; !strings.Contains(logs.String(), want) {
		t.Errorf("log does not name %s:\n%s", want, logs.String())
	}
	if v := gather(t, e.Registry())["pgnoded_exporter_config_fallback"]; v == nil || v.values[0] != 1 {
		t.Errorf("pgnoded_exporter_config_fallback = %+v, want 1", v)
	}
	// A missing explicit file falls back the same way.
	e2, err := New(Config{DSN: deadDSN(t), CollectorFile: filepath.Join(t.TempDir(), "missing.yml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if !e2.Status().Fallback() {
		t.Error("missing collector file: fallback not set")
	}
}

func TestSearchPicksPigstyFile(t *testing.T) {
	dir := t.TempDir()
	file, confDir := filepath.Join(dir, "pg_exporter.yml"), filepath.Join(dir, "pg_exporter")
	if err := os.Mkdir(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeCollectorFile(t, filepath.Join(confDir, "0100-mine.yml"), oneCollector("from_dir"))
	e, err := New(Config{DSN: deadDSN(t), CollectorSearch: []string{file, confDir}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Source().Path != confDir || e.Status().Fallback() || len(e.pg.collectors) != 1 || e.pg.collectors[0].spec.Branch != "from_dir" {
		t.Errorf("source %+v, fallback %v, %d collectors", e.Source(), e.Status().Fallback(), len(e.pg.collectors))
	}
}

func TestReloadKeepsPreviousCollectorsOnBadFile(t *testing.T) {
	pg := testenv.StartPostgres(t)
	path := filepath.Join(t.TempDir(), "pg_exporter.yml")
	writeCollectorFile(t, path, oneCollector("first"))
	var logs logBuffer
	e := newTestExporter(t, pg, func(c *Config) { c.CollectorFile = path; c.Logger = logs.logger() }, nil)
	if fams := gather(t, e.Registry()); fams["first_one"] == nil {
		t.Fatalf("first_one not served: %v", familyNames(fams))
	}

	writeCollectorFile(t, path, badCollector)
	err := e.Reload(path, nil)
	if err == nil || !strings.Contains(err.Error(), path+":4") {
		t.Fatalf("Reload of a bad file = %v, want an error naming %s:4", err, path)
	}
	if !strings.Contains(logs.String(), path+":4") {
		t.Errorf("log does not name %s:4", path)
	}
	fams := gather(t, e.Registry())
	if fams["first_one"] == nil {
		t.Errorf("the previous collectors were dropped: %v", familyNames(fams))
	}
	if v := fams["pgnoded_exporter_config_fallback"]; v == nil || v.values[0] != 1 {
		t.Errorf("fallback gauge after a bad reload = %+v, want 1", v)
	}

	writeCollectorFile(t, path, oneCollector("second"))
	if err := e.Reload(path, nil); err != nil {
		t.Fatalf("Reload of a good file: %v", err)
	}
	fams = gather(t, e.Registry())
	if fams["second_one"] == nil || fams["first_one"] != nil {
		t.Errorf("after a good reload: %v", familyNames(fams))
	}
	if v := fams["pgnoded_exporter_config_fallback"]; v == nil || v.values[0] != 0 {
		t.Errorf("fallback gauge after a good reload = %+v, want 0", v)
	}
	// An empty explicit path with nothing to search reloads the built-in set.
	if err := e.Reload("", nil); err != nil || !e.Source().Builtin() {
		t.Fatalf("Reload to the built-in set: %v, source %+v", err, e.Source())
	}
	if fams := gather(t, e.Registry()); fams["pg_db_xact_commit"] == nil {
		t.Errorf("built-in set not served after reload: %v", familyNames(fams))
	}
}

func familyNames(fams map[string]*family) []string {
	var out []string
	for n := range fams {
		if !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") {
			out = append(out, n)
		}
	}
	return out
}

func TestRunRetriesBusyPort(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := held.Addr().String()
	var logs logBuffer
	e, err := New(Config{Listen: addr, DSN: deadDSN(t), Logger: logs.logger(), ListenRetry: 100 * time.Millisecond}, nil)
	if err != nil {
		held.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	defer func() {
		cancel()
		<-errc
	}()

	waitUntil(t, 10*time.Second, "the busy port is logged", func() bool {
		return strings.Contains(logs.String(), "address already in use")
	})
	// Twenty failed attempts bring the one warn-level reminder: the retry runs
	// on, and the error line must still be there only once.
	waitUntil(t, 20*time.Second, "the retries go on (the reminder after 20 attempts)", func() bool {
		return strings.Contains(logs.String(), "exporter port still unavailable")
	})
	if e.Status().Up() {
		t.Fatal("Status().Up() is true while the port is held")
	}
	if n := strings.Count(logs.String(), "exporter port unavailable"); n != 1 {
		t.Errorf("the same failure was logged %d times at error level, want once", n)
	}
	held.Close()
	waitUntil(t, 10*time.Second, "the exporter binds once the port is free", func() bool { return e.Status().Up() })
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + addr + PathMetrics)
	if err != nil {
		t.Fatalf("GET /metrics after binding: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "pgnoded_exporter_up 1") {
		t.Errorf("/metrics lacks pgnoded_exporter_up 1")
	}
	cancel()
	select {
	case err := <-errc:
		errc <- err // for the deferred receive
		if err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if e.Status().Up() {
		t.Error("Status().Up() still true after Run returned")
	}
}

func TestRunStopsWhileRetrying(t *testing.T) {
	e, err := New(Config{Listen: "256.0.0.1:1", DSN: deadDSN(t), ListenRetry: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept retrying after cancel")
	}
}

func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStatusAppendMetricsParses(t *testing.T) {
	var s Status
	s.setUp(true)
	text := s.AppendMetrics([]byte("# HELP x y\n# TYPE x gauge\nx 1\n"))
	fams := parseText(t, string(text))
	if v := fams["pgnoded_exporter_up"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("pgnoded_exporter_up = %v", v)
	}
	if v := fams["pgnoded_exporter_config_fallback"].GetMetric()[0].GetGauge().GetValue(); v != 0 {
		t.Errorf("pgnoded_exporter_config_fallback = %v", v)
	}
}

func TestConstLabelsAndTelemetryPath(t *testing.T) {
	e, err := New(Config{DSN: deadDSN(t), ConstLabels: map[string]string{"cls": "pg-test"}, MetricsPath: "/pgmetrics"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, path := range []string{PathMetrics, "/pgmetrics"} {
		code, body := getPath(t, e.Handler(), path)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", path, code)
		}
		for _, want := range []string{`pg_up{cls="pg-test"} 0`, `pgnoded_exporter_config_fallback{cls="pg-test"} 0`, "\ngo_goroutines "} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s lacks %q", path, want)
			}
		}
	}
}
