//go:build integration

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Compatibility with the real Patroni 3.0.2 patronictl (Debian package `patroni`):
// it reads our etcd keys through etcd's gRPC gateway and must see what Patroni
// itself would have written (Patroni's dcs/etcd3.py key layout, read by its ctl.py).

// ctlRow is one member row of `patronictl list -f json` (3.0.2 column names).
type ctlRow struct {
	Cluster string `json:"Cluster"`
	Member  string `json:"Member"`
	Host    string `json:"Host"`
	Role    string `json:"Role"`
	State   string `json:"State"`
	TL      any    `json:"TL"`
	Lag     any    `json:"Lag in MB"`
	Tags    any    `json:"Tags"`
}

// patronictl runs the real patronictl against one cluster's etcd and namespace.
type patronictl struct {
	t   testing.TB
	bin string
	cfg string
}

// newPatronictl writes a minimal patronictl config for c; skips when patronictl is not installed.
func newPatronictl(t testing.TB, c *Cluster) *patronictl {
	t.Helper()
	bin, err := exec.LookPath("patronictl")
	if err != nil {
		t.Skip("patronictl not installed (Debian package `patroni`, see scripts/ensure-deps.sh)")
	}
	cfg := filepath.Join(t.TempDir(), "patronictl.yml")
	text := fmt.Sprintf("scope: %s\nnamespace: /itest/\netcd3:\n  hosts: %s\n", c.Scope, c.Etcd.HostPort())
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return &patronictl{t: t, bin: bin, cfg: cfg}
}

// run executes patronictl -c cfg args… and returns stdout, stderr and the error.
func (p *patronictl) run(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"-c", p.cfg}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(p.cfg), "LC_ALL=C.UTF-8")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// must runs patronictl and fails the test on a non-zero exit; anything patronictl
// logs on stderr (warnings, tracebacks) is reported as a compatibility error.
func (p *patronictl) must(args ...string) string {
	p.t.Helper()
	out, errs, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("patronictl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errs)
	}
	if strings.TrimSpace(errs) != "" {
		p.t.Errorf("patronictl %s wrote to stderr (compatibility problem):\n%s", strings.Join(args, " "), errs)
	}
	return out
}

// list returns the rows of `patronictl list -f json`, sorted by member name.
func (p *patronictl) list(scope string) []ctlRow {
	p.t.Helper()
	out := p.must("list", "-f", "json", scope)
	var rows []ctlRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		p.t.Fatalf("patronictl list -f json: %v\n%s", err, out)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Member < rows[j].Member })
	return rows
}

// history returns the rows of `patronictl history -f json`.
func (p *patronictl) history(scope string) []map[string]any {
	p.t.Helper()
	out := p.must("history", "-f", "json", scope)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		p.t.Fatalf("patronictl history -f json: %v\n%s", err, out)
	}
	return rows
}

// waitList polls `patronictl list` until ok accepts the rows.
func (p *patronictl) waitList(timeout time.Duration, scope, what string, ok func([]ctlRow) bool) []ctlRow {
	p.t.Helper()
	var rows []ctlRow
	WaitFor(p.t, timeout, what, func() bool {
		rows = p.list(scope)
		return ok(rows)
	})
	return rows
}

// checkRows asserts the list rows describe exactly nodes with leader as Leader on timeline tl.
func checkRows(t testing.TB, c *Cluster, rows []ctlRow, nodes []*Node, leader *Node, tl int) {
	t.Helper()
	if len(rows) != len(nodes) {
		t.Fatalf("patronictl list shows %d members, want %d: %+v", len(rows), len(nodes), rows)
	}
	byName := map[string]ctlRow{}
	for _, r := range rows {
		byName[r.Member] = r
	}
	for _, n := range nodes {
		r, ok := byName[n.Name]
		if !ok {
			t.Errorf("member %s missing from patronictl list: %+v", n.Name, rows)
			continue
		}
		wantRole := "Replica"
		if n == leader {
			wantRole = "Leader"
		}
		if r.Cluster != c.Scope {
			t.Errorf("%s: Cluster %q, want %q", n.Name, r.Cluster, c.Scope)
		}
		if want := fmt.Sprintf("127.0.0.1:%d", n.PGPort); r.Host != want {
			t.Errorf("%s: Host %q, want %q", n.Name, r.Host, want)
		}
		if r.Role != wantRole {
			t.Errorf("%s: Role %q, want %q", n.Name, r.Role, wantRole)
		}
		if r.State != "running" {
			t.Errorf("%s: State %q, want running", n.Name, r.State)
		}
		if f, ok := r.TL.(float64); !ok || int(f) != tl {
			t.Errorf("%s: TL %v, want %d", n.Name, r.TL, tl)
		}
		if n == leader {
			if r.Lag != nil {
				t.Errorf("%s (leader): Lag in MB %v, want none", n.Name, r.Lag)
			}
		} else if _, ok := r.Lag.(float64); !ok {
			// "unknown" means our member value has no usable xlog_location.
			t.Errorf("%s: Lag in MB %v (%T), want a number", n.Name, r.Lag, r.Lag)
		}
	}
}

// rowsMatch reports whether rows show exactly nodes, leader leading, all running on timeline tl.
func rowsMatch(rows []ctlRow, nodes []*Node, leader *Node, tl int) bool {
	if len(rows) != len(nodes) {
		return false
	}
	names := map[string]*Node{}
	for _, n := range nodes {
		names[n.Name] = n
	}
	for _, r := range rows {
		n, ok := names[r.Member]
		if !ok || r.State != "running" || (n == leader) != (r.Role == "Leader") {
			return false
		}
		if f, ok := r.TL.(float64); !ok || int(f) != tl {
			return false
		}
	}
	return true
}

// checkHistory asserts `patronictl history` has want entries, the last one naming newLeader.
func checkHistory(t testing.TB, rows []map[string]any, want int, newLeader string) {
	t.Helper()
	if len(rows) != want {
		t.Fatalf("patronictl history has %d entries, want %d: %v", len(rows), want, rows)
	}
	last := rows[want-1]
	if f, ok := last["TL"].(float64); !ok || int(f) != want {
		t.Errorf("history entry %d: TL %v, want %d", want, last["TL"], want)
	}
	if f, ok := last["LSN"].(float64); !ok || f <= 0 {
		t.Errorf("history entry %d: LSN %v, want a positive number", want, last["LSN"])
	}
	if s, _ := last["Reason"].(string); s == "" {
		t.Errorf("history entry %d: empty Reason: %v", want, last)
	}
	if s, _ := last["Timestamp"].(string); s == "" {
		t.Errorf("history entry %d: empty Timestamp: %v", want, last)
	}
	if last["New Leader"] != newLeader {
		t.Errorf("history entry %d: New Leader %v, want %s", want, last["New Leader"], newLeader)
	}
}

// TestPatronictlReadsCluster points Patroni 3.0.2's patronictl at a pgnoded cluster:
// list (json and pretty), topology, dsn, version, show-config and history, then again
// after a failover, and finally a switchover through patronictl.
//
//	go test -tags integration -count=1 -p 1 -run TestPatronictlReadsCluster -v ./test/
func TestPatronictlReadsCluster(t *testing.T) {
	c := StartCluster(t, 3, Fast)
	ctl := newPatronictl(t, c)
	p := c.WaitPrimary(120*time.Second, nil)
	c.WaitHealthyReplicas(180*time.Second, p)

	// Replicas publish their xlog_location a cycle after they stream; wait for a stable picture.
	rows := ctl.waitList(30*time.Second, c.Scope, "patronictl list: 3 running members on TL 1", func(r []ctlRow) bool {
		return rowsMatch(r, c.Nodes, p, 1)
	})
	checkRows(t, c, rows, c.Nodes, p, 1)
	t.Logf("patronictl list -f json: %+v", rows)
	logRawKeys(t, c)

	// 3.0.2 titles the table with the scope only (4.x adds the system identifier).
	pretty := ctl.must("list", c.Scope)
	t.Logf("patronictl list:\n%s", pretty)
	if want := "+ Cluster: " + c.Scope + " "; !strings.Contains(pretty, want) {
		t.Errorf("patronictl list title lacks %q", want)
	}
	t.Logf("patronictl list -e:\n%s", ctl.must("list", "-e", c.Scope))
	t.Logf("patronictl topology:\n%s", ctl.must("topology", c.Scope))

	dsn := ctl.must("dsn", c.Scope)
	if want := fmt.Sprintf("host=127.0.0.1 port=%d", p.PGPort); !strings.Contains(dsn, want) {
		t.Errorf("patronictl dsn = %q, want it to contain %q", strings.TrimSpace(dsn), want)
	}
	version := ctl.must("version", c.Scope)
	t.Logf("patronictl version %s:\n%s", c.Scope, version)
	for _, n := range c.Nodes {
		if !regexp.MustCompile(`(?m)^` + n.Name + `: Patroni \S+ PostgreSQL \S+`).MatchString(version) {
			t.Errorf("patronictl version has no Patroni/PostgreSQL versions for %s", n.Name)
		}
	}

	checkShowConfig(t, ctl, c.Scope)
	checkEditConfigAndPause(t, c, ctl, p)
	if h := ctl.history(c.Scope); len(h) != 0 {
		t.Errorf("patronictl history on timeline 1 = %v, want empty", h)
	}

	// Failover: the primary's pgnoded and postmaster die together.
	old := p
	old.KillPgnoded()
	old.KillPostmaster()
	p = c.WaitPrimary(120*time.Second, old)
	t.Logf("failover: %s -> %s", old.Name, p.Name)
	survivors := c.Others(old)
	rows = ctl.waitList(60*time.Second, c.Scope, "patronictl list: new leader on TL 2, old member expired",
		func(r []ctlRow) bool { return rowsMatch(r, survivors, p, 2) })
	checkRows(t, c, rows, survivors, p, 2)
	checkHistory(t, ctl.history(c.Scope), 1, p.Name)
	t.Logf("patronictl history after failover:\n%s", ctl.must("history", c.Scope))

	// The old primary rejoins as a replica on timeline 2.
	old.Start()
	c.WaitHealthyReplicas(180*time.Second, p)
	rows = ctl.waitList(60*time.Second, c.Scope, "patronictl list: old primary back as a replica on TL 2",
		func(r []ctlRow) bool { return rowsMatch(r, c.Nodes, p, 2) })
	checkRows(t, c, rows, c.Nodes, p, 2)

	// Switchover through patronictl: it validates locally and POSTs /switchover to the leader.
	cand := c.Others(p)[0]
	out, errs, err := ctl.run("switchover", "--candidate", cand.Name, "--force", c.Scope)
	t.Logf("patronictl switchover --candidate %s --force: err=%v\nstdout:\n%s\nstderr:\n%s", cand.Name, err, out, errs)
	if strings.Contains(out, "not implemented") {
		t.Skipf("POST /switchover not implemented yet: %s", out)
	}
	if err != nil {
		t.Fatalf("patronictl switchover: %v", err)
	}
	if strings.TrimSpace(errs) != "" {
		t.Errorf("patronictl switchover wrote to stderr (compatibility problem):\n%s", errs)
	}
	if !strings.Contains(out, "Successfully switched over to \""+cand.Name+"\"") {
		t.Errorf("patronictl switchover did not report success: %q", out)
	}
	c.WaitPrimary(60*time.Second, p)
	c.WaitHealthyReplicas(180*time.Second, cand)
	rows = ctl.waitList(60*time.Second, c.Scope, "patronictl list: candidate leads on TL 3",
		func(r []ctlRow) bool { return rowsMatch(r, c.Nodes, cand, 3) })
	checkRows(t, c, rows, c.Nodes, cand, 3)
	checkHistory(t, ctl.history(c.Scope), 2, cand.Name)
	t.Logf("patronictl list after switchover:\n%s", ctl.must("list", c.Scope))
}

// checkShowConfig asserts show-config prints our dynamic configuration as YAML.
func checkShowConfig(t testing.TB, ctl *patronictl, scope string) {
	t.Helper()
	out := ctl.must("show-config", scope)
	t.Logf("patronictl show-config:\n%s", out)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("show-config is not YAML: %v\n%s", err, out)
	}
	for key, want := range map[string]int{"ttl": Fast.TTL, "loop_wait": Fast.LoopWait, "retry_timeout": Fast.RetryTimeout} {
		if got, ok := cfg[key].(int); !ok || got != want {
			t.Errorf("show-config %s = %v, want %d", key, cfg[key], want)
		}
	}
	pg, _ := cfg["postgresql"].(map[string]any)
	if pg["use_pg_rewind"] != true || pg["use_slots"] != true {
		t.Errorf("show-config postgresql = %v, want use_pg_rewind and use_slots true", pg)
	}
}

// checkEditConfigAndPause changes loop_wait with edit-config (a CAS write of /config
// straight to etcd) and toggles maintenance mode with pause/resume --wait (PATCH
// /config on the leader, then polling every member key for "pause").
func checkEditConfigAndPause(t testing.TB, c *Cluster, ctl *patronictl, p *Node) {
	t.Helper()
	out := ctl.must("edit-config", "--force", "-s", "loop_wait=3", c.Scope)
	t.Logf("patronictl edit-config -s loop_wait=3:\n%s", out)
	WaitFor(t, 30*time.Second, "loop_wait=3 in every node's GET /config", func() bool {
		for _, n := range c.Nodes {
			var cfg map[string]any
			if code, b := n.Get("/config"); code != 200 || json.Unmarshal(b, &cfg) != nil || cfg["loop_wait"] != float64(3) {
				return false
			}
		}
		return true
	})

	t.Logf("patronictl pause --wait:\n%s", ctl.must("pause", "--wait", c.Scope))
	if pretty := ctl.must("list", c.Scope); !strings.Contains(pretty, "Maintenance mode: on") {
		t.Errorf("patronictl list after pause lacks \"Maintenance mode: on\":\n%s", pretty)
	}
	t.Logf("patronictl resume --wait:\n%s", ctl.must("resume", "--wait", c.Scope))
	if pretty := ctl.must("list", c.Scope); strings.Contains(pretty, "Maintenance mode") {
		t.Errorf("patronictl list after resume still shows maintenance mode:\n%s", pretty)
	}
	if got := c.Primary(); got != p {
		t.Errorf("primary changed during pause/resume: %v", got)
	}
}

// logRawKeys logs the etcd values patronictl parsed, for comparing with Patroni's own.
func logRawKeys(t testing.TB, c *Cluster) {
	t.Helper()
	keys := []string{"leader", "initialize", "status", "history", "failover", "sync"}
	for _, n := range c.Nodes {
		keys = append(keys, "members/"+n.Name)
	}
	var b strings.Builder
	for _, k := range keys {
		v, ok := c.EtcdKey(context.Background(), k)
		if !ok {
			v = "(absent)"
		}
		fmt.Fprintf(&b, "  %s = %s\n", k, v)
	}
	t.Logf("raw keys under /itest/%s/:\n%s", c.Scope, b.String())
}
