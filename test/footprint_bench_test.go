//go:build integration

package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Footprint phases: an idle cluster, then HAProxy-like health checks plus Prometheus-like scrapes.
const (
	// footprintIdle is the idle window (PGNODED_FOOTPRINT_IDLE_S overrides
	// it): periodic work (checkpoints, GC, etcd's member-list refresh) makes a
	// minute's figure vary by ±50 %; a 4-minute window is steadier.
	footprintIdle = 60 * time.Second
	// footprintSettle passes between "cluster up" and the idle window, for
	// pgnoded and Patroni alike: right after the bootstrap a node still does
	// one-off work (pgnoded's exporter warm-up, the replicas' first catch-up
	// and checkpoint after the base backup, Patroni's own first cycles), which
	// is not what an idle node costs. PGNODED_FOOTPRINT_SETTLE_S overrides it.
	footprintSettle    = 20 * time.Second
	footprintLoad      = 20 * time.Second
	footprintCheckRate = 50 // OPTIONS /primary per second, to each node
	footprintScrape    = 5 * time.Second
	fpClockTicks       = 100 // USER_HZ on Linux
)

// fpSample is one reading of a process's memory and CPU time.
type fpSample struct {
	RSSKiB, AnonKiB, FileKiB, ShmemKiB int64
	PssKiB                             int64         // proportional: shared binary pages divided among the pgnodeds
	CPU                                time.Duration // utime + stime, in clock ticks (10 ms)
	// Run is the time the process's threads have run, to the nanosecond
	// (/proc/PID/task/*/schedstat), and Tasks their IDs: when no thread of the
	// first of two samples has ended by the second (new ones are fine: all
	// their time falls between the two), the samples give the CPU between
	// them without the ticks' rounding, which at ~0.1 cpu-s/min is ±10 % over
	// a minute.
	Run   time.Duration
	Tasks []string // nil when a thread's run time could not be read
	At    time.Time
}

// BenchmarkFootprint measures the RSS and CPU of each pgnoded of a 3-node cluster
// (and of its fence guard, a second process) when idle and under health checks and
// scrapes. The project's target is ≤ 20 MiB RSS for one pgnoded.
func BenchmarkFootprint(b *testing.B) {
	c := StartCluster(b, 3, Fast)
	p := c.WaitPrimary(bootTimeout, nil)
	c.WaitHealthyReplicas(bootTimeout, p)
	pids := pgnodedPIDs(b, c)
	guards := make([]int, len(c.Nodes))
	for i, n := range c.Nodes {
		guards[i] = fpGuardPID(n)
	}
	fpSettle()
	b.ResetTimer()
	for range b.N {
		m0, start, guardStart := readMachineCPU(), fpSampleAll(b, pids), fpSampleGuards(guards)
		idleFor := fpIdleFor()
		time.Sleep(idleFor) // measuring an idle period, not synchronising
		idle, guardIdle := fpSampleAll(b, pids), fpSampleGuards(guards)
		b.Logf("machine during the idle window: %s", readMachineCPU().since(m0))
		checks, bad := fpDriveLoad(c, footprintLoad)
		loaded := fpSampleAll(b, pids)

		var idleMax, loadMax, idleCPU, loadCPU, anonMax, pssMax, guardMax float64
		for i, n := range c.Nodes {
			role := "replica"
			if n == p {
				role = "primary"
			}
			ic := fpCPUPercent(start[i], idle[i])
			b.Logf("%s idle: %.3f cpu-s/min over %s (%s)", n.Name, ic*0.6, idleFor, fpCPUSource(start[i], idle[i]))
			lc := fpCPUPercent(idle[i], loaded[i])
			b.Logf("%s (%s, pid %d): idle %s CPU %.2f%%; loaded %s CPU %.2f%%",
				n.Name, role, pids[i], idle[i], ic, loaded[i], lc)
			fpLogGoMemory(b, n)
			b.Logf("%s resident by mapping: %s", n.Name, fpSmapsBreakdown(pids[i]))
			if g, err := fpSampleProc(guards[i]); guards[i] > 0 && err == nil {
				b.Logf("%s fence guard (pid %d): %s", n.Name, guards[i], g)
				if guardStart[i] != nil && guardIdle[i] != nil {
					b.Logf("%s fence guard idle: %.3f cpu-s/min (%s)", n.Name,
						fpCPUPercent(*guardStart[i], *guardIdle[i])*0.6, fpCPUSource(*guardStart[i], *guardIdle[i]))
				}
				guardMax = max(guardMax, fpMiB(g.RSSKiB))
			} else {
				b.Logf("%s: no fence guard process running", n.Name)
			}
			idleMax, loadMax = max(idleMax, fpMiB(idle[i].RSSKiB)), max(loadMax, fpMiB(loaded[i].RSSKiB))
			idleCPU, loadCPU = idleCPU+ic/3, loadCPU+lc/3
			anonMax, pssMax = max(anonMax, fpMiB(loaded[i].AnonKiB)), max(pssMax, fpMiB(loaded[i].PssKiB))
		}
		b.Logf("load: %d health checks sent (%d not answered 200/503)", checks, bad)
		b.ReportMetric(idleMax, "idle-rss-max-MiB")
		b.ReportMetric(loadMax, "load-rss-max-MiB")
		b.ReportMetric(anonMax, "load-anon-max-MiB")
		b.ReportMetric(pssMax, "load-pss-max-MiB")
		b.ReportMetric(guardMax, "guard-rss-max-MiB")
		b.ReportMetric(idleCPU, "idle-cpu-%")
		b.ReportMetric(loadCPU, "load-cpu-%")
	}
}

// fpDriveLoad sends footprintCheckRate OPTIONS /primary per second to every node
// (new connection each, as HAProxy's httpchk does) and scrapes every exporter
// each footprintScrape, for d. It returns the checks sent and those failed.
func fpDriveLoad(c *Cluster, d time.Duration) (sent, bad int64) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	checker := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	scraper := &http.Client{Timeout: 5 * time.Second}
	var sentN, badN atomic.Int64
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(2)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / footprintCheckRate)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				sentN.Add(1)
				req, _ := http.NewRequest(http.MethodOptions, fmt.Sprintf("http://127.0.0.1:%d/primary", n.APIPort), nil)
				resp, err := checker.Do(req)
				if err != nil {
					badN.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != 503 {
					badN.Add(1)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for {
				if resp, err := scraper.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", n.MetricPort)); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(footprintScrape):
				}
			}
		}()
	}
	wg.Wait()
	return sentN.Load(), badN.Load()
}

// fpPgnodedPID finds the node's pgnoded: a child of this process whose command
// line names the node's config file.
func fpPgnodedPID(tb testing.TB, n *Node) int {
	tb.Helper()
	pid := fpFindPID(func(cmdline []byte, ppid int) bool {
		return ppid == os.Getpid() && bytes.Contains(cmdline, []byte(n.ConfigPath))
	})
	if pid == 0 {
		tb.Fatalf("no pgnoded process found for %s", n.Name)
	}
	return pid
}

// fpGuardPID finds the node's detached fence guard (`pgnoded fence-guard ...`
// naming the node's directory); 0 if none runs.
func fpGuardPID(n *Node) int {
	return fpFindPID(func(cmdline []byte, _ int) bool {
		return bytes.Contains(cmdline, []byte("\x00fence-guard\x00")) &&
			bytes.Contains(cmdline, []byte(n.Dir)) && !bytes.Contains(cmdline, []byte("--detach"))
	})
}

// fpFindPID returns the first process matching match(cmdline, ppid); 0 if none.
func fpFindPID(match func(cmdline []byte, ppid int) bool) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if s, err := fpReadStat(pid); err == nil && match(cmdline, s.ppid) {
			return pid
		}
	}
	return 0
}

type fpProcStat struct {
	ppid int
	cpu  time.Duration
}

// fpReadStat parses ppid, utime and stime from /proc/<pid>/stat.
func fpReadStat(pid int) (fpProcStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return fpProcStat{}, err
	}
	// Fields after the parenthesised command: state(3) ppid(4) ... utime(14) stime(15).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return fpProcStat{}, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return fpProcStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return fpProcStat{ppid: ppid, cpu: time.Duration(ut+st) * time.Second / fpClockTicks}, nil
}

// fpSampleProc reads VmRSS, RssAnon and CPU time of pid.
func fpSampleProc(pid int) (fpSample, error) {
	st, err := fpReadStat(pid)
	if err != nil {
		return fpSample{}, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return fpSample{}, err
	}
	defer f.Close()
	s := fpSample{CPU: st.cpu, At: time.Now()}
	s.Run, s.Tasks = fpRunTime(pid)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.RSSKiB = n
		case "RssAnon":
			s.AnonKiB = n
		case "RssFile":
			s.FileKiB = n
		case "RssShmem":
			s.ShmemKiB = n
		}
	}
	if err := sc.Err(); err != nil {
		return fpSample{}, err
	}
	s.PssKiB = fpSmapsField(pid, "Pss")
	return s, nil
}

// fpSmapsField reads one field (kB) of /proc/<pid>/smaps_rollup; 0 if absent.
func fpSmapsField(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// fpSmapsBreakdown sums Rss per mapping (path and permissions) from /proc/<pid>/smaps,
// largest first, to show where resident memory sits.
func fpSmapsBreakdown(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return err.Error()
	}
	sums := map[string]int64{}
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			name := "[anon]"
			if len(f) >= 6 {
				name = filepath.Base(f[5])
			}
			cur = name + " " + f[1]
			continue
		}
		if len(f) == 3 && f[0] == "Rss:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			sums[cur] += n
		}
	}
	keys := make([]string, 0, len(sums))
	for k := range sums {
		if sums[k] >= 256 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int { return int(sums[b] - sums[a]) })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%.1fMiB", k, fpMiB(sums[k])))
	}
	return strings.Join(parts, ", ")
}

// fpSampleGuards samples each fence guard (nil where none runs or it cannot be read).
func fpSampleGuards(pids []int) []*fpSample {
	out := make([]*fpSample, len(pids))
	for i, pid := range pids {
		if pid <= 0 {
			continue
		}
		if s, err := fpSampleProc(pid); err == nil {
			out[i] = &s
		}
	}
	return out
}

func fpSampleAll(tb testing.TB, pids []int) []fpSample {
	tb.Helper()
	out := make([]fpSample, len(pids))
	for i, pid := range pids {
		s, err := fpSampleProc(pid)
		if err != nil {
			tb.Fatalf("sample pgnoded pid %d: %v", pid, err)
		}
		out[i] = s
	}
	return out
}

// String formats the memory part of a sample in MiB.
func (s fpSample) String() string {
	return fmt.Sprintf("RSS %.1f MiB (anon %.1f, file %.1f, shmem %.1f, PSS %.1f)",
		fpMiB(s.RSSKiB), fpMiB(s.AnonKiB), fpMiB(s.FileKiB), fpMiB(s.ShmemKiB), fpMiB(s.PssKiB))
}

// fpSettle waits footprintSettle (or PGNODED_FOOTPRINT_SETTLE_S) before an
// idle window: a measuring period, not a wait for a condition.
func fpSettle() {
	time.Sleep(time.Duration(envInt("PGNODED_FOOTPRINT_SETTLE_S", int(footprintSettle/time.Second))) * time.Second)
}

// fpIdleFor is the idle window: footprintIdle, or PGNODED_FOOTPRINT_IDLE_S.
func fpIdleFor() time.Duration {
	return time.Duration(envInt("PGNODED_FOOTPRINT_IDLE_S", int(footprintIdle/time.Second))) * time.Second
}

// fpCPUPercent is the CPU used between two samples as a percentage of one
// core: from the threads' run times when every thread of a is still there in
// b (a thread that ended takes its time with it), else from the clock ticks.
func fpCPUPercent(a, b fpSample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	if fpTasksKept(a.Tasks, b.Tasks) {
		return 100 * float64(b.Run-a.Run) / float64(wall)
	}
	return 100 * float64(b.CPU-a.CPU) / float64(wall)
}

// fpCPUSource names what fpCPUPercent reads for a and b.
func fpCPUSource(a, b fpSample) string {
	if fpTasksKept(a.Tasks, b.Tasks) {
		return "thread run times"
	}
	return "clock ticks: a thread ended"
}

// fpTasksKept reports whether every thread ID of a is also in b; false when
// either sample could not read its threads' run times.
func fpTasksKept(a, b []string) bool {
	if a == nil || b == nil {
		return false
	}
	for _, id := range a {
		if !slices.Contains(b, id) {
			return false
		}
	}
	return true
}

// fpRunTime sums the run time of pid's threads (the first field of
// /proc/PID/task/TID/schedstat, in ns) and lists their IDs; zero and nil when
// one cannot be read (no schedstat, or a thread ended meanwhile).
func fpRunTime(pid int) (time.Duration, []string) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, nil
	}
	var run time.Duration
	ids := make([]string, 0, len(tasks))
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		f := strings.Fields(string(b))
		if err != nil || len(f) == 0 {
			return 0, nil
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, nil
		}
		run += time.Duration(ns)
		ids = append(ids, t.Name())
	}
	return run, ids
}

func fpMiB(kib int64) float64 { return float64(kib) / 1024 }

// fpGoMemMetrics are the Go runtime figures of the exporter's /metrics worth logging.
var fpGoMemMetrics = []string{
	"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes",
	"go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes", "go_memstats_gc_sys_bytes", "go_memstats_other_sys_bytes",
	"go_memstats_mspan_inuse_bytes", "go_goroutines", "go_threads", "process_resident_memory_bytes",
}

// fpLogGoMemory logs the Go runtime's view of the node's memory from its exporter.
func fpLogGoMemory(tb testing.TB, n *Node) {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", n.MetricPort))
	if err != nil {
		tb.Logf("%s: scrape for Go memory: %v", n.Name, err)
		return
	}
	defer resp.Body.Close()
	var parts []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !slices.Contains(fpGoMemMetrics, name) {
			continue
		}
		v, _ := strconv.ParseFloat(val, 64)
		if strings.HasSuffix(name, "_bytes") {
			parts = append(parts, fmt.Sprintf("%s=%.1fMiB", strings.TrimPrefix(name, "go_memstats_"), v/(1<<20)))
		} else {
			parts = append(parts, fmt.Sprintf("%s=%.0f", name, v))
		}
	}
	tb.Logf("%s Go runtime: %s", n.Name, strings.Join(parts, " "))
}
