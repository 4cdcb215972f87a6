package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
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
// configuration and bootstrap (debug.FreeOSMemory) and this process's
// mappings of binary pages (releaseBinaryPages). Resident memory then counts
// the pages the running daemon uses rather than every page start-up touched.
// It runs once, and gives up when ctx ends.
func trimAfterStartup(ctx context.Context, snap func() *cluster.Snapshot, settleFor time.Duration, log *slog.Logger) {
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for s := snap(); s == nil || s.PG.State != cluster.StateRunning; s = snap() {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
	poll.Stop()
	settle := time.NewTimer(settleFor)
	defer settle.Stop()
	select {
	case <-ctx.Done():
		return
	case <-settle.C:
	}
	before := residentKiB()
	debug.FreeOSMemory()
	released, err := releaseBinaryPages()
	if err != nil {
		log.Warn("releasing start-up pages failed", "error", err)
	}
	log.Info("start-up memory released", "rss_kib_before", before, "rss_kib_after", residentKiB(),
		"binary_mapping_bytes", released)
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

// releaseBinaryPages drops this process's mappings of the executable's
// read-only pages (machine code, constant data, function tables) with
// madvise(MADV_DONTNEED). They stay in the page cache, shared with every
// other process running the binary; those this process uses again are mapped
// back on first touch (a minor fault, no disk read). Writable mappings are
// never touched: there MADV_DONTNEED would discard data. It returns the bytes
// of address space released.
func releaseBinaryPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("executable: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("mappings: %w", err)
	}
	var released int64
	s := bufio.NewScanner(bytes.NewReader(maps))
	for s.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(s.Text())
		if len(f) < 6 || f[5] != exe || len(f[1]) != 4 || f[1][1] != '-' || f[1][3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("madvise %s: %w", f[0], errno)
		}
		released += int64(end - start)
	}
	return released, s.Err()
}
