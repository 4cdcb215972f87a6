//go:build integration

package test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// itestCollector is a pg_exporter collector file with one collector named name.
func itestCollector(name string) string {
	return fmt.Sprintf(`%s:
  query: SELECT 1 AS one
  tags: [cluster]
  metrics:
    - one: {usage: GAUGE, description: always one}
`, name)
}

// TestExporterPigstyFilesAndReload gives a node a Pigsty-style pg_exporter
// environment file and collector file (in a temporary directory, named by
// exporter.env_file and exporter.config_search): the collector file found is
// served with the file's constant labels, settings pgnoded does not act on are
// warned about by name, a bad file on SIGHUP keeps the running collectors
// (the log names file and line, the fallback gauge shows 1), and a good file
// on POST /reload replaces them.
func TestExporterPigstyFilesAndReload(t *testing.T) {
	dir := t.TempDir()
	envPath, yml := filepath.Join(dir, "default-pg_exporter"), filepath.Join(dir, "pg_exporter.yml")
	os.WriteFile(envPath, []byte(`# as Pigsty renders it
PG_EXPORTER_URL='postgres://dbuser_monitor:DBUser.Monitor@:5432/postgres?sslmode=disable&host=/var/run/postgresql'
PG_EXPORTER_LABEL="cls=pg-itest"
PG_EXPORTER_NAMESPACE=pgx
PG_EXPORTER_AUTO_DISCOVERY=true
PG_EXPORTER_OPTS='--log.level=info --web.config.file=/etc/pg_exporter/web.yml'
`), 0o644)
	os.WriteFile(yml, []byte(itestCollector("itest_first")), 0o644)
	c := newExporterCluster(t, 1, func(int) string {
		return fmt.Sprintf("  env_file: %s\n  config_search: [%s, %s]\n", envPath, yml, filepath.Join(dir, "pg_exporter"))
	})
	n := c.Nodes[0]
	n.Start()
	c.WaitPrimary(60*time.Second, nil)
	metrics := func() string {
		_, b := getDoc(httpClient, fmt.Sprintf("http://127.0.0.1:%d/metrics", n.MetricPort))
		return string(b)
	}
	WaitFor(t, 20*time.Second, "the found collector file is served with the constant label", func() bool {
		return strings.Contains(metrics(), `itest_first_one{cls="pg-itest"} 1`)
	})
	if logContains(n, "DBUser.Monitor") {
		t.Error("the log carries the password of PG_EXPORTER_URL")
	}
	for _, want := range []string{"PG_EXPORTER_URL", "PG_EXPORTER_NAMESPACE", "--web.config.file", "source=" + yml} {
		if !logContains(n, want) {
			t.Errorf("the log does not mention %s", want)
		}
	}

	// A bad file and SIGHUP: the running collectors stay, file and line are logged.
	os.WriteFile(yml, []byte("itest_bad:\n  query: SELECT 1 AS one\n  metrics:\n    - one: {usage: NOPE}\n"), 0o644)
	n.Signal(syscall.SIGHUP)
	WaitFor(t, 15*time.Second, "the fallback gauge on the REST API", func() bool {
		return apiGauge(n, "pgnoded_exporter_config_fallback") == 1
	})
	if !logContains(n, yml+":4") {
		t.Errorf("the log does not name %s:4", yml)
	}
	if !strings.Contains(metrics(), `itest_first_one{cls="pg-itest"} 1`) {
		t.Error("the running collectors were dropped by a bad reload")
	}

	// A good file and POST /reload (patronictl reload): the new collectors are served.
	os.WriteFile(yml, []byte(itestCollector("itest_second")), 0o644)
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/reload", n.APIPort), nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("POST /reload: %v", err)
	}
	resp.Body.Close()
	WaitFor(t, 15*time.Second, "the new collector file served", func() bool {
		m := metrics()
		return strings.Contains(m, `itest_second_one{cls="pg-itest"} 1`) && !strings.Contains(m, "itest_first_one")
	})
	if v := apiGauge(n, "pgnoded_exporter_config_fallback"); v != 0 {
		t.Errorf("fallback gauge = %v after a good reload, want 0", v)
	}
	if !bytes.Contains([]byte(metrics()), []byte(`pgnoded_exporter_up{cls="pg-itest"} 1`)) {
		t.Error("pgnoded_exporter_up 1 missing on the exporter")
	}
	t.Logf("%s's exporter log lines:\n%s", n.Name, exporterLogLines(n, 20))
}
