package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// results is everything read from the raw output of `make bench-patroni`.
type results struct {
	// metrics: benchmark name (without the -GOMAXPROCS suffix) -> unit -> one value per result line.
	metrics map[string]map[string][]float64
	// failover summaries by side ("pgnoded", "patroni") and timing ("10/2/4").
	failover map[string]map[string]failoverLine
	timings  []string // failover timings in first-seen order
	version  string   // Patroni's version line
	commands []string
	failed   []string
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
	reBench    = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)
	reSpread   = regexp.MustCompile(`min (-?[\d.]+)s med (-?[\d.]+)s max (-?[\d.]+)s`)
	reFailover = regexp.MustCompile(`^(PATRONI )?FAILOVER ttl=(\S+) runs=(\d+)(?: failed=(\d+) limit=(\d+)s(?: \((.*)\))?)? kill->lease-end (.*) \| lease-end->write (.*) \| kill->write (.*)$`)
)

// parse reads the "### CMD:"/"### FAILED" markers of the Makefile, `go test
// -bench` result lines, and the FAILOVER / PATRONI FAILOVER / PATRONI VERSION
// lines the integration benchmarks print.
func parse(r io.Reader) (*results, error) {
	res := &results{metrics: map[string]map[string][]float64{}, failover: map[string]map[string]failoverLine{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "### CMD: "):
			res.commands = append(res.commands, strings.TrimPrefix(line, "### CMD: "))
		case strings.HasPrefix(line, "### FAILED"):
			res.failed = append(res.failed, strings.TrimPrefix(line, "### "))
		case strings.HasPrefix(line, "PATRONI VERSION "):
			res.version = strings.TrimPrefix(line, "PATRONI VERSION ")
		case reBench.MatchString(line):
			res.addBench(reBench.FindStringSubmatch(line))
		case reFailover.MatchString(line):
			res.addFailover(reFailover.FindStringSubmatch(line))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read bench output: %w", err)
	}
	return res, nil
}

// addBench records the "value unit" pairs of one result line.
func (res *results) addBench(m []string) {
	name := m[1]
	if res.metrics[name] == nil {
		res.metrics[name] = map[string][]float64{}
	}
	fields := strings.Fields(m[3])
	for i := 0; i+1 < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			continue
		}
		res.metrics[name][fields[i+1]] = append(res.metrics[name][fields[i+1]], v)
	}
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
	m := reSpread.FindStringSubmatch(s)
	if m == nil {
		return spread{}
	}
	out := spread{OK: true}
	out.Min, _ = strconv.ParseFloat(m[1], 64)
	out.Med, _ = strconv.ParseFloat(m[2], 64)
	out.Max, _ = strconv.ParseFloat(m[3], 64)
	return out
}

// ttlOf is the ttl of a "ttl/loop_wait/retry_timeout" timing (0 if unreadable).
func ttlOf(timing string) int {
	n, _ := strconv.Atoi(strings.SplitN(timing, "/", 2)[0])
	return n
}
