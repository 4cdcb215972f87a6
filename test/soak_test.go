//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// BenchmarkSoak (`make soak`, never in `make test`): a 3-node cluster at the
// lowest timing each daemon works at -- pgnoded at ttl 3/1/1 under the
// unit file's own scheduling settings (unitsched_test.go), Patroni 3.0.2 at
// 5/1/2 as Debian runs it -- for PGNODED_SOAK_MINUTES (default 30) each, while
// the machine is saturated: stress-ng on every core, pgbench on the primary
// (following it when it moves) and an fsync storm (stress-ng --hdd with
// fsync) beside the postgres data directories and beside etcd's. Nothing is
// killed: every leader change is spurious. Counted: leader changes (etcd
// watch of the leader key), demotions and moments with no writable primary
// (SplitBrainChecker's per-node samples), the longest write outage and lost
// rows (Writer), etcd's own fsync latency and leader changes (its /metrics).
// PGNODED_SOAK_DAEMONS picks the daemons (default "pgnoded,patroni").
//
//	stress-ng must be installed (`make soak` installs it with apt when missing).
func BenchmarkSoak(b *testing.B) {
	testenv.RequireRoot(b)
	if _, err := exec.LookPath("stress-ng"); err != nil {
		b.Skip("skipping: stress-ng not installed (apt-get install -y stress-ng; `make soak` does it)")
	}
	d := time.Duration(envFloat("PGNODED_SOAK_MINUTES", 30) * float64(time.Minute))
	daemons := os.Getenv("PGNODED_SOAK_DAEMONS")
	if daemons == "" {
		daemons = "pgnoded,patroni"
	}
	var rows []soakResult
	for _, name := range strings.Split(daemons, ",") {
		daemon, tm, unit := DaemonPgnoded, Timing{TTL: 3, LoopWait: 1, RetryTimeout: 1}, true
		switch strings.TrimSpace(name) {
		case "pgnoded":
		case "pgnoded-plain": // without the unit's scheduling settings, to see what they are worth
			unit = false
		case "patroni":
			daemon, tm = DaemonPatroni, Timing{TTL: 5, LoopWait: 1, RetryTimeout: 2}
		default:
			b.Fatalf("PGNODED_SOAK_DAEMONS: unknown daemon %q (pgnoded, pgnoded-plain, patroni)", name)
		}
		b.Run(fmt.Sprintf("%s_ttl%d_%d_%d", strings.TrimSpace(name), tm.TTL, tm.LoopWait, tm.RetryTimeout), func(b *testing.B) {
			r := runSoak(b, daemon, tm, unit, d)
			rows = append(rows, r)
			b.ReportMetric(r.perHour(), "leader_changes/h")
			b.ReportMetric(r.LongestOutage.Seconds(), "s_longest_write_outage")
			b.ReportMetric(float64(r.Lost), "lost_rows")
		})
	}
	printSoakTable(rows)
}

// soakResult is one soak run's figures.
type soakResult struct {
	Daemon        Daemon
	Unit          bool // under the unit file's scheduling settings
	Version       string
	Timing        Timing
	Duration      time.Duration
	Sched         string   // the scheduling the daemon ran under
	Notes         []string // settings that could not be applied here
	LoadAvg       float64  // mean 1-minute load average during the run
	LoadMax       float64
	LeaderChanges int   // the leader key's holder changed (or the key went) while nothing was killed
	MinLeaseLeft  int64 // the least lease time left on the leader key seen by etcd (whole seconds, sampled every 250 ms)
	Demotions     int   // a node stopped being writable while running
	NoPrimary     int   // periods over 1 s with no writable node
	NoPrimaryMax  time.Duration
	LongestOutage time.Duration // longest gap between two acknowledged writes
	Acked, Lost   int
	SplitBrain    int
	DaemonLog     string // lease trouble the daemons logged
	Etcd          etcdHealth
	EtcdMembers   int
}

func (r soakResult) name() string {
	switch {
	case r.Version != "":
		return r.Version
	case r.Daemon == DaemonPgnoded && !r.Unit:
		return "pgnoded (nice 0, no unit settings)"
	}
	return r.Daemon.String()
}

func (r soakResult) perHour() float64 {
	return float64(r.LeaderChanges) / r.Duration.Hours()
}

// runSoak runs one daemon's cluster for d under saturation and measures it.
func runSoak(b *testing.B, daemon Daemon, tm Timing, unit bool, d time.Duration) soakResult {
	r := soakResult{Daemon: daemon, Timing: tm, Duration: d, Sched: "as the harness starts it (nice 0, SCHED_OTHER, best-effort I/O 4)"}
	scope := fmt.Sprintf("soak%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	if daemon == DaemonPatroni {
		r.Version = requirePatroni(b)
	}
	// The DCS: one embedded etcd (the harness's default), or with
	// PGNODED_SOAK_ETCD_MEMBERS=3 three etcd processes as Pigsty runs them
	// (heartbeat 100 ms, election 1 s), whose raft traffic and three WAL
	// fsyncs per write then compete for the saturated machine too.
	var network Network
	var etcdMetrics []string
	switch n := os.Getenv("PGNODED_SOAK_ETCD_MEMBERS"); n {
	case "3":
		trio := startEtcdTrio(b)
		network, etcdMetrics, r.EtcdMembers = &sharedEtcdNet{loopbackHosts: loopbackHosts{t: b}, etcd: trio}, trio.metricsURLs(), 3
	case "", "1":
		lb := newLoopback(b)
		network, etcdMetrics, r.EtcdMembers = lb, []string{lb.etcd.Endpoint() + "/metrics"}, 1
	default:
		b.Fatalf("PGNODED_SOAK_ETCD_MEMBERS=%q: 1 (embedded, the default) or 3 (etcd processes)", n)
	}
	c := newCluster(b, network, scope, daemon, 3, ClusterOptions{Timing: tm}, nil)
	c.Version = r.Version
	if daemon == DaemonPgnoded && unit {
		u := readUnitSched(b, "../deploy/systemd/pgnoded.service")
		prefix, notes := u.execPrefix()
		for _, nd := range c.Nodes {
			nd.Proc.spec.argv = append(append([]string(nil), prefix...), nd.Proc.spec.argv...)
		}
		how := "wrappers (systemd is not PID 1 here)"
		if systemdIsPID1() {
			how = "wrappers (the same syscalls systemd makes before ExecStart)"
		}
		r.Unit = true
		r.Sched, r.Notes = "deploy/systemd/pgnoded.service: "+u.String()+", applied by "+how+": "+strings.Join(prefix, " "), notes
	}
	defer c.Close()
	c.StartAll()
	p := c.WaitUp(bootTimeout)
	if p == nil {
		c.DumpLogs(4000)
		b.Fatalf("%s cluster not up with 1 primary + 2 streaming replicas within %v", daemon, bootTimeout)
	}
	fmt.Fprintf(os.Stderr, "SOAK %s ttl %d/%d/%d: cluster up, primary %s; scheduling: %s %v\n",
		daemon, tm.TTL, tm.LoopWait, tm.RetryTimeout, p.Name, r.Sched, r.Notes)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pgbenchInit(b, p)
	before, err := scrapeEtcds(etcdMetrics)
	if err != nil {
		b.Fatal(err)
	}

	// Observers first, then the load.
	watch := startLeaderWatch(ctx, c)
	w := StartWriter(b, c, p)
	checker := StartSplitBrainChecker(b, c)
	start := time.Now()
	stopLoad := startSaturation(b, c, d)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by the run: ends with ctx
		defer wg.Done()
		runPgbench(ctx, b, c, start.Add(d))
	}()
	leaseLeft := make(chan int64, 1)
	wg.Add(1)
	go func() { // owned by the run: ends with ctx
		defer wg.Done()
		least := int64(tm.TTL)
		everyTick(ctx, 250*time.Millisecond, func() {
			if _, left := c.LeaderLease(ctx); left >= 0 {
				least = min(least, left)
			}
		})
		leaseLeft <- least
	}()
	var loads []float64
	everyTickUntil(start.Add(d), 10*time.Second, func() {
		loads = append(loads, loadAvg1())
		if el := time.Since(start); el%time.Minute < 10*time.Second {
			fmt.Fprintf(os.Stderr, "SOAK %s %s/%s: load %.1f, acked %d, leader changes %d\n",
				daemon, el.Round(time.Second), d, loads[len(loads)-1], w.Acked(), watch.changes())
		}
	})
	end := time.Now()
	cancel()
	wg.Wait()
	r.MinLeaseLeft = <-leaseLeft
	stopLoad()
	after, err := scrapeEtcds(etcdMetrics)
	if err != nil {
		b.Error(err)
	} else {
		r.Etcd = etcdHealthOfMembers(before, after)
	}

	// The figures: writes first (the writer stops), then the samplers.
	r.LongestOutage = w.Outage(start, end)
	final := c.WaitPrimary(60*time.Second, nil)
	lost := w.Lost(b, final)
	r.Acked, r.Lost = w.Acked(), len(lost)
	r.SplitBrain = len(checker.Stop())
	r.Demotions, r.NoPrimary, r.NoPrimaryMax = writableStats(checker, start, end)
	r.LeaderChanges = watch.changes()
	for _, l := range loads {
		r.LoadAvg += l / float64(len(loads))
		r.LoadMax = max(r.LoadMax, l)
	}
	r.DaemonLog = daemonLeaseTrouble(c)
	if r.Lost > 0 {
		b.Errorf("%s lost %d acknowledged rows: %v", daemon, r.Lost, lost[:min(len(lost), 10)])
	}
	if r.SplitBrain > 0 {
		b.Errorf("%s: two writable nodes at once %d times", daemon, r.SplitBrain)
	}
	fmt.Fprintf(os.Stderr, "SOAK %s done: %+v\n", daemon, r)
	return r
}

// scrapeEtcds reads every etcd member's /metrics, in the order given.
func scrapeEtcds(urls []string) ([]promSample, error) {
	out := make([]promSample, 0, len(urls))
	for _, u := range urls {
		s, err := scrapeProm(u)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// etcdHealthOfMembers combines each member's change between two scrapes:
// counts are summed over the members, latency quantiles are the worst
// member's, and leader changes (which every member sees) the most any
// member saw.
func etcdHealthOfMembers(before, after []promSample) etcdHealth {
	var h etcdHealth
	for i := range before {
		m := etcdHealthDelta(before[i], after[i])
		h.WALFsync = h.WALFsync.merge(m.WALFsync)
		h.BackendCommit = h.BackendCommit.merge(m.BackendCommit)
		h.LeaderChanges = max(h.LeaderChanges, m.LeaderChanges)
		h.HeartbeatFailures += m.HeartbeatFailures
		h.SlowApplies += m.SlowApplies
		h.SlowReadIndexes += m.SlowReadIndexes
		h.ProposalsFailed += m.ProposalsFailed
		h.ProposalsPending += m.ProposalsPending
	}
	return h
}

// startSaturation starts stress-ng on every core and two fsync storms (one
// beside the postgres data directories, one beside etcd's) for d plus a
// margin; the returned func stops them (the cleanup does too).
func startSaturation(b *testing.B, c *Cluster, d time.Duration) func() {
	b.Helper()
	secs := strconv.Itoa(int(d.Seconds()) + 60)
	pgDisk := filepath.Dir(c.Nodes[0].Dir) // the nodes' directories are made here
	etcdDisk := os.TempDir()               // the embedded etcd's data directory (t.TempDir) lives here
	var procs []*Proc
	run := func(name string, argv ...string) {
		dir, err := os.MkdirTemp(argv[len(argv)-1], "soak-io-")
		if err != nil {
			b.Fatal(err)
		}
		argv[len(argv)-1] = dir
		logPath := filepath.Join(b.TempDir(), name+".log")
		p := newProc(name, nil, logPath, procSpec{argv: argv, killGroup: true})
		p.start(b)
		procs = append(procs, p)
		b.Cleanup(func() { p.Kill(); os.RemoveAll(dir) })
	}
	// --cpu 0: one worker per online CPU. --hdd with fsync: every write is
	// followed by fsync(2), the pattern that stalls etcd's WAL and postgres' commits.
	run("stress-cpu", "stress-ng", "--cpu", "0", "--cpu-load", "100", "--timeout", secs, "--temp-path", pgDisk)
	run("stress-io-pg", "stress-ng", "--hdd", "1", "--hdd-opts", "wr-rnd,fsync", "--hdd-bytes", "256m",
		"--hdd-write-size", "16k", "--timeout", secs, "--temp-path", pgDisk)
	run("stress-io-etcd", "stress-ng", "--hdd", "1", "--hdd-opts", "wr-rnd,fsync", "--hdd-bytes", "256m",
		"--hdd-write-size", "16k", "--timeout", secs, "--temp-path", etcdDisk)
	return func() {
		for _, p := range procs {
			p.Signal(syscall.SIGTERM) // stress-ng stops its workers and removes its files
		}
		for _, p := range procs {
			if !p.WaitExit(15 * time.Second) {
				p.Kill()
			}
		}
	}
}

// pgbenchInit creates pgbench's tables (scale 5) on the primary.
func pgbenchInit(b *testing.B, p *Node) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := pgbenchCmd(ctx, b, p, "-i", "-s", "5", "-q").CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench -i on %s: %v: %s", p.Name, err, out)
	}
}

func pgbenchCmd(ctx context.Context, b testing.TB, p *Node, args ...string) *exec.Cmd {
	args = append(args, "-h", p.Host, "-p", strconv.Itoa(p.PGPort), "-U", "postgres", "postgres")
	cmd := exec.CommandContext(ctx, filepath.Join(testenv.PGBinDir(b), "pgbench"), args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+superPassword, "PGCONNECT_TIMEOUT=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// runPgbench runs pgbench (4 clients, 2 threads) against whichever node
// answers /primary until `until` or ctx ends, starting it again when a
// failover breaks its connections.
func runPgbench(ctx context.Context, b testing.TB, c *Cluster, until time.Time) {
	logf, err := os.Create(filepath.Join(b.TempDir(), "pgbench.log"))
	if err != nil {
		b.Error(err)
		return
	}
	defer logf.Close()
	for ctx.Err() == nil {
		left := time.Until(until)
		if left < 2*time.Second {
			return
		}
		p := c.Primary()
		if p == nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		cmd := pgbenchCmd(ctx, b, p, "-n", "-c", "4", "-j", "2", "-T", strconv.Itoa(int(left.Seconds())))
		cmd.Stdout, cmd.Stderr = logf, logf
		_ = cmd.Run()
		sleepCtx(ctx, time.Second)
	}
}

// leaderWatch follows the leader key through an etcd watch.
type leaderWatch struct {
	mu      sync.Mutex
	holder  string
	changed int
}

// startLeaderWatch counts every change of the leader key's holder (a delete
// or expiry counts once, the next holder does not count again).
func startLeaderWatch(ctx context.Context, c *Cluster) *leaderWatch {
	lw := &leaderWatch{}
	key := "/itest/" + c.Scope + "/leader"
	lw.holder, _ = c.EtcdKey(ctx, "leader")
	ch := c.etcdClient().Watch(ctx, key)
	go func() { // owned by ctx: the watch channel closes when it ends
		for resp := range ch {
			for _, ev := range resp.Events {
				lw.mu.Lock()
				switch {
				case ev.Type == clientv3.EventTypeDelete:
					if lw.holder != "" {
						lw.changed++
					}
					lw.holder = ""
				case string(ev.Kv.Value) != lw.holder:
					if lw.holder != "" {
						lw.changed++
					}
					lw.holder = string(ev.Kv.Value)
				}
				lw.mu.Unlock()
			}
		}
	}()
	return lw
}

func (lw *leaderWatch) changes() int {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.changed
}

// writableStats reads the checker's per-node writable intervals (after Stop)
// within [from, to]: demotions (a writable run that ended before `to`, runs
// less than 1 s apart being one -- a sample lost to the load is not a
// demotion), and the periods over 1 s in which no node was writable.
func writableStats(s *SplitBrainChecker, from, to time.Time) (demotions, noPrimary int, longest time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	const glitch = time.Second
	var all []interval
	for _, ivs := range s.intervals {
		ivs = append([]interval(nil), ivs...)
		sort.Slice(ivs, func(i, j int) bool { return ivs[i].from.Before(ivs[j].from) })
		var merged []interval
		for _, iv := range ivs {
			if n := len(merged); n > 0 && iv.from.Sub(merged[n-1].to) < glitch {
				merged[n-1].to = later(merged[n-1].to, iv.to)
				continue
			}
			merged = append(merged, iv)
		}
		for _, iv := range merged {
			if iv.to.After(from) && iv.to.Before(to.Add(-glitch)) {
				demotions++
			}
		}
		all = append(all, merged...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].from.Before(all[j].from) })
	covered := from
	for _, iv := range all {
		if iv.from.After(covered) && iv.from.Before(to) {
			if gap := iv.from.Sub(covered); gap > glitch {
				noPrimary++
				longest = max(longest, gap)
			}
		}
		covered = later(covered, iv.to)
	}
	if gap := to.Sub(covered); gap > glitch {
		noPrimary++
		longest = max(longest, gap)
	}
	return demotions, noPrimary, longest
}

// daemonLeaseTrouble counts the log lines in which the daemons report trouble
// keeping their lease or loop.
func daemonLeaseTrouble(c *Cluster) string {
	pats := []string{"lease renewal failed", "lease expired or was revoked", "lease keepalive failed or lease lost",
		"the leader key is no longer ours", "unexpected lease keepalive answer", "failsafe mode entry", "fence failed", "cannot arm the fence guard"}
	if c.Daemon == DaemonPatroni {
		pats = []string{"Error communicating with DCS", "Loop time exceeded", "failed to update leader lock", "Demoting self", "demoted"}
	}
	var parts []string
	for _, pat := range pats {
		n := 0
		for _, nd := range c.Nodes {
			n += nd.LogCount(pat)
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%q x%d", pat, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// printSoakTable prints the soak's table (issue's Show list) to stderr.
func printSoakTable(rows []soakResult) {
	if len(rows) == 0 {
		return
	}
	var sb strings.Builder
	sb.WriteString("\nSOAK TABLE (nothing killed: every leader change is spurious)\n")
	sb.WriteString("| daemon | ttl/loop/retry | etcd members | minutes | load avg (max) | leader changes | per hour | least lease left | demotions | no writable primary >1 s (longest) | longest write outage | acked rows | lost rows | split brain | etcd wal fsync p99, worst member (>100 ms) | etcd leader changes |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		name := r.name()
		fmt.Fprintf(&sb, "| %s | %d/%d/%d | %d | %.1f | %.1f (%.1f) | %d | %.1f | %d s | %d | %d (%s) | %s | %d | %d | %d | %s (%.0f) | %.0f |\n",
			name, r.Timing.TTL, r.Timing.LoopWait, r.Timing.RetryTimeout, r.EtcdMembers, r.Duration.Minutes(), r.LoadAvg, r.LoadMax,
			r.LeaderChanges, r.perHour(), r.MinLeaseLeft, r.Demotions, r.NoPrimary, r.NoPrimaryMax.Round(10*time.Millisecond),
			r.LongestOutage.Round(10*time.Millisecond), r.Acked, r.Lost, r.SplitBrain,
			fmtSeconds(r.Etcd.WALFsync.Quantile), r.Etcd.WALFsync.Over, r.Etcd.LeaderChanges)
	}
	for _, r := range rows {
		fmt.Fprintf(&sb, "- %s: scheduling %s", r.name(), r.Sched)
		if len(r.Notes) > 0 {
			fmt.Fprintf(&sb, " (%s)", strings.Join(r.Notes, "; "))
		}
		fmt.Fprintf(&sb, "\n  daemon log: %s\n  etcd: %s\n", r.DaemonLog, r.Etcd)
	}
	fmt.Fprint(os.Stderr, sb.String())
}

// loadAvg1 is the 1-minute load average (0 when unreadable).
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

// everyTickUntil calls fn every d until `until`.
func everyTickUntil(until time.Time, d time.Duration, fn func()) {
	ctx, cancel := context.WithDeadline(context.Background(), until)
	defer cancel()
	everyTick(ctx, d, fn)
}

// envFloat is the float in environment variable name, or def.
func envFloat(name string, def float64) float64 {
	if f, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && f > 0 {
		return f
	}
	return def
}
