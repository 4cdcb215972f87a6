//go:build integration

package test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// TestExporterPortBusyNeverStopsHA holds n1's exporter port before the
// cluster starts (as a pg_exporter still running on :9630 would): the cluster
// bootstraps, n1 serves its REST API with pgnoded_exporter_up 0, a kill -9 of
// the primary fails over, and n1's exporter binds within seconds of the port
// being freed (pgnoded_exporter_up 1 on both ports).
func TestExporterPortBusyNeverStopsHA(t *testing.T) {
	began := time.Now()
	// Never read this machine's /etc/pg_exporter* or /etc/default/pg_exporter.
	c := newExporterCluster(t, 3, func(int) string { return "  env_file: \"\"\n  config_search: []\n" })
	h := c.Nodes[0]
	held, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", h.MetricPort))
	if err != nil {
		t.Fatalf("hold the exporter port: %v", err)
	}
	t.Cleanup(func() { held.Close() })
	for _, nd := range c.Nodes {
		nd.Start()
	}

	p := c.WaitPrimary(60*time.Second, nil)
	c.WaitHealthyReplicas(60*time.Second, p)
	t.Logf("bootstrapped in %.1fs, primary %s; %s's exporter port is held", time.Since(began).Seconds(), p.Name, h.Name)
	WaitFor(t, 10*time.Second, h.Name+" reports pgnoded_exporter_up 0 on its REST API", func() bool {
		return apiGauge(h, "pgnoded_exporter_up") == 0
	})
	if !logContains(h, "address already in use") {
		t.Errorf("%s's log does not say why the exporter is down", h.Name)
	}
	if code := h.Check("/health"); code != http.StatusOK {
		t.Errorf("%s /health = %d while its exporter port is held", h.Name, code)
	}

	// kill -9 the primary (pgnoded and postmaster): the cluster fails over.
	killedAt := time.Now()
	p.KillPgnoded()
	p.KillPostmaster()
	np := c.WaitPrimary(time.Duration(Fast.TTL)*time.Second+60*time.Second, p)
	t.Logf("kill -9 of %s: new primary %s after %.1fs", p.Name, np.Name, time.Since(killedAt).Seconds())
	if p == h {
		// The held node was the primary: it comes back as a replica, port still held.
		h.Start()
		WaitFor(t, 90*time.Second, h.Name+" rejoins as a replica", func() bool { return h.Check("/replica") == 200 })
		WaitFor(t, 10*time.Second, h.Name+" reports pgnoded_exporter_up 0 again", func() bool {
			return apiGauge(h, "pgnoded_exporter_up") == 0
		})
	}

	// Free the port: the exporter binds at its next attempt.
	held.Close()
	freedAt := time.Now()
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", h.MetricPort)
	WaitFor(t, 20*time.Second, h.Name+"'s exporter serving once the port is free", func() bool {
		code, body := getDoc(httpClient, url)
		return code == http.StatusOK && bytes.Contains(body, []byte("\npgnoded_exporter_up 1\n"))
	})
	t.Logf("%s's exporter serving %.1fs after the port was freed", h.Name, time.Since(freedAt).Seconds())
	if v := apiGauge(h, "pgnoded_exporter_up"); v != 1 {
		t.Errorf("pgnoded_exporter_up on the REST API = %v after binding, want 1", v)
	}
	_, body := getDoc(httpClient, url)
	if !bytes.Contains(body, []byte("\npg_up 1\n")) {
		t.Errorf("%s's exporter does not report pg_up 1", h.Name)
	}
	if v := apiGauge(h, "pgnoded_exporter_config_fallback"); v != 0 {
		t.Errorf("pgnoded_exporter_config_fallback = %v, want 0 (built-in set, nothing failed)", v)
	}
	t.Logf("test took %.1fs; %s's exporter log lines:\n%s", time.Since(began).Seconds(), h.Name, exporterLogLines(h, 12))
}

// exporterLogLines are the first n lines of the node's log about the exporter.
func exporterLogLines(n *Node, max int) string {
	b, _ := os.ReadFile(n.LogPath)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "exporter") && len(out) < max {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// newExporterCluster writes the configs of n nodes with extra(i) added to
// node i's exporter section (i from 0); nothing is started.
func newExporterCluster(t *testing.T, n int, extra func(i int) string) *Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	c := newCluster(t, newLoopback(t), fmt.Sprintf("ex%d-%d", os.Getpid(), time.Now().UnixNano()%100000), DaemonPgnoded, n, ClusterOptions{Timing: Fast}, nil)
	for i, nd := range c.Nodes {
		b, err := os.ReadFile(nd.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("\nexporter:\n"), []byte("\nexporter:\n"+extra(i)), 1)
		if err := os.WriteFile(nd.ConfigPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// apiGauge reads an unlabelled gauge from the node's REST API /metrics; -1 when absent or unreachable.
func apiGauge(n *Node, name string) float64 {
	code, body := n.Get("/metrics")
	if code != http.StatusOK {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// logContains reports whether the node's pgnoded log holds s.
func logContains(n *Node, s string) bool {
	b, err := os.ReadFile(n.LogPath)
	return err == nil && bytes.Contains(b, []byte(s))
}
