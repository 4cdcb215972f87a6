package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// Go runtime settings for a small, long-running supervisor (measured with
// BenchmarkFootprint in test/). The environment still wins: GOGC,
// GOMAXPROCS and GODEBUG=memprofilerate=N keep their usual meaning.
const (
	// gcPercent: collecting at 50% heap growth instead of 100% keeps resident
	// memory ~2.5 MiB lower at no measurable CPU cost.
	gcPercent = 50
	// maxProcs caps GOMAXPROCS. pgnoded waits on etcd, postgres and HTTP
	// clients and uses ~2% of one core under health checks and scrapes. Every
	// extra P adds its own allocation caches, GC worker and thread, and idle
	// wake-ups cost more: a goroutine made ready while another P is idle
	// wakes a second thread that spins, finds nothing and sleeps again. One P
	// against two, measured side by side on a 2-core host (docs/ha-waits.md):
	// idle 0.079 against 0.093 cpu-s/min, 0.5 MiB less resident memory, the
	// same OPTIONS /primary throughput under a flood (31–32k against 30–35k
	// req/s), a cold scrape of the built-in collectors in 17.4 against
	// 20.2 ms, and the lease keepalive's round trip under that flood no
	// longer. Goroutines still interleave: the runtime preempts one that runs
	// 10–20 ms, and sysmon hands the P of a goroutine blocked in a syscall to
	// another thread. Package init has already run with all Ps by then;
	// GOMAXPROCS in the environment avoids that too, or sets more Ps.
	maxProcs = 1
)

// tuneRuntime applies the settings above; see runtimeSettings.
func tuneRuntime() {
	gc, procs, noMemProfile := runtimeSettings(os.Getenv, runtime.GOMAXPROCS(0))
	if gc > 0 {
		debug.SetGCPercent(gc)
	}
	if procs > 0 {
		runtime.GOMAXPROCS(procs)
	}
	if noMemProfile {
		// Nothing in pgnoded reads heap profiles (there is no pprof endpoint), yet
		// the sampler keeps a 1.4 MiB bucket table whose pages and records fill in
		// as new allocation sites are sampled over days of running.
		runtime.MemProfileRate = 0
	}
}

// runtimeSettings decides, from the environment and the current GOMAXPROCS,
// which GC percent and GOMAXPROCS to set (0: leave as is) and whether to turn
// off heap profiling sampling.
func runtimeSettings(getenv func(string) string, curProcs int) (gc, procs int, noMemProfile bool) {
	if getenv("GOGC") == "" {
		gc = gcPercent
	}
	if getenv("GOMAXPROCS") == "" && curProcs > maxProcs {
		procs = maxProcs
	}
	noMemProfile = !strings.Contains(getenv("GODEBUG"), "memprofilerate=")
	return gc, procs, noMemProfile
}
