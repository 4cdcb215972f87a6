//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
)

// Real Patroni clusters (Debian package `patroni`, 3.0.2) on loopback, against
// the same embedded etcd and with the same settings as StartCluster, so the
// benchmarks in bench_patroni_test.go can measure Patroni with pgnoded's
// measurement code. They are ordinary Clusters whose Daemon is DaemonPatroni:
// the same nodes, config template (Patroni's flavour) and helpers; Node.Start,
// KillPgnoded and NodeLoss act on the Patroni process.

const (
	patroniPython = "/usr/bin/python3" // the python3 on PATH may be a shim without Patroni's modules
	patroniScript = "/usr/bin/patroni"
)

// requirePatroni skips unless root and Patroni's script and python are installed;
// it returns Patroni's version line.
func requirePatroni(tb testing.TB) string {
	tb.Helper()
	testenv.RequireRoot(tb)
	for _, f := range []string{patroniPython, patroniScript} {
		if _, err := os.Stat(f); err != nil {
			tb.Skipf("skipping: %s not found (apt-get install -y patroni): %v", f, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, patroniPython, patroniScript, "--version").CombinedOutput()
	if err != nil {
		tb.Skipf("skipping: %s --version: %v: %s", patroniScript, err, out)
	}
	return strings.TrimSpace(string(out))
}

// StartPatroniCluster writes a Patroni YAML per node and starts all n at once
// (they race to bootstrap, as StartCluster's pgnodeds do). Everything is killed
// and removed at test end, the logs are dumped if the test failed.
func StartPatroniCluster(tb testing.TB, n int, tm Timing) *Cluster {
	tb.Helper()
	return startPatroniClusterWith(tb, n, tm, nil)
}

// startPatroniClusterWith is StartPatroniCluster with extra changing each
// node's config options (PGExtra: lines added to the postgresql section).
func startPatroniClusterWith(tb testing.TB, n int, tm Timing, extra configEdit) *Cluster {
	tb.Helper()
	version := requirePatroni(tb)
	c := newCluster(tb, newLoopback(tb), fmt.Sprintf("pt%d-%d", os.Getpid(), time.Now().UnixNano()%100000),
		DaemonPatroni, n, ClusterOptions{Timing: tm}, extra)
	c.Version = version
	c.StartAll()
	return c
}

// spec is how the daemon runs node n. Patroni runs as the postgres OS user
// (it reads its config, which is handed to that user here), in its own process
// group that a kill takes down whole (postgres runs in its own session).
func (d Daemon) spec(t testing.TB, n *Node) procSpec {
	t.Helper()
	if d != DaemonPatroni {
		return procSpec{argv: []string{pgnodedBin, "--config", n.ConfigPath}}
	}
	uid, gid := testenv.PGUserIDs(t)
	if err := os.Chown(n.ConfigPath, uid, gid); err != nil {
		t.Fatal(err)
	}
	return procSpec{
		argv:      []string{patroniPython, patroniScript, n.ConfigPath},
		dir:       n.Dir,
		env:       []string{"PATH=" + testenv.PGBinDir(t) + ":/usr/bin:/bin", "HOME=" + n.Dir, "LANG=C.UTF-8", "LC_ALL=C.UTF-8"},
		cred:      &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		killGroup: true,
	}
}

// primaryNoErr is Cluster.Primary without the test error on two 200s (used
// while a cluster may still be settling; the failover runs check it separately).
func primaryNoErr(c *Cluster) (*Node, int) {
	var found *Node
	count := 0
	for _, n := range c.Nodes {
		if n.Check("/primary") == 200 {
			found, count = n, count+1
		}
	}
	return found, count
}

// StreamingReplicas counts the replicas p's postgres sees streaming (pg_stat_replication).
func StreamingReplicas(p *Node) int {
	s, err := p.QueryString("select count(*)::text from pg_stat_replication where state = 'streaming'")
	if err != nil {
		return -1
	}
	var n int
	fmt.Sscanf(s, "%d", &n)
	return n
}

// WaitUp waits (without failing) for one primary and every other node answering
// /replica with 200 and streaming from it; it returns the primary or nil.
func (c *Cluster) WaitUp(timeout time.Duration) *Node {
	var p *Node
	ok := pollFor(timeout, func() bool {
		var n int
		p, n = primaryNoErr(c)
		if n != 1 {
			return false
		}
		for _, o := range c.Others(p) {
			if o.Check("/replica") != 200 {
				return false
			}
		}
		return StreamingReplicas(p) == len(c.Nodes)-1
	})
	if !ok {
		return nil
	}
	return p
}
