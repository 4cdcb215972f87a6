//go:build pprof

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"time"
)

// A profiling build (go build -tags pprof) writes a CPU profile and an
// allocation profile of the daemon to $PGNODED_PPROF_DIR: the CPU profile
// covers PGNODED_PPROF_SECONDS (default 120) after PGNODED_PPROF_DELAY
// seconds (default 20, the bootstrap), the allocation profile counts every
// allocation in that window. With PGNODED_PPROF_TRACE set it writes an
// execution trace instead of the CPU profile. Release builds do not link any
// of it.
func init() {
	dir := os.Getenv("PGNODED_PPROF_DIR")
	if dir == "" || len(os.Args) > 1 && os.Args[1] == fenceGuardCommand {
		return
	}
	secs, delay := envSeconds("PGNODED_PPROF_SECONDS", 120), envSeconds("PGNODED_PPROF_DELAY", 20)
	go func() { // lives for the profiling window of a diagnostic build only
		time.Sleep(delay)
		runtime.MemProfileRate = 512
		pid := os.Getpid()
		// An execution trace shows what woke each goroutine; it replaces the
		// CPU profile (both at once skew each other).
		kind, start, stop := "cpu-%d.pprof", pprof.StartCPUProfile, pprof.StopCPUProfile
		if os.Getenv("PGNODED_PPROF_TRACE") != "" {
			kind, start, stop = "trace-%d.out", trace.Start, trace.Stop
		}
		name := filepath.Join(dir, fmt.Sprintf(kind, pid))
		f, err := os.Create(name)
		if err == nil {
			if err = start(f); err == nil {
				time.Sleep(secs)
				stop()
			}
			_ = f.Close()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgnoded profiling build: %s: %v\n", name, err)
		}
		if a, err := os.Create(filepath.Join(dir, fmt.Sprintf("allocs-%d.pprof", pid))); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(a, 0)
			_ = a.Close()
		}
	}()
}

func envSeconds(name string, def int) time.Duration {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		def = n
	}
	return time.Duration(def) * time.Second
}
