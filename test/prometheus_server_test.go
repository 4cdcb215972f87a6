//go:build integration

package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"text/template"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// PromServer is a real Prometheus server (Debian's `prometheus` binary) run by a test.
type PromServer struct {
	URL    string
	client *http.Client
}

// PromSample is one series of an instant-query result.
type PromSample struct {
	Labels map[string]string
	Value  float64
}

var promConfigTmpl = template.Must(template.New("prom").Parse(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pgsql
    static_configs:
{{- range .Nodes}}
      - targets: ['127.0.0.1:{{.MetricPort}}']
        labels: {ins: {{.Name}}}
{{- end}}
  - job_name: patroni
    metrics_path: /metrics
    static_configs:
{{- range .Nodes}}
      - targets: ['127.0.0.1:{{.APIPort}}']
        labels: {ins: {{.Name}}}
{{- end}}
`))

// StartPrometheus runs Prometheus scraping every node's exporter (job pgsql) and
// Patroni-compatible /metrics (job patroni) each second; it is killed in t.Cleanup.
func StartPrometheus(t testing.TB, c *Cluster) *PromServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus binary not found (scripts/ensure-deps.sh installs the Debian package)")
	}
	dir := t.TempDir()
	var cfg bytes.Buffer
	if err := promConfigTmpl.Execute(&cfg, map[string]any{"Nodes": c.Nodes}); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ps := &PromServer{URL: "http://" + addr, client: &http.Client{Timeout: 3 * time.Second}}
	startHostProc(t, "prometheus", filepath.Join(dir, "prometheus.log"), 3000, bin, "--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	WaitFor(t, 30*time.Second, "prometheus ready", func() bool {
		resp, err := ps.client.Get(ps.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return ps
}

// Query runs an instant query and returns its vector (or scalar) result.
func (p *PromServer) Query(expr string) ([]PromSample, error) {
	resp, err := p.client.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: decode: %w", expr, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, body.Error)
	}
	switch body.Data.ResultType {
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(body.Data.Result, &v); err != nil {
			return nil, fmt.Errorf("query %q: scalar: %w", expr, err)
		}
		f, err := promValue(v[1])
		return []PromSample{{Value: f}}, err
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(body.Data.Result, &vec); err != nil {
			return nil, fmt.Errorf("query %q: vector: %w", expr, err)
		}
		out := make([]PromSample, 0, len(vec))
		for _, s := range vec {
			f, err := promValue(s.Value[1])
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", expr, err)
			}
			out = append(out, PromSample{Labels: s.Metric, Value: f})
		}
		return out, nil
	default:
		return nil, fmt.Errorf("query %q: unexpected result type %q", expr, body.Data.ResultType)
	}
}

// promValue parses the string form Prometheus uses for sample values.
func promValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// promInstances returns the `ins` label of every sample.
func promInstances(samples []PromSample) []string {
	out := make([]string, 0, len(samples))
	for _, s := range samples {
		out = append(out, s.Labels["ins"])
	}
	return out
}

// promEventually polls check every 250 ms until it returns nil; on timeout it fails
// the test with the last error.
func promEventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	var last error
	if !pollEvery(timeout, 250*time.Millisecond, func() bool { last = check(); return last == nil }) {
		t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, last)
	}
}
