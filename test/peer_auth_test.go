//go:build integration

package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The peer client against a cluster whose REST API carries Pigsty's
// restapi.authentication and HTTPS with client certificates from a private
// CA (verify_client: required): the failsafe primary's POST /failsafe and
// the leader race's GET /patroni both authenticate as Patroni's daemon does.

// peerAuthFreeze is how long etcd stays frozen in TestPeerAuthTLSFailsafe.
const peerAuthFreeze = 30 * time.Second

// exporterMetric reads one sample of n's :9630/metrics (line is the series
// name with labels); -1 when it cannot be read.
func exporterMetric(n *Node, series string) float64 {
	code, body := getDoc(n.c.http, fmt.Sprintf("http://%s:%d/metrics", n.NS.IP, nsMetricPort))
	if code != 200 {
		return -1
	}
	return metricValue(body, series)
}

// metricValue finds series in a Prometheus text body; -1 when absent.
func metricValue(body []byte, series string) float64 {
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
				return v
			}
		}
	}
	return -1
}

// failsafeMetricActive reads patroni_failsafe_mode_is_active from n's :8008/metrics.
func failsafeMetricActive(n *Node) bool {
	code, body := n.Get("/metrics")
	return code == 200 && bytes.Contains(body, []byte("patroni_failsafe_mode_is_active{")) &&
		metricValue(body, fmt.Sprintf(`patroni_failsafe_mode_is_active{scope="%s"}`, n.c.Scope)) == 1
}

// TestPeerAuthTLSFailsafe: failsafe_mode on, etcd frozen 30 s: every member
// confirms the primary over authenticated HTTPS, so writes never pause over
// 1 s, nothing acknowledged is lost and there is never a second writable
// node; /metrics shows patroni_failsafe_mode_is_active 1 on the primary.
// Then the primary's machine dies (ttl 10 s): a replica wins the race after reading
// its peers' /patroni over the same authenticated HTTPS (its log shows their
// WAL positions).
func TestPeerAuthTLSFailsafe(t *testing.T) {
	requireChaos(t)
	e := newChaosEnv(t, "peer-auth-tls-failsafe", chaosSeed(), chaosOptions{Failsafe: true, Secure: true})
	p := e.waitPrimary(30*time.Second, nil)
	e.waitFailsafeKey()

	f := e.fault("every etcd member frozen for %v, failsafe_mode on, REST API with authentication and client certificates", peerAuthFreeze)
	restore := e.etcdOutage(true)
	sawMetric := false
	for time.Since(f.At) < peerAuthFreeze {
		if !sawMetric && failsafeMetricActive(p) {
			sawMetric = true
			e.note("%s reports patroni_failsafe_mode_is_active 1 %.1fs after etcd froze", p.Name, time.Since(f.At).Seconds())
		}
		time.Sleep(250 * time.Millisecond) // the fault's length, sampled
	}
	restore()
	e.heal(f)
	if !sawMetric {
		t.Errorf("%s never reported patroni_failsafe_mode_is_active 1 on /metrics while etcd was frozen", p.Name)
	}
	if ro := e.readOnlyDuring(p, f.At, f.HealedAt); len(ro) > 0 {
		t.Errorf("the primary %s was seen read-only %d times while etcd was frozen (the members refused it?)", p.Name, len(ro))
	}
	e.recovered(f, bootTimeout)
	gap := e.writeGap(f.At, time.Now())
	e.note("longest pause between acknowledged writes from the freeze until whole again: %.3fs", gap.Seconds())
	if gap > time.Second {
		t.Errorf("writes paused %v across the freeze, want at most 1 s", gap)
	}
	e.expectNoOtherLeader(p, f.At)
	e.expectAcksOn(p)
	for _, n := range e.c.Nodes {
		if v := exporterMetric(n, `pgnoded_peer_errors_total{reason="unauthorized"}`); v != 0 {
			t.Errorf("%s counted %v unauthorized peer requests, want 0", n.Name, v)
		}
	}

	f2 := e.fault("the primary %s's machine crashed", p.Name)
	p.Crash()
	np := e.waitPrimary(failoverTimeout, p)
	line := np.LogLine("peers asked before racing")
	e.note("new primary %s %.1fs after the crash; its race: %s", np.Name, time.Since(f2.At).Seconds(), line)
	for _, r := range e.c.Others(p, np) {
		if !strings.Contains(line, "peer_"+r.Name+"=\"replica wal=") && !strings.Contains(line, "peer_"+r.Name+"=replica") {
			t.Errorf("the winner's race did not read %s's WAL position over authenticated HTTPS: %q", r.Name, line)
		}
	}
	e.w.WaitWrites(t, failoverTimeout, time.Now())
	e.judge(np, false) // a crash is not a clean event: the loss is reported, not asserted
}

// expectAcksOn fails the test unless every write acknowledged so far is on
// p, while the workload keeps running (acknowledgements are taken first, so
// each of them committed before p is read).
func (e *chaosEnv) expectAcksOn(p *Node) {
	e.t.Helper()
	_, _, acks, _ := e.w.rec.snapshot()
	present, err := presentIDs(context.Background(), p.Name, p.Conn, chaosTable)
	if err != nil {
		e.t.Fatalf("reading the rows on %s: %v", p.Name, err)
	}
	lost := 0
	for _, a := range acks {
		if !present[a.ID] {
			lost++
		}
	}
	e.note("%d acknowledged rows so far, %d missing on %s", len(acks), lost, p.Name)
	if lost > 0 {
		e.t.Errorf("%d acknowledged rows missing on %s", lost, p.Name)
	}
}

// judge checks, without waiting for a crashed node to come back, that no
// two nodes were ever writable at once and, for a clean event, that nothing
// acknowledged is missing on the primary final.
func (e *chaosEnv) judge(final *Node, clean bool) {
	e.t.Helper()
	lost, acked, err := e.w.LostOn(context.Background(), final)
	if err != nil {
		e.t.Fatalf("reading the rows on %s: %v", final.Name, err)
	}
	sql, _, _, _ := e.w.rec.snapshot()
	dual, maybe := dualPeriods(writableRuns(sql))
	e.t.Logf("%s: %d acknowledged rows, %d lost; two writable nodes: %d certain, %d possible within the sampling uncertainty",
		e.name, acked, len(lost), len(dual), len(maybe))
	if clean && len(lost) > 0 {
		e.t.Errorf("%d acknowledged rows lost (first: id %d from %s)", len(lost), lost[0].ID, lost[0].Node)
	}
	for _, d := range dual {
		e.t.Errorf("SPLIT BRAIN: %s", d)
	}
}

// TestPeerAuthWrongCtlPassword: one node's ctl.authentication gets a wrong
// password (written to its file, applied by SIGHUP). While etcd is frozen
// that node, the primary, asks its members to confirm it: they refuse
// (401), pgnoded_peer_errors_total{reason="unauthorized"} rises on it and
// its log names the peers. The right password, reloaded, makes them answer again.
func TestPeerAuthWrongCtlPassword(t *testing.T) {
	requireChaos(t)
	e := newChaosEnv(t, "peer-auth-wrong-password", chaosSeed(), chaosOptions{Failsafe: true, Secure: true})
	p := e.waitPrimary(30*time.Second, nil)
	e.waitFailsafeKey()
	const series = `pgnoded_peer_errors_total{reason="unauthorized"}`
	before := exporterMetric(p, series)
	if before != 0 {
		t.Fatalf("%s: %s = %v before the change, want 0", p.Name, series, before)
	}
	orig, err := os.ReadFile(p.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Replace(string(orig), "\nctl:\n", "\nctl:\n  authentication: {username: postgres, password: not-the-password}\n", 1)
	if wrong == string(orig) {
		t.Fatal("no ctl section in the config")
	}
	if err := os.WriteFile(p.ConfigPath, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Proc.Signal(syscall.SIGHUP)
	WaitFor(t, 10*time.Second, "the reload applying the peer client", func() bool {
		return strings.Contains(p.LogLine("reload: configuration file re-read"), "peer client")
	})

	f := e.fault("every etcd member frozen, failsafe_mode on, the primary %s with a wrong ctl.authentication password", p.Name)
	restore := e.etcdOutage(true)
	var refused float64
	WaitFor(t, 3*e.opts.ttl(), series+" rising on "+p.Name, func() bool {
		refused = exporterMetric(p, series)
		return refused > 0
	})
	line := p.LogLine("peer refused our request")
	e.note("%s: %s = %v %.1fs after etcd froze; log: %s", p.Name, series, refused, time.Since(f.At).Seconds(), line)
	named := false
	for _, r := range e.c.Others(p) {
		named = named || strings.Contains(line, "peer="+r.Name)
	}
	if !named || !strings.Contains(line, "reason=unauthorized") {
		t.Errorf("the log does not name a refusing peer and the reason: %q", line)
	}

	// The right password again, then etcd back.
	if err := os.WriteFile(p.ConfigPath, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	p.Proc.Signal(syscall.SIGHUP)
	WaitFor(t, 10*time.Second, "the second reload applying the peer client", func() bool {
		b, _ := os.ReadFile(p.LogPath)
		return strings.Count(string(b), "reload: configuration file re-read") >= 2
	})
	restore()
	e.heal(f)
	e.recovered(f, bootTimeout)
	e.finish(false)
}
