//go:build integration

package test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/testenv"
	"github.com/pgnoded/pgnoded/internal/testenv/nodeconf"
)

// BenchmarkReplicaBuildPgbackrestVsBasebackup measures the time to build a
// replica of the same primary by `pgbackrest restore` (from a full backup in a
// posix repository, then streaming the WAL written since) and by
// pg_basebackup, one after the other, for pgbench data of scale
// PGNODED_BENCH_SCALE (default 14, about 200 MB). Reported: the method's own
// duration (pgnoded's "replica has been created" line) and the time from the
// daemon's start to a streaming replica. Run alone:
//
//	make build && PGNODED_BIN=$PWD/bin/pgnoded go test -tags integration -count=1 -run '^$' \
//	  -bench '^BenchmarkReplicaBuildPgbackrestVsBasebackup$' -benchtime=1x -v ./test/
func BenchmarkReplicaBuildPgbackrestVsBasebackup(b *testing.B) {
	testenv.RequireRoot(b)
	scale := 14
	if s, err := strconv.Atoi(os.Getenv("PGNODED_BENCH_SCALE")); err == nil && s > 0 {
		scale = s
	}
	br := newBackrest(b)
	scope := fmt.Sprintf("it%d-brb%d", os.Getpid(), time.Now().UnixNano()%100000)
	c := newCluster(b, newLoopback(b), scope, DaemonPgnoded, 3, ClusterOptions{Timing: Fast}, func(o *nodeconf.Options) {
		o.PGParams = br.archiving()
		switch o.Name {
		case "n2":
			o.PGExtra = br.replicaMethod(o, br.Stanza, "pgbackrest, basebackup")
		case "n3":
			o.PGExtra = "  create_replica_methods: [basebackup]"
		}
	})
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	br.writeConf(n1)
	n1.Start()
	if p := c.WaitPrimary(60*time.Second, nil); p != n1 {
		b.Fatalf("primary is %v, want n1", p)
	}
	br.run("stanza-create")
	pgbench := exec.Command(filepath.Join(testenv.PGBinDir(b), "pgbench"), "-i", "-q", "-s", strconv.Itoa(scale),
		"-h", n1.Host, "-p", strconv.Itoa(n1.PGPort), "-U", "postgres", "postgres")
	pgbench.Env = append(os.Environ(), "PGPASSWORD="+superPassword)
	if out, err := pgbench.CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	size, _ := n1.QueryString("SELECT pg_size_pretty(pg_database_size('postgres'))")
	start := time.Now()
	br.run("--type=full", "backup")
	backupTook := time.Since(start)
	// Some WAL written after the backup, as on a live primary.
	execSQL(b, n1, "UPDATE pgbench_branches SET bbalance = bbalance + 1")

	measure := func(n *Node, method string) (methodTook, total time.Duration) {
		b.Helper()
		start := time.Now()
		n.Start()
		WaitFor(b, 10*time.Minute, n.Name+" streaming", func() bool {
			return optionsStatus(c.http, n.url("/replica?replication_state=streaming")) == http.StatusOK
		})
		total = time.Since(start)
		line := n.LogLine("replica has been created")
		if !strings.Contains(line, "method="+method) {
			b.Fatalf("%s was not built by %s: %q", n.Name, method, line)
		}
		if m := regexp.MustCompile(`duration=(\S+)`).FindStringSubmatch(line); m != nil {
			methodTook, _ = time.ParseDuration(m[1])
		}
		return methodTook, total
	}
	brMethod, brTotal := measure(n2, "pgbackrest")
	bbMethod, bbTotal := measure(n3, "basebackup")
	b.ReportMetric(brMethod.Seconds(), "pgbackrest-restore-s")
	b.ReportMetric(brTotal.Seconds(), "pgbackrest-to-streaming-s")
	b.ReportMetric(bbMethod.Seconds(), "basebackup-s")
	b.ReportMetric(bbTotal.Seconds(), "basebackup-to-streaming-s")
	b.Logf("replica build, pgbench scale %d (database %s; full backup took %s): pgbackrest restore %s (streaming after %s), pg_basebackup %s (streaming after %s)",
		scale, size, backupTook.Round(10*time.Millisecond), brMethod.Round(10*time.Millisecond), brTotal.Round(10*time.Millisecond),
		bbMethod.Round(10*time.Millisecond), bbTotal.Round(10*time.Millisecond))
}
