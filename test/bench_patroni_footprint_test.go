//go:build integration

package test

import (
	"bytes"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkPatroniFootprint mirrors BenchmarkFootprint on a Patroni cluster
// (ttl 10/2/4): the RSS and CPU of each node's Patroni (the sum of the python
// processes whose command line names the node's YAML; postgres excluded, as
// for pgnoded) after 20 s idle, then under the same load -- 50 OPTIONS
// /primary per second per node on new connections and a GET /metrics every
// 5 s (Patroni serves /metrics on its REST port) -- for 20 s.
func BenchmarkPatroniFootprint(b *testing.B) {
	pc := StartPatroniCluster(b, 3, Fast)
	p := pc.WaitUp(bootTimeout)
	if p == nil {
		b.Fatalf("patroni cluster not up within %v", bootTimeout)
	}
	c := pc
	pids := make([][]int, len(c.Nodes))
	for i, n := range c.Nodes {
		pids[i] = patroniPIDs(n)
		if len(pids[i]) == 0 {
			b.Fatalf("no patroni process found for %s", n.Name)
		}
	}
	fpSettle()
	b.ResetTimer()
	for range b.N {
		m0, start := readMachineCPU(), sumSamples(b, pids)
		idleFor := fpIdleFor()
		time.Sleep(idleFor) // measuring an idle period, not synchronising
		idle := sumSamples(b, pids)
		b.Logf("machine during the idle window: %s", readMachineCPU().since(m0))
		checks, bad := fpDriveLoad(c, footprintLoad)
		loaded := sumSamples(b, pids)

		var idleMax, loadMax, idleCPU, loadCPU, anonMax, pssMax float64
		for i, n := range c.Nodes {
			role := "replica"
			if n == p {
				role = "primary"
			}
			ic := fpCPUPercent(start[i], idle[i])
			b.Logf("%s idle: %.3f cpu-s/min over %s (%s)", n.Name, ic*0.6, idleFor, fpCPUSource(start[i], idle[i]))
			lc := fpCPUPercent(idle[i], loaded[i])
			b.Logf("%s (%s, patroni pids %v): idle %s CPU %.2f%%; loaded %s CPU %.2f%%",
				n.Name, role, pids[i], idle[i], ic, loaded[i], lc)
			b.Logf("%s resident by mapping: %s", n.Name, fpSmapsBreakdown(pids[i][0]))
			idleMax, loadMax = max(idleMax, fpMiB(idle[i].RSSKiB)), max(loadMax, fpMiB(loaded[i].RSSKiB))
			idleCPU, loadCPU = idleCPU+ic/3, loadCPU+lc/3
			anonMax, pssMax = max(anonMax, fpMiB(loaded[i].AnonKiB)), max(pssMax, fpMiB(loaded[i].PssKiB))
		}
		b.Logf("load: %d health checks sent (%d not answered 200/503)", checks, bad)
		b.ReportMetric(idleMax, "idle-rss-max-MiB")
		b.ReportMetric(loadMax, "load-rss-max-MiB")
		b.ReportMetric(anonMax, "load-anon-max-MiB")
		b.ReportMetric(pssMax, "load-pss-max-MiB")
		b.ReportMetric(idleCPU, "idle-cpu-%")
		b.ReportMetric(loadCPU, "load-cpu-%")
	}
}

// patroniPIDs lists the processes whose command line names n's Patroni YAML
// (the patroni python process and any helper it forked), main process first.
func patroniPIDs(n *Node) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, []byte(n.ConfigPath)) {
			continue
		}
		if s, err := fpReadStat(pid); err == nil && s.ppid == os.Getpid() {
			out = append([]int{pid}, out...)
		} else {
			out = append(out, pid)
		}
	}
	return out
}

// sumSamples samples every pid of every node and adds them up per node.
func sumSamples(tb testing.TB, pids [][]int) []fpSample {
	tb.Helper()
	out := make([]fpSample, len(pids))
	for i, set := range pids {
		var sum fpSample
		threadTimes := true // every process's threads have run times; else ticks only
		for _, pid := range set {
			s, err := fpSampleProc(pid)
			if err != nil {
				tb.Fatalf("sample patroni pid %d: %v", pid, err)
			}
			sum.RSSKiB += s.RSSKiB
			sum.AnonKiB += s.AnonKiB
			sum.FileKiB += s.FileKiB
			sum.ShmemKiB += s.ShmemKiB
			sum.PssKiB += s.PssKiB
			sum.CPU += s.CPU
			sum.Run += s.Run
			sum.Tasks = append(sum.Tasks, s.Tasks...)
			threadTimes = threadTimes && s.Tasks != nil
			sum.At = s.At
		}
		if !threadTimes {
			sum.Tasks = nil
		}
		out[i] = sum
	}
	return out
}
