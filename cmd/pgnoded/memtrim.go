package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// trimSettle is how long after postgres first runs the start-up memory is
// released: the bootstrap's last steps, the exporter's warm-up and the first
// replication set-up finish by then.
const trimSettle = 10 * time.Second

// trimAfterStartup waits until postgres runs under this node (snap), lets
// start-up settle for settleFor (trimSettle in the daemon), then returns to
// the kernel what only start-up used: the garbage of package init,
// configuration and bootstrap (debug.FreeOSMemory). The binary's own pages
// are left alone: dropping their mappings would lower the RSS figure without
// freeing memory (they stay in the page cache, charged to the same cgroup).
// It runs once, and gives up when ctx ends.
func trimAfterStartup(ctx context.Context, snap func() *cluster.Snapshot, settleFor time.Duration, log *slog.Logger) {
	if !cluster.AwaitRunning(ctx, snap, time.Second) {
		return
	}
	settle := time.NewTimer(settleFor)
	defer settle.Stop()
	select {
	case <-ctx.Done():
		return
	case <-settle.C:
	}
	before := residentKiB()
	debug.FreeOSMemory()
	log.Info("start-up memory released", "rss_kib_before", before, "rss_kib_after", residentKiB())
}

// residentKiB is this process's resident set size in KiB (0 when unknown).
func residentKiB() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize()) / 1024
}
