package main

import (
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pgnoded/pgnoded/tools/internal/benchraw"
)

// results is everything read from the raw output of `make bench-patroni`.
type results struct {
	*benchraw.Raw
	// failover summaries by side ("pgnoded", "patroni") and timing ("10/2/4").
	failover map[string]map[string]failoverLine
	timings  []string // failover timings in first-seen order
	version  string   // Patroni's version line
}

// spread is a min/median/max triple (seconds for failover lines).
type spread struct {
	Min, Med, Max float64
	OK            bool
}

// failoverLine is one timing of BenchmarkFailoverNodeLoss or BenchmarkPatroniFailoverNodeLoss.
type failoverLine struct {
	Runs, Failed, Limit int    // Failed/Limit: runs without a failover within Limit s (Patroni side only)
	Why                 string // why those runs had no failover
	KillToLease         spread
	LeaseToWrite        spread
	KillToWrite         spread
}

var (
	reFailover = regexp.MustCompile(`^(PATRONI )?FAILOVER ttl=(\S+) runs=(\d+)(?: failed=(\d+) limit=(\d+)s(?: \((.*)\))?)? kill->lease-end (.*) \| lease-end->write (.*) \| kill->write (.*)$`)
)

// parse reads the "### CMD:"/"### FAILED" markers of the Makefile, `go test
// -bench` result lines, and the FAILOVER / PATRONI FAILOVER / PATRONI VERSION
// lines the integration benchmarks print.
func parse(r io.Reader) (*results, error) {
	res := &results{failover: map[string]map[string]failoverLine{}}
	raw, err := benchraw.Read(r, func(line string) {
		switch {
		case strings.HasPrefix(line, "PATRONI VERSION "):
			res.version = strings.TrimPrefix(line, "PATRONI VERSION ")
		case reFailover.MatchString(line):
			res.addFailover(reFailover.FindStringSubmatch(line))
		}
	})
	if err != nil {
		return nil, err
	}
	res.Raw = raw
	return res, nil
}

// addFailover records one FAILOVER or PATRONI FAILOVER summary line.
func (res *results) addFailover(m []string) {
	side := "pgnoded"
	if m[1] != "" {
		side = "patroni"
	}
	timing := m[2]
	f := failoverLine{Why: m[6]}
	f.Runs, _ = strconv.Atoi(m[3])
	f.Failed, _ = strconv.Atoi(m[4])
	f.Limit, _ = strconv.Atoi(m[5])
	f.KillToLease = parseSpread(m[7])
	f.LeaseToWrite = parseSpread(m[8])
	f.KillToWrite = parseSpread(m[9])
	if res.failover[side] == nil {
		res.failover[side] = map[string]failoverLine{}
	}
	res.failover[side][timing] = f
	for _, t := range res.timings {
		if t == timing {
			return
		}
	}
	res.timings = append(res.timings, timing)
	slices.SortStableFunc(res.timings, func(a, b string) int { return ttlOf(a) - ttlOf(b) })
}

// parseSpread reads "min Xs med Ys max Zs" ("n/a" gives a spread that is not OK).
func parseSpread(s string) spread {
	lo, med, hi, ok := benchraw.ParseSpread(s)
	return spread{Min: lo, Med: med, Max: hi, OK: ok}
}

// ttlOf is the ttl of a "ttl/loop_wait/retry_timeout" timing (0 if unreadable).
func ttlOf(timing string) int {
	n, _ := strconv.Atoi(strings.SplitN(timing, "/", 2)[0])
	return n
}
