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
	// clients and uses ~2% of one core under health checks; every extra P adds
	// its own allocation caches, GC worker and thread: resident memory grows by
	// ~1.5 MiB at 16 Ps and ~3 MiB at 64 Ps, the cores of a typical database
	// host. Two Ps, not one, so that a flood of health checks never queues
	// behind the HA loop (and the other way round). Package init has already
	// run with all Ps by then; GOMAXPROCS in the environment avoids that too.
	maxProcs = 2
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
