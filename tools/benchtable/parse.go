package main

import (
	"io"
	"regexp"
	"strconv"

	"github.com/pgnoded/pgnoded/tools/internal/benchraw"
)

// results is everything read from the raw output of `make bench`.
type results struct {
	*benchraw.Raw
	// lines printed to stderr by the integration benchmarks, by kind.
	bootstrap []bootstrapLine
	failover  []failoverLine
	pgcrash   []pgcrashLine
}

// bootstrapLine is one BOOTSTRAP summary: its timing set (ttl/loop_wait/retry_timeout) and times.
type bootstrapLine struct {
	Timing string // "" for the older lines without one (ttl 10/2/4)
	Time   spread
}

// spread is a min/median/max triple in seconds, with the run count.
type spread struct {
	Min, Med, Max float64
	Runs          int
}

// failoverLine is one BenchmarkFailoverNodeLoss timing.
type failoverLine struct {
	Timing                string // "ttl/loop_wait/retry_timeout"
	KillToLease, LeaseToW spread
	KillToWrite           spread
}

// pgcrashLine is the BenchmarkFailoverPostgresCrash summary.
type pgcrashLine struct {
	Timing      string
	KillToWrite spread
	InPlace     string
}

var (
	reBootstrap = regexp.MustCompile(`^BOOTSTRAP 3 nodes (?:ttl=(\S+) )?runs=(\d+) to healthy: (.*)$`)
	reFailover  = regexp.MustCompile(`^FAILOVER ttl=(\S+) runs=(\d+) kill->lease-end (.*) \| lease-end->write (.*) \| kill->write (.*)$`)
	rePGCrash   = regexp.MustCompile(`^PGCRASH ttl=(\S+) runs=(\d+) kill->write (.*) \| in place (\S+)$`)
)

// parse reads the raw output: the Makefile's markers, `go test -bench`
// result lines (benchraw), and the summary lines the integration benchmarks print.
func parse(r io.Reader) (*results, error) {
	res := &results{}
	raw, err := benchraw.Read(r, func(line string) {
		switch {
		case reBootstrap.MatchString(line):
			m := reBootstrap.FindStringSubmatch(line)
			if s, ok := parseSpread(m[3], m[2]); ok {
				res.bootstrap = append(res.bootstrap, bootstrapLine{Timing: m[1], Time: s})
			}
		case reFailover.MatchString(line):
			m := reFailover.FindStringSubmatch(line)
			f := failoverLine{Timing: m[1]}
			f.KillToLease, _ = parseSpread(m[3], m[2])
			f.LeaseToW, _ = parseSpread(m[4], m[2])
			f.KillToWrite, _ = parseSpread(m[5], m[2])
			res.failover = append(res.failover, f)
		case rePGCrash.MatchString(line):
			m := rePGCrash.FindStringSubmatch(line)
			s, _ := parseSpread(m[3], m[2])
			res.pgcrash = append(res.pgcrash, pgcrashLine{Timing: m[1], KillToWrite: s, InPlace: m[4]})
		}
	})
	if err != nil {
		return nil, err
	}
	res.Raw = raw
	return res, nil
}

// parseSpread reads "min Xs med Ys max Zs" of a line with runs runs.
func parseSpread(s, runs string) (spread, bool) {
	lo, med, hi, ok := benchraw.ParseSpread(s)
	if !ok {
		return spread{}, false
	}
	n, _ := strconv.Atoi(runs)
	return spread{Min: lo, Med: med, Max: hi, Runs: n}, true
}
