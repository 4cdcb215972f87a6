//go:build integration

package test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// The callbacks of postgresql.callbacks, pre_promote and before_stop, checked
// against what Patroni 3.0.2 runs for the same events. Every node's scripts
// are one recording script that appends a line per call to a shared file:
// "<node> <action> <role> <scope>" for callbacks, "<node> pre_promote" and
// "<node> before_stop pg=up|down" for the hooks.
//
// TestCallbacksLikePatroni drives pgnoded through bootstrap, switchover,
// restart, reload and failover and compares the calls of each phase with
// testdata/callbacks_patroni_3.0.2.golden. The golden file is what Patroni
// 3.0.2 did in the same scenario (the same harness settings), recorded by
//
//	PGNODED_CALLBACKS_PATRONI=1 go test -tags integration -run '^TestCallbacksPatroniRecord$' -v ./test/
//
// (add PGNODED_CALLBACKS_UPDATE=1 to rewrite the golden file).

const callbacksGolden = "testdata/callbacks_patroni_3.0.2.golden"

// cbRecorder is the recording script and its file.
type cbRecorder struct {
	dir, script, file string
}

func newCBRecorder(t testing.TB) *cbRecorder {
	t.Helper()
	dir := testenv.PGDir(t) // readable by the postgres OS user, which runs the scripts
	r := &cbRecorder{dir: dir, script: filepath.Join(dir, "record.sh"), file: filepath.Join(dir, "calls.log")}
	body := `#!/bin/sh
# record.sh NODE [before_stop DATADIR | pre_promote NODEDIR | ACTION ROLE SCOPE]
node=$1; shift
case "$1" in
before_stop)
	pid=$(head -n 1 "$2/postmaster.pid" 2>/dev/null)
	st=down
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then st=up; fi
	echo "$node before_stop pg=$st" >> ` + r.file + `
	;;
pre_promote)
	echo "$node pre_promote" >> ` + r.file + `
	if [ -f "$2/slow-pre-promote" ]; then sleep 12; fi
	if [ -f "$2/fail-pre-promote" ]; then exit 1; fi
	;;
*)
	echo "$node $*" >> ` + r.file + `
	;;
esac
exit 0
`
	if err := os.WriteFile(r.script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.file, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(r.file, 0o666); err != nil {
		t.Fatal(err)
	}
	return r
}

// pgExtra adds the postgresql section's lines that point every script of the node at the recorder.
func (r *cbRecorder) pgExtra(o *nodeconf.Options) {
	name, dir := o.Name, o.Dir
	cmd := r.script + " " + name
	var b strings.Builder
	b.WriteString("  callbacks:\n")
	for _, cb := range []string{"on_start", "on_stop", "on_restart", "on_reload", "on_role_change"} {
		fmt.Fprintf(&b, "    %s: %s\n", cb, cmd)
	}
	fmt.Fprintf(&b, "  pre_promote: %s pre_promote %s\n", cmd, dir)
	fmt.Fprintf(&b, "  before_stop: %s before_stop %s/data", cmd, dir)
	o.PGExtra = b.String()
}

func (r *cbRecorder) lines() []string {
	f, err := os.Open(r.file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// settle waits until no call was recorded for quiet (callbacks are asynchronous), at most max.
func (r *cbRecorder) settle(quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	n, since := len(r.lines()), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if m := len(r.lines()); m != n {
			n, since = m, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}

// cbPhase is the calls recorded during one phase of the scenario, each as
// "<label> <action> <role>" with the node renamed by what it is in the scenario.
type cbPhase struct {
	name  string
	calls []string // in recording order
}

// cbScenario is what the scenario needs from a cluster of pgnoded or of Patroni.
type cbScenario struct {
	c        *Cluster
	rec      *cbRecorder
	nodeLoss func(*Node)
	settle   time.Duration
	strict   bool // every request must succeed (pgnoded)
}

// run drives bootstrap, switchover, restart (a replica), reload (the primary)
// and failover (the primary's node lost), and returns the calls per phase.
// Labels: P is the first primary, C the switchover candidate, R the other
// replica; after the failover W is the new primary and O the other survivor.
func (s cbScenario) run(t *testing.T) []cbPhase {
	t.Helper()
	c, rec := s.c, s.rec
	var phases []cbPhase
	label := map[string]string{}
	mark := 0
	take := func(name string) {
		rec.settle(s.settle, 30*time.Second)
		all := rec.lines()
		var calls []string
		for _, l := range all[mark:] {
			f := strings.Fields(l)
			if len(f) >= 4 && f[3] != c.Scope {
				t.Errorf("callback got scope %q, want %q: %s", f[3], c.Scope, l)
			}
			if len(f) >= 4 {
				f = f[:3] // the scope was checked
			}
			if lb, ok := label[f[0]]; ok {
				f[0] = lb
			}
			calls = append(calls, strings.Join(f, " "))
		}
		mark = len(all)
		t.Logf("phase %s: %q", name, calls)
		phases = append(phases, cbPhase{name: name, calls: calls})
	}
	waitUp := func(p *Node) {
		WaitFor(t, bootTimeout, "one primary and streaming replicas", func() bool {
			q, n := primaryNoErr(c)
			return n == 1 && q == p && allAnswer200(c.Others(p), "/replica") && StreamingReplicas(p) == len(c.Nodes)-1
		})
	}

	// Bootstrap.
	var p *Node
	WaitFor(t, bootTimeout, "a primary", func() bool { q, n := primaryNoErr(c); p = q; return n == 1 })
	waitUp(p)
	others := c.Others(p)
	sort.Slice(others, func(i, j int) bool { return others[i].Name < others[j].Name })
	cand, r := others[0], others[1]
	label[p.Name], label[cand.Name], label[r.Name] = "P", "C", "R"
	take("bootstrap")

	// Switchover P -> C.
	if got := switchover(t, p, cand, "scenario"); !strings.HasPrefix(got, "200 ") {
		t.Fatalf("switchover: %s", got)
	}
	waitUp(cand)
	take("switchover")

	// Restart of a replica.
	if code, text := r.Call(t, http.MethodPost, "/restart", map[string]any{}); code != 200 {
		if s.strict {
			t.Fatalf("restart: %d %s", code, text)
		}
		// Patroni answers 503 when the start outlasts its wait on a loaded
		// machine; the restart itself goes on, and its calls are what counts here.
		t.Logf("restart: %d %s", code, text)
	}
	waitUp(cand)
	take("restart")

	// Reload of the primary.
	if code, text := cand.Call(t, http.MethodPost, "/reload", nil); code != 200 && code != 202 {
		t.Fatalf("reload: %d %s", code, text)
	}
	take("reload")

	// Failover: the primary's node is lost.
	s.nodeLoss(cand)
	var w *Node
	WaitFor(t, bootTimeout, "a new primary", func() bool {
		for _, n := range []*Node{p, r} {
			if n.Check("/primary") == 200 {
				w = n
				return true
			}
		}
		return false
	})
	o := p
	if w == p {
		o = r
	}
	WaitFor(t, bootTimeout, "the survivor streaming from the new primary", func() bool {
		return o.Check("/replica") == 200 && StreamingReplicas(w) == 1
	})
	label[w.Name], label[o.Name], label[cand.Name] = "W", "O", "X"
	take("failover")
	return phases
}

// TestCallbacksPatroniRecord runs the scenario against Patroni 3.0.2 and prints
// (or, with PGNODED_CALLBACKS_UPDATE=1, writes) the golden file.
func TestCallbacksPatroniRecord(t *testing.T) {
	if os.Getenv("PGNODED_CALLBACKS_PATRONI") == "" {
		t.Skip("set PGNODED_CALLBACKS_PATRONI=1 to record Patroni's callbacks (about 2 minutes)")
	}
	rec := newCBRecorder(t)
	pc := startPatroniClusterWith(t, 3, Fast, rec.pgExtra)
	t.Logf("%s", pc.Version)
	phases := cbScenario{c: pc, rec: rec, nodeLoss: (*Node).NodeLoss, settle: 5 * time.Second}.run(t)
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: postgresql.callbacks per phase of TestCallbacksLikePatroni's scenario, sorted.\n", pc.Version)
	b.WriteString("# Recorded by TestCallbacksPatroniRecord; labels: P first primary, C switchover candidate,\n")
	b.WriteString("# R other replica, W/O new primary/other survivor after the failover, X the lost node.\n")
	for _, ph := range phases {
		fmt.Fprintf(&b, "[%s]\n", ph.name)
		calls := slices.Clone(ph.calls)
		sort.Strings(calls)
		for _, l := range calls {
			b.WriteString(l + "\n")
		}
	}
	t.Logf("golden:\n%s", b.String())
	if os.Getenv("PGNODED_CALLBACKS_UPDATE") != "" {
		if err := os.WriteFile(callbacksGolden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	// Patroni against its own earlier recording: a difference is a call Patroni
	// makes only sometimes (mark it optional with "? " in the golden file).
	req, opt, _ := goldenPhases(t)
	for _, ph := range phases {
		if missing, extra := compareCalls(ph.calls, req[ph.name], opt[ph.name]); len(missing)+len(extra) > 0 {
			t.Errorf("phase %s: Patroni differs from the golden file: missing %q, extra %q", ph.name, missing, extra)
		}
	}
}

// goldenPhases reads the golden file: per phase, the required calls and the
// optional ones (lines starting with "? ": Patroni made them in some runs only).
func goldenPhases(t *testing.T) (map[string][]string, map[string][]string, []string) {
	t.Helper()
	b, err := os.ReadFile(callbacksGolden)
	if err != nil {
		t.Fatal(err)
	}
	req, opt := map[string][]string{}, map[string][]string{}
	var order []string
	cur := ""
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			cur = l[1 : len(l)-1]
			order = append(order, cur)
		case strings.HasPrefix(l, "? "):
			opt[cur] = append(opt[cur], strings.TrimPrefix(l, "? "))
		default:
			req[cur] = append(req[cur], l)
		}
	}
	return req, opt, order
}

// compareCalls checks got against the golden phase: every required call made
// (as often as Patroni made it), nothing else but optional calls.
func compareCalls(got, req, opt []string) (missing, extra []string) {
	left := slices.Clone(got)
	for _, r := range req {
		if i := slices.Index(left, r); i >= 0 {
			left = slices.Delete(left, i, i+1)
		} else {
			missing = append(missing, r)
		}
	}
	for _, l := range left {
		if !slices.Contains(opt, l) {
			extra = append(extra, l)
		}
	}
	return missing, extra
}

// TestCallbacksLikePatroni: pgnoded runs the same callbacks, with the same
// arguments, on the same nodes as Patroni 3.0.2 for bootstrap, switchover,
// restart, reload and failover (compared per phase, order-insensitive inside
// a phase: Patroni's own order there depends on timing). before_stop (a
// Patroni 3.1+ key) is checked apart: it runs on the old primary before its
// switchover stop, while postgres still runs, and before its on_stop.
func TestCallbacksLikePatroni(t *testing.T) {
	testenv.RequireRoot(t)
	req, opt, order := goldenPhases(t)
	rec := newCBRecorder(t)
	c := startClusterWith(t, 3, Fast, rec.pgExtra)
	phases := cbScenario{c: c, rec: rec, settle: 3 * time.Second, strict: true, nodeLoss: func(n *Node) {
		n.KillPgnoded()
		killPostgresTree(n)
	}}.run(t)
	if len(phases) != len(order) {
		t.Fatalf("%d phases, golden has %d", len(phases), len(order))
	}
	for i, ph := range phases {
		if ph.name != order[i] {
			t.Fatalf("phase %d is %s, golden has %s", i, ph.name, order[i])
		}
		var calls, beforeStop []string
		for _, l := range ph.calls {
			if strings.Contains(l, " before_stop ") {
				beforeStop = append(beforeStop, l)
				continue
			}
			calls = append(calls, l)
		}
		missing, extra := compareCalls(calls, req[ph.name], opt[ph.name])
		if len(missing) > 0 || len(extra) > 0 {
			t.Errorf("phase %s: calls %q\n  missing (Patroni made them): %q\n  extra (Patroni did not): %q",
				ph.name, calls, missing, extra)
		}
		if ph.name == "switchover" {
			bs := slices.Index(ph.calls, "P before_stop pg=up")
			stop := slices.IndexFunc(ph.calls, func(l string) bool { return strings.HasPrefix(l, "P on_stop ") })
			if bs < 0 || stop < 0 || bs > stop {
				t.Errorf("switchover: want P's before_stop (postgres up) before its on_stop, got %q", ph.calls)
			}
		}
		for _, l := range beforeStop {
			if !strings.HasSuffix(l, "pg=up") {
				t.Errorf("phase %s: before_stop ran after postgres stopped: %s", ph.name, l)
			}
		}
	}
}

// TestCallbacksPrePromoteFailureHandsOver: a switchover to a candidate whose
// pre_promote exits 1: it takes the key, runs pre_promote, gives the key up
// without promoting and stays out of the race for ttl (Patroni's backoff);
// another node becomes the primary and the candidate follows it. The failed
// run is counted in pgnoded_callback_runs_total{callback="pre_promote",exit="1"}.
func TestCallbacksPrePromoteFailureHandsOver(t *testing.T) {
	testenv.RequireRoot(t)
	rec := newCBRecorder(t)
	c := startClusterWith(t, 3, Fast, rec.pgExtra)
	p := c.WaitPrimary(bootTimeout, nil)
	c.WaitHealthyReplicas(bootTimeout, p)
	WaitFor(t, bootTimeout, "both replicas streaming", func() bool { return StreamingReplicas(p) == 2 })
	others := c.Others(p)
	sort.Slice(others, func(i, j int) bool { return others[i].Name < others[j].Name })
	cand := others[0]
	if err := os.WriteFile(filepath.Join(cand.Dir, "fail-pre-promote"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	promoted := make(chan struct{})
	stop := make(chan struct{})
	stopWatch := sync.OnceFunc(func() { close(stop) })
	defer stopWatch()
	go func() { // the candidate must never answer /primary
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if cand.Check("/primary") == 200 {
				close(promoted)
				return
			}
		}
	}()
	switchover(t, p, cand, "pre_promote exits 1")
	var np *Node
	WaitFor(t, bootTimeout, "another node to become the primary", func() bool {
		q, n := primaryNoErr(c)
		np = q
		return n == 1 && q != cand
	})
	WaitFor(t, bootTimeout, "the candidate to follow the new primary", func() bool { return cand.Check("/replica") == 200 })
	select {
	case <-promoted:
		t.Fatalf("%s answered /primary although its pre_promote exits 1", cand.Name)
	default:
	}
	if s, err := cand.QueryString("select pg_is_in_recovery()::text"); err != nil || s != "true" {
		t.Errorf("%s: pg_is_in_recovery = %q (%v), want true", cand.Name, s, err)
	}
	lines := rec.lines()
	t.Logf("calls: %q", lines)
	if !slices.Contains(lines, cand.Name+" pre_promote") {
		t.Errorf("%s never ran pre_promote", cand.Name)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, cand.Name+" on_role_change master") {
			t.Errorf("%s fired on_role_change master without promoting: %s", cand.Name, l)
		}
	}
	if !slices.Contains(lines, np.Name+" pre_promote") || !slices.ContainsFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, np.Name+" on_role_change master ")
	}) {
		t.Errorf("the new primary %s should have run pre_promote and on_role_change master: %q", np.Name, lines)
	}
	WaitFor(t, 30*time.Second, "the failed pre_promote counted on the candidate's exporter", func() bool {
		code, body := getDoc(httpClient, fmt.Sprintf("http://127.0.0.1:%d/metrics", cand.MetricPort))
		return code == 200 && strings.Contains(string(body), `pgnoded_callback_runs_total{callback="pre_promote",exit="1"}`)
	})
	if n := countFunc(rec.lines(), func(l string) bool { return l == cand.Name+" pre_promote" }); n > 1 {
		t.Logf("%s ran pre_promote %d times (it may race again once ttl has passed)", cand.Name, n)
	}

	// A pre_promote that takes longer than ttl (12 s > 10 s): the candidate keeps
	// the leader key all along (the loop renews the lease while it runs), then promotes.
	if err := os.Remove(filepath.Join(cand.Dir, "fail-pre-promote")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cand.Dir, "slow-pre-promote"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.WaitHealthyReplicas(bootTimeout, np)
	time.Sleep(time.Duration(Fast.TTL) * time.Second) // the backoff after the failure ends
	WaitFor(t, bootTimeout, "both replicas streaming", func() bool { return StreamingReplicas(np) == 2 })
	stopWatch() // the candidate may promote now
	done := make(chan string, 1)
	go func() { done <- switchover(t, np, cand, "pre_promote sleeps 12 s") }()
	var took time.Time
	WaitFor(t, bootTimeout, "the candidate to take the leader key", func() bool {
		if c.LeaderKey() == cand.Name {
			took = time.Now()
			return true
		}
		return false
	})
	for cand.Check("/primary") != 200 {
		if k := c.LeaderKey(); k != cand.Name {
			t.Fatalf("the leader key moved to %q while %s ran a slow pre_promote", k, cand.Name)
		}
		if time.Since(took) > 60*time.Second {
			t.Fatalf("%s did not promote after its slow pre_promote", cand.Name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	held := time.Since(took)
	t.Logf("switchover with a 12 s pre_promote: %s; key held %v before /primary answered 200", <-done, held.Round(time.Millisecond))
	if held < time.Duration(Fast.TTL)*time.Second {
		t.Errorf("promoted %v after taking the key, want after the 12 s pre_promote (> ttl)", held)
	}
}

// switchover asks p to hand over to cand, again while p refuses because its
// view of cand (member key, pg_stat_replication) is not fresh yet: a refusal
// changes nothing.
func switchover(t *testing.T, p, cand *Node, why string) string {
	for i := 0; ; i++ {
		code, text := p.Call(t, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": cand.Name})
		t.Logf("switchover %s -> %s (%s): %d %s", p.Name, cand.Name, why, code, text)
		if code != http.StatusServiceUnavailable || i == 10 {
			return fmt.Sprintf("%d %s", code, text)
		}
		time.Sleep(time.Second)
	}
}

func countFunc(s []string, f func(string) bool) int {
	n := 0
	for _, v := range s {
		if f(v) {
			n++
		}
	}
	return n
}
