//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// BenchmarkManyClusters (`make bench-many`): Pigsty runs every cluster
// against one etcd. PGNODED_MANY_CLUSTERS clusters (default 10) of 3 pgnoded
// nodes each share one 3-member etcd (real etcd processes on loopback). It
// reports, per etcd member and minute, from etcd's own /metrics: unary gRPC
// requests, stream messages received (lease keepalives, watch requests),
// raft proposals committed, client bytes received and sent, peer bytes sent --
// with the first cluster alone, with all clusters idle, and during a failover
// of the first cluster; and that cluster's failover time (SIGKILL of the
// primary's pgnoded and postgres -> first acknowledged write), median of
// PGNODED_MANY_RUNS (default 5) alone and again with every cluster running.
// Timing: Fast (10/2/4); PGNODED_MANY_IDLE_SECONDS (default 60) is the idle window.
//
//	PGNODED_MANY_CLUSTERS=3 PGNODED_MANY_RUNS=2 PGNODED_MANY_IDLE_SECONDS=20 make bench-many   # a quick run
func BenchmarkManyClusters(b *testing.B) {
	testenv.RequireRoot(b)
	nClusters := envInt("PGNODED_MANY_CLUSTERS", 10)
	runs := envInt("PGNODED_MANY_RUNS", 5)
	idle := time.Duration(envInt("PGNODED_MANY_IDLE_SECONDS", 60)) * time.Second
	tm := Fast
	etcd := startEtcdTrio(b)
	var rows []manyRow
	row := func(label string, clusters int, from, to []promSample, failover []float64) {
		r := manyRow{Label: label, Clusters: clusters, Failover: failover}
		for i := range min(len(from), len(to)) {
			r.Members = append(r.Members, etcdRates(from[i], to[i]))
		}
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "MANY %s: %s\n", label, r.Members)
	}

	first := startSharedCluster(b, etcd, 0, tm)
	p := first.WaitUp(bootTimeout)
	if p == nil {
		first.DumpLogs(4000)
		b.Fatalf("cluster 1 not up within %v", bootTimeout)
	}
	a := etcd.scrape(b)
	time.Sleep(idle)
	row("idle, 1 cluster", 1, a, etcd.scrape(b), nil)
	alone, fromA, toA := manyFailovers(b, etcd, first, runs, "alone")
	row("failover, 1 cluster", 1, fromA, toA, alone)

	for i := 1; i < nClusters; i++ {
		c := startSharedCluster(b, etcd, i, tm)
		if c.WaitUp(bootTimeout) == nil {
			c.DumpLogs(4000)
			b.Fatalf("cluster %d not up within %v", i+1, bootTimeout)
		}
		fmt.Fprintf(os.Stderr, "MANY cluster %d/%d up (load %.1f)\n", i+1, nClusters, loadAvg1())
	}
	a = etcd.scrape(b)
	load := loadAvg1()
	writes := countWrites(etcd, idle)
	row(fmt.Sprintf("idle, %d clusters", nClusters), nClusters, a, etcd.scrape(b), nil)
	fmt.Fprintf(os.Stderr, "MANY idle writes by key over %v (all clusters): %s\n", idle, writes)
	many, fromM, toM := manyFailovers(b, etcd, first, runs, "with all")
	row(fmt.Sprintf("failover, %d clusters", nClusters), nClusters, fromM, toM, many)

	if len(alone) > 0 {
		b.ReportMetric(median(alone), "s_failover_alone")
	}
	if len(many) > 0 {
		b.ReportMetric(median(many), "s_failover_with_all")
	}
	printManyTable(rows, nClusters, runs, tm, idle, load)
}

// countWrites watches every key for d and returns the puts and deletes by
// the key's last path element (member keys as "members/*"): what the idle
// raft proposals are.
func countWrites(etcd *etcdTrio, d time.Duration) string {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	counts := map[string]int{}
	for resp := range etcd.client.Watch(ctx, "/", clientv3.WithPrefix()) {
		for _, ev := range resp.Events {
			k := string(ev.Kv.Key)
			if i := strings.Index(k, "/members/"); i >= 0 {
				k = "members/*"
			} else if i := strings.LastIndexByte(k, '/'); i >= 0 {
				k = k[i+1:]
			}
			counts[ev.Type.String()+" "+k]++
		}
	}
	var parts []string
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%s x%d", k, n))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// etcdTrio is a 3-member etcd of real etcd processes on loopback ports.
type etcdTrio struct {
	members []etcdProc
	client  *clientv3.Client
}

type etcdProc struct {
	Name, ClientURL string
	Proc            *Proc
}

// startEtcdTrio starts three etcd members (heartbeat 100 ms, election 1 s as
// Pigsty configures them) and waits until the cluster serves; they are killed
// when the (sub-)benchmark that started them ends.
func startEtcdTrio(b *testing.B) *etcdTrio {
	b.Helper()
	bin := etcdBinary(b)
	dir := b.TempDir()
	type ports struct{ client, peer string }
	var ps []ports
	var initial []string
	for i := range 3 {
		p := ports{fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(b)), fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(b))}
		ps = append(ps, p)
		initial = append(initial, fmt.Sprintf("m%d=%s", i+1, p.peer))
	}
	tr := &etcdTrio{}
	var eps []string
	for i, p := range ps {
		name := fmt.Sprintf("m%d", i+1)
		data := filepath.Join(dir, name)
		proc := startHostProc(b, "etcd "+name, filepath.Join(dir, name+".log"), 3000, bin,
			"--name", name, "--data-dir", data,
			"--listen-client-urls", p.client, "--advertise-client-urls", p.client,
			"--listen-peer-urls", p.peer, "--initial-advertise-peer-urls", p.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", fmt.Sprintf("many%d", os.Getpid()),
			"--heartbeat-interval", "100", "--election-timeout", "1000", "--log-level", "warn")
		tr.members = append(tr.members, etcdProc{Name: name, ClientURL: p.client, Proc: proc})
		eps = append(eps, p.client)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatalf("etcd client: %v", err)
	}
	b.Cleanup(func() { cli.Close() })
	tr.client = cli
	WaitFor(b, 60*time.Second, "the 3-member etcd to serve", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Put(ctx, "/many-health", "ok")
		return err == nil
	})
	return tr
}

// hosts is the nodes' etcd3.hosts value.
func (tr *etcdTrio) hosts() string {
	var hs []string
	for _, m := range tr.members {
		hs = append(hs, strings.TrimPrefix(m.ClientURL, "http://"))
	}
	return strings.Join(hs, ",")
}

// scrape reads every member's /metrics, in member order.
func (tr *etcdTrio) scrape(b *testing.B) []promSample {
	b.Helper()
	out, err := scrapeEtcds(tr.metricsURLs())
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// metricsURLs are the members' /metrics addresses, in member order.
func (tr *etcdTrio) metricsURLs() []string {
	urls := make([]string, len(tr.members))
	for i, m := range tr.members {
		urls[i] = m.ClientURL + "/metrics"
	}
	return urls
}

// sharedEtcdNet places nodes on loopback ports like loopbackNet, against a shared etcdTrio.
type sharedEtcdNet struct {
	loopbackHosts
	etcd *etcdTrio
}

func (s *sharedEtcdNet) attach(*Cluster) {}

func (s *sharedEtcdNet) EtcdHosts() string { return s.etcd.hosts() }

func (s *sharedEtcdNet) EtcdClient() *clientv3.Client { return s.etcd.client }

// startSharedCluster starts cluster i (3 pgnoded nodes) against the shared etcd.
func startSharedCluster(b *testing.B, etcd *etcdTrio, i int, tm Timing) *Cluster {
	b.Helper()
	scope := fmt.Sprintf("many%d-%d-c%d", os.Getpid(), time.Now().UnixNano()%100000, i+1)
	c := newCluster(b, &sharedEtcdNet{loopbackHosts: loopbackHosts{t: b}, etcd: etcd}, scope, DaemonPgnoded, 3, ClusterOptions{Timing: tm}, nil)
	c.StartAll()
	return c
}

// manyFailovers fails cluster c over `runs` times (node loss of its primary
// under the ack writer; the lost node is started again and rejoins before the
// next run) and returns the kill -> first acknowledged write times in seconds
// and etcd's metrics around the first failover.
func manyFailovers(b *testing.B, etcd *etcdTrio, c *Cluster, runs int, label string) (times []float64, from, to []promSample) {
	b.Helper()
	for run := range runs {
		p := c.WaitUp(3 * time.Minute)
		if p == nil {
			c.DumpLogs(3000)
			b.Errorf("%s run %d: cluster not healthy again within 3 min", label, run+1)
			return times, from, to
		}
		table := fmt.Sprintf("many_writes_%s_%d", strings.ReplaceAll(label, " ", "_"), run)
		w := startNodeWriter(b, p, table, 5*time.Millisecond, 20*time.Millisecond, c.Primary)
		if !pollFor(10*time.Second, func() bool { return w.Acked() > 20 }) {
			w.Stop()
			b.Errorf("%s run %d: no writes before the kill", label, run+1)
			return times, from, to
		}
		before := etcd.scrape(b)
		p.NodeLoss()
		killedAt := time.Now()
		var resumed time.Time
		ok := pollEvery(time.Duration(c.Opts.Timing.TTL)*time.Second+60*time.Second, 20*time.Millisecond, func() bool {
			resumed = w.LastAck()
			return resumed.After(killedAt)
		})
		after := etcd.scrape(b)
		w.Stop()
		if !ok {
			c.DumpLogs(3000)
			b.Errorf("%s run %d: no write within ttl+60 s of the kill", label, run+1)
			return times, from, to
		}
		if from == nil {
			from, to = before, after
		}
		times = append(times, resumed.Sub(killedAt).Seconds())
		fmt.Fprintf(os.Stderr, "MANY failover %s run %d: %s killed, kill->write %.2fs (load %.1f)\n",
			label, run+1, p.Name, times[len(times)-1], loadAvg1())
		p.Start()
	}
	return times, from, to
}

// memberRates are one etcd member's figures per minute between two scrapes.
type memberRates struct {
	Leader                                                        bool // etcd_server_is_leader at the end
	Unary, StreamMsgs, Proposals, RecvBytes, SentBytes, PeerBytes float64
}

func (m memberRates) String() string {
	return fmt.Sprintf("unary %.0f, stream msgs %.0f, proposals %.0f, recv %s, sent %s, peer %s",
		m.Unary, m.StreamMsgs, m.Proposals, kib(m.RecvBytes), kib(m.SentBytes), kib(m.PeerBytes))
}

func kib(bytes float64) string { return fmt.Sprintf("%.1f KiB", bytes/1024) }

// etcdRates is a member's per-minute rates between scrapes a and b.
func etcdRates(a, b promSample) memberRates {
	per := b.At.Sub(a.At).Minutes()
	d := func(name string, labels ...string) float64 {
		return (b.Sum(name, labels...) - a.Sum(name, labels...)) / per
	}
	return memberRates{
		Leader:     b.Sum("etcd_server_is_leader") == 1,
		Unary:      d("grpc_server_handled_total", `grpc_type="unary"`),
		StreamMsgs: d("grpc_server_msg_received_total", `grpc_type="bidi_stream"`),
		Proposals:  d("etcd_server_proposals_committed_total"),
		RecvBytes:  d("etcd_network_client_grpc_received_bytes_total"),
		SentBytes:  d("etcd_network_client_grpc_sent_bytes_total"),
		PeerBytes:  d("etcd_network_peer_sent_bytes_total"),
	}
}

// manyRow is one line group of the many-clusters table.
type manyRow struct {
	Label    string
	Clusters int
	Members  []memberRates
	Failover []float64
}

func printManyTable(rows []manyRow, nClusters, runs int, tm Timing, idle time.Duration, load float64) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nMANY CLUSTERS TABLE: %d clusters x 3 pgnoded on one 3-member etcd, ttl %d/%d/%d, idle window %v, %d failover runs; load %.1f with all clusters up\n",
		nClusters, tm.TTL, tm.LoopWait, tm.RetryTimeout, idle, runs, load)
	sb.WriteString("per etcd member, per minute (failover rows: the window from the kill to the first acknowledged write of the first run)\n")
	sb.WriteString("| phase | member | unary requests | stream msgs received | raft proposals | client bytes in | client bytes out | peer bytes out |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		for i, m := range r.Members {
			name := fmt.Sprintf("m%d", i+1)
			if m.Leader {
				name += " (raft leader)"
			}
			fmt.Fprintf(&sb, "| %s | %s | %.0f | %.0f | %.0f | %s | %s | %s |\n", r.Label, name, m.Unary, m.StreamMsgs, m.Proposals,
				kib(m.RecvBytes), kib(m.SentBytes), kib(m.PeerBytes))
		}
	}
	sb.WriteString("\n| cluster 1 failover (kill -> first acknowledged write) | runs | min / median / max |\n|---|---|---|\n")
	for _, r := range rows {
		if strings.HasPrefix(r.Label, "failover") {
			fmt.Fprintf(&sb, "| %s | %d | %s |\n", r.Label, len(r.Failover), minMedMax(r.Failover))
		}
	}
	var alone, many []float64
	for _, r := range rows {
		if strings.HasPrefix(r.Label, "failover") && r.Clusters == 1 {
			alone = r.Failover
		} else if strings.HasPrefix(r.Label, "failover") {
			many = r.Failover
		}
	}
	if len(alone) > 0 && len(many) > 0 {
		d := median(many) - median(alone)
		verdict := "the same (within 10 % or 100 ms)"
		if d > 0.1 && d > 0.1*median(alone) {
			verdict = "slower with the other clusters"
		}
		fmt.Fprintf(&sb, "median with all %.2fs vs alone %.2fs: %+.2fs, %s\n", median(many), median(alone), d, verdict)
	}
	fmt.Fprint(os.Stderr, sb.String())
}
