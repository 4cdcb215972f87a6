package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// results is everything read from the raw output of `make bench`.
type results struct {
	// metrics: benchmark name (without the -GOMAXPROCS suffix) -> unit -> one value per result line.
	metrics map[string]map[string][]float64
	order   []string // benchmark names in first-seen order
	// lines printed to stderr by the integration benchmarks, by kind.
	bootstrap []bootstrapLine
	failover  []failoverLine
	pgcrash   []pgcrashLine
	commands  []string
	failed    []string
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
	reBench     = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)
	reSpread    = regexp.MustCompile(`min (-?[\d.]+)s med (-?[\d.]+)s max (-?[\d.]+)s`)
	reBootstrap = regexp.MustCompile(`^BOOTSTRAP 3 nodes (?:ttl=(\S+) )?runs=(\d+) to healthy: (.*)$`)
	reFailover  = regexp.MustCompile(`^FAILOVER ttl=(\S+) runs=(\d+) kill->lease-end (.*) \| lease-end->write (.*) \| kill->write (.*)$`)
	rePGCrash   = regexp.MustCompile(`^PGCRASH ttl=(\S+) runs=(\d+) kill->write (.*) \| in place (\S+)$`)
)

// parse reads the raw output: "### CMD: ..." and "### FAILED ...: ..." markers
// written by the Makefile, `go test -bench` result lines, and the summary
// lines the integration benchmarks print.
func parse(r io.Reader) (*results, error) {
	res := &results{metrics: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "### CMD: "):
			res.commands = append(res.commands, strings.TrimPrefix(line, "### CMD: "))
		case strings.HasPrefix(line, "### FAILED"):
			res.failed = append(res.failed, strings.TrimPrefix(line, "### "))
		case reBench.MatchString(line):
			res.addBench(reBench.FindStringSubmatch(line))
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
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read bench output: %w", err)
	}
	return res, nil
}

// addBench records the "value unit" pairs of one result line.
func (res *results) addBench(m []string) {
	name := m[1]
	fields := strings.Fields(m[3])
	if _, seen := res.metrics[name]; !seen {
		res.metrics[name] = map[string][]float64{}
		res.order = append(res.order, name)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			continue
		}
		unit := fields[i+1]
		res.metrics[name][unit] = append(res.metrics[name][unit], v)
	}
}

// parseSpread reads "min Xs med Ys max Zs".
func parseSpread(s, runs string) (spread, bool) {
	m := reSpread.FindStringSubmatch(s)
	if m == nil {
		return spread{}, false
	}
	var out spread
	out.Min, _ = strconv.ParseFloat(m[1], 64)
	out.Med, _ = strconv.ParseFloat(m[2], 64)
	out.Max, _ = strconv.ParseFloat(m[3], 64)
	out.Runs, _ = strconv.Atoi(runs)
	return out, true
}
