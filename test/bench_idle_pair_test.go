//go:build integration

package test

import (
	"cmp"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdlePair idles a pgnoded cluster and a Patroni 3.0.2 cluster (3
// nodes each, ttl 10/2/4, PostgreSQL 15) on the machine at the same time and
// measures both over one window, so that both see the same machine. Idle CPU
// of a supervisor is mostly the cost of its wake-ups, and that cost moves with
// what else the machine (and the host under a VM) does: two sequential runs
// of BenchmarkFootprint and BenchmarkPatroniFootprint compare two different
// machines. It reports each side's mean cpu-s/min per node, their ratio, and
// logs the machine's busy and steal share over the window.
//
// PGNODED_IDLE_PAIR_TIMING=ttl/loop_wait/retry_timeout picks other timings
// (30/10/10 is Pigsty's default).
func BenchmarkIdlePair(b *testing.B) {
	tm := idleTiming(b)
	pc := StartPatroniCluster(b, 3, tm)
	if pc.WaitUp(bootTimeout) == nil {
		b.Fatalf("patroni cluster not up within %v", bootTimeout)
	}
	c := StartCluster(b, 3, tm)
	p := c.WaitPrimary(bootTimeout, nil)
	c.WaitHealthyReplicas(bootTimeout, p)
	ppids := make([][]int, len(pc.Nodes))
	for i, n := range pc.Nodes {
		if ppids[i] = patroniPIDs(n); len(ppids[i]) == 0 {
			b.Fatalf("no patroni process found for %s", n.Name)
		}
	}
	gpids := pgnodedPIDs(b, c)
	fpSettle()
	b.ResetTimer()
	for range b.N {
		m0, g0, p0 := readMachineCPU(), fpSampleAll(b, gpids), sumSamples(b, ppids)
		idleFor := fpIdleFor()
		time.Sleep(idleFor) // measuring an idle period, not synchronising
		g1, p1, m1 := fpSampleAll(b, gpids), sumSamples(b, ppids), readMachineCPU()

		gm := logIdleCPU(b, "pgnoded", c.Nodes, g0, g1)
		pm := logIdleCPU(b, "patroni", pc.Nodes, p0, p1)
		b.Logf("ttl/loop_wait/retry_timeout %d/%d/%d, over %s, both at once: pgnoded %.4f, Patroni %.4f cpu-s/min per node (mean), ratio %.2f; machine %s",
			tm.TTL, tm.LoopWait, tm.RetryTimeout, idleFor, gm, pm, gm/pm, m1.since(m0))
		b.ReportMetric(gm, "pgnoded-cpu-s/min")
		b.ReportMetric(pm, "patroni-cpu-s/min")
		b.ReportMetric(gm/pm, "ratio")
	}
}

// idleTiming is PGNODED_IDLE_PAIR_TIMING (default 10/2/4).
func idleTiming(b *testing.B) Timing {
	b.Helper()
	tm, err := parseTiming(cmp.Or(os.Getenv("PGNODED_IDLE_PAIR_TIMING"), "10/2/4"))
	if err != nil {
		b.Fatalf("PGNODED_IDLE_PAIR_TIMING: %v", err)
	}
	return tm
}

// pgnodedPIDs is the pgnoded process of each node of c.
func pgnodedPIDs(b *testing.B, c *Cluster) []int {
	b.Helper()
	pids := make([]int, len(c.Nodes))
	for i, n := range c.Nodes {
		pids[i] = fpPgnodedPID(b, n)
	}
	return pids
}

// logIdleCPU logs each node's cpu-s/min between samples a and z and returns their mean.
func logIdleCPU(b *testing.B, daemon string, nodes []*Node, a, z []fpSample) (mean float64) {
	b.Helper()
	for i := range a {
		v := fpCPUPercent(a[i], z[i]) * 0.6
		b.Logf("%s %s idle: %.4f cpu-s/min (%s)", daemon, nodes[i].Name, v, fpCPUSource(a[i], z[i]))
		mean += v / float64(len(a))
	}
	return mean
}

// parseTiming reads "ttl/loop_wait/retry_timeout" in seconds.
func parseTiming(s string) (Timing, error) {
	var t Timing
	if n, err := fmt.Sscanf(s, "%d/%d/%d", &t.TTL, &t.LoopWait, &t.RetryTimeout); err != nil || n != 3 {
		return t, fmt.Errorf("%q is not ttl/loop_wait/retry_timeout in seconds", s)
	}
	return t, nil
}

// machineCPU is the machine-wide CPU time from /proc/stat's "cpu" line, in
// clock ticks, and the 1-minute load average.
type machineCPU struct {
	total, idle, steal uint64
	load1              string
}

func readMachineCPU() machineCPU {
	var m machineCPU
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.load1, _, _ = strings.Cut(string(b), " ")
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return m
	}
	for i, s := range f[1:9] { // user nice system idle iowait irq softirq steal
		v, _ := strconv.ParseUint(s, 10, 64)
		m.total += v
		if i == 3 || i == 4 {
			m.idle += v
		}
		if i == 7 {
			m.steal = v
		}
	}
	return m
}

// since describes the window from a to m: the share of all cores busy (not
// idle or waiting for I/O), the share stolen by the hypervisor, and the load
// average at both ends.
func (m machineCPU) since(a machineCPU) string {
	total := float64(m.total - a.total)
	if total <= 0 || m.total < a.total {
		return "CPU unknown"
	}
	busy := 100 * float64((m.total-a.total)-(m.idle-a.idle)) / total
	steal := 100 * float64(m.steal-a.steal) / total
	return fmt.Sprintf("%.1f%% busy, %.1f%% steal, load %s → %s", busy, steal, a.load1, m.load1)
}

// BenchmarkIdleEtcdTrio idles one pgnoded cluster (3 nodes, PostgreSQL 15) on a
// 3-member etcd, where clientv3 may put a node's watch and its lease
// keepalives on different members: such a watch is not vouched for by the
// keepalives and proves itself with a progress request every few seconds
// (docs/ha-waits.md). It reports the nodes' mean idle cpu-s/min, to set
// beside BenchmarkIdlePair's one-member figure, and logs each etcd member's
// Watch and LeaseKeepAlive messages per minute. PGNODED_IDLE_PAIR_TIMING
// picks the timings, as for BenchmarkIdlePair.
func BenchmarkIdleEtcdTrio(b *testing.B) {
	tm := idleTiming(b)
	etcd := startEtcdTrio(b)
	c := startSharedCluster(b, etcd, 0, tm)
	p := c.WaitPrimary(bootTimeout, nil)
	c.WaitHealthyReplicas(bootTimeout, p)
	pids := pgnodedPIDs(b, c)
	fpSettle()
	b.ResetTimer()
	for range b.N {
		m0, s0, e0 := readMachineCPU(), fpSampleAll(b, pids), etcd.scrape(b)
		idleFor := fpIdleFor()
		time.Sleep(idleFor) // measuring an idle period, not synchronising
		s1, e1, m1 := fpSampleAll(b, pids), etcd.scrape(b), readMachineCPU()
		mean := logIdleCPU(b, "pgnoded", c.Nodes, s0, s1)
		for i, m := range etcd.members {
			per := e1[i].At.Sub(e0[i].At).Minutes()
			d := func(method string) float64 {
				l := `grpc_method="` + method + `"`
				return (e1[i].Sum("grpc_server_msg_received_total", l) - e0[i].Sum("grpc_server_msg_received_total", l)) / per
			}
			b.Logf("etcd %s: Watch %.1f, LeaseKeepAlive %.1f messages received per minute", m.Name, d("Watch"), d("LeaseKeepAlive"))
		}
		b.Logf("ttl/loop_wait/retry_timeout %d/%d/%d, 3-member etcd, over %s: pgnoded %.4f cpu-s/min per node (mean); machine %s",
			tm.TTL, tm.LoopWait, tm.RetryTimeout, idleFor, mean, m1.since(m0))
		b.ReportMetric(mean, "pgnoded-cpu-s/min")
	}
}
