// Package benchraw reads the raw output of the benchmark targets (`make
// bench`, `make bench-patroni`) that tools/benchtable and tools/sidebyside
// turn into tables: the Makefile's "### CMD:" and "### FAILED" markers and
// `go test -bench` result lines. Each tool reads its own summary lines.
package benchraw

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// Raw is what every benchmark output holds.
type Raw struct {
	// Metrics: benchmark name (without the -GOMAXPROCS suffix) -> unit -> one value per result line.
	Metrics  map[string]map[string][]float64
	Order    []string // benchmark names in first-seen order
	Commands []string // the commands the Makefile ran ("### CMD: ...")
	Failed   []string // the commands that failed ("FAILED (n): ...")
}

var (
	reBench  = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)
	reSpread = regexp.MustCompile(`min (-?[\d.]+)s med (-?[\d.]+)s max (-?[\d.]+)s`)
)

// Read scans r into a Raw; every other line (trimmed) is passed to other.
func Read(r io.Reader, other func(line string)) (*Raw, error) {
	raw := &Raw{Metrics: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "### CMD: "):
			raw.Commands = append(raw.Commands, strings.TrimPrefix(line, "### CMD: "))
		case strings.HasPrefix(line, "### FAILED"):
			raw.Failed = append(raw.Failed, strings.TrimPrefix(line, "### "))
		case reBench.MatchString(line):
			raw.addBench(reBench.FindStringSubmatch(line))
		default:
			other(line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read bench output: %w", err)
	}
	return raw, nil
}

// addBench records the "value unit" pairs of one result line.
func (raw *Raw) addBench(m []string) {
	name := m[1]
	if _, seen := raw.Metrics[name]; !seen {
		raw.Metrics[name] = map[string][]float64{}
		raw.Order = append(raw.Order, name)
	}
	fields := strings.Fields(m[3])
	for i := 0; i+1 < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			continue
		}
		unit := fields[i+1]
		raw.Metrics[name][unit] = append(raw.Metrics[name][unit], v)
	}
}

// ParseSpread reads "min Xs med Ys max Zs" (seconds); ok is false when s is not one ("n/a").
func ParseSpread(s string) (lo, med, hi float64, ok bool) {
	m := reSpread.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, 0, false
	}
	lo, _ = strconv.ParseFloat(m[1], 64)
	med, _ = strconv.ParseFloat(m[2], 64)
	hi, _ = strconv.ParseFloat(m[3], 64)
	return lo, med, hi, true
}

// Main is a table command's main: it reads the file named by the first
// argument (stdin without one), hands it to table with stdout, and exits 2
// with "name: error" when either fails.
func Main(name string, table func(in io.Reader, out io.Writer) error) {
	var in io.Reader = os.Stdin
	if len(os.Args) > 1 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, name+":", err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	}
	if err := table(in, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(2)
	}
}

// Machine describes where the benchmarks ran: CPUs, CPU model, RAM, kernel and Go.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kib)/(1<<20))
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("nproc %d, model name %q%s%s, %s", runtime.NumCPU(), model, mem, kernel, runtime.Version())
}

// LoadAverage is "; load average at the end A B C" from /proc/loadavg, or "".
func LoadAverage() string {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			return fmt.Sprintf("; load average at the end %s %s %s", f[0], f[1], f[2])
		}
	}
	return ""
}
