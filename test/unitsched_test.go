//go:build integration

package test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The soak runs each pgnoded under the scheduling settings of the unit file
// that ships (deploy/systemd/pgnoded.service): Nice=, CPUSchedulingPolicy=,
// CPUSchedulingPriority=, IOSchedulingClass=, IOSchedulingPriority=,
// LimitNOFILE=, LimitCORE=, OOMScoreAdjust=. systemd applies them with
// setpriority, sched_setscheduler, ioprio_set, setrlimit and
// /proc/self/oom_score_adj before it execs ExecStart; unitExecPrefix does the
// same with util-linux's and coreutils' wrappers (choom, prlimit, ionice,
// chrt, nice), each exec'ing the next, so the pid is pgnoded's and every
// thread Go starts later inherits the settings, as under the unit. The
// wrappers are used whether or not systemd is PID 1 (a test machine or
// container often has none), so the soak measures the same thing everywhere.

// unitSched is the scheduling part of a unit's [Service] section.
type unitSched struct {
	Nice                   int
	CPUPolicy              string // other, batch, idle, fifo, rr
	CPUPriority            int
	IOClass                string // realtime, best-effort, idle
	IOPriority             int
	NoFile                 string // LimitNOFILE=
	Core                   string // LimitCORE=
	OOMScoreAdjust         int
	hasOOM, hasIO, hasNice bool
}

// readUnitSched reads the scheduling settings of the unit file at path.
func readUnitSched(t testing.TB, path string) unitSched {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("unit file: %v", err)
	}
	defer f.Close()
	u := unitSched{CPUPolicy: "other", IOClass: "best-effort", IOPriority: 4}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		num := func() int {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s:%d: %s=%q: %v", path, line, k, v, err)
			}
			return n
		}
		switch k {
		case "Nice":
			u.Nice, u.hasNice = num(), true
		case "CPUSchedulingPolicy":
			u.CPUPolicy = v
		case "CPUSchedulingPriority":
			u.CPUPriority = num()
		case "IOSchedulingClass":
			u.IOClass, u.hasIO = v, true
		case "IOSchedulingPriority":
			u.IOPriority, u.hasIO = num(), true
		case "LimitNOFILE":
			u.NoFile = v
		case "LimitCORE":
			u.Core = v
		case "OOMScoreAdjust":
			u.OOMScoreAdjust, u.hasOOM = num(), true
		}
	}
	return u
}

// String is the settings as the unit spells them.
func (u unitSched) String() string {
	return fmt.Sprintf("Nice=%d CPUSchedulingPolicy=%s CPUSchedulingPriority=%d IOSchedulingClass=%s IOSchedulingPriority=%d LimitNOFILE=%s LimitCORE=%s OOMScoreAdjust=%d",
		u.Nice, u.CPUPolicy, u.CPUPriority, u.IOClass, u.IOPriority, u.NoFile, u.Core, u.OOMScoreAdjust)
}

// execPrefix is the wrapper chain that applies u before argv is exec'd, and
// the notes on what this machine does not allow (a container without
// CAP_SYS_RESOURCE can neither lower oom_score_adj nor raise a hard limit):
// those settings are applied as far as allowed, and the notes say so.
func (u unitSched) execPrefix() (prefix []string, notes []string) {
	if u.hasOOM {
		if canSetOOM(u.OOMScoreAdjust) {
			prefix = append(prefix, "choom", "-n", strconv.Itoa(u.OOMScoreAdjust), "--")
		} else {
			notes = append(notes, fmt.Sprintf("OOMScoreAdjust=%d not applied (not permitted here)", u.OOMScoreAdjust))
		}
	}
	var lim []string
	if u.NoFile != "" {
		n, hard := u.NoFile, hardLimit(syscall.RLIMIT_NOFILE)
		if v, err := strconv.ParseUint(n, 10, 64); err == nil && hard != rlimInfinity && v > hard {
			notes = append(notes, fmt.Sprintf("LimitNOFILE=%s capped at the hard limit %d", n, hard))
			n = strconv.FormatUint(hard, 10)
		}
		lim = append(lim, "--nofile="+n+":"+n)
	}
	if u.Core != "" {
		c := u.Core
		if c == "infinity" {
			c = "unlimited"
		}
		if hardLimit(syscall.RLIMIT_CORE) == rlimInfinity {
			lim = append(lim, "--core="+c+":"+c)
		} else {
			notes = append(notes, "LimitCORE="+u.Core+" not applied (hard limit lower)")
		}
	}
	if len(lim) > 0 {
		prefix = append(append(prefix, "prlimit"), lim...)
	}
	if u.hasIO {
		class := map[string]string{"realtime": "1", "best-effort": "2", "idle": "3"}[u.IOClass]
		prefix = append(prefix, "ionice", "-c", class, "-n", strconv.Itoa(u.IOPriority))
	}
	prefix = append(prefix, "chrt", "--"+u.CPUPolicy, strconv.Itoa(u.CPUPriority))
	if u.hasNice {
		prefix = append(prefix, "nice", "-n", strconv.Itoa(u.Nice))
	}
	return prefix, notes
}

// canSetOOM reports whether this process may set oom_score_adj to v (lowering it needs CAP_SYS_RESOURCE).
func canSetOOM(v int) bool {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return false
	}
	cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return false
	}
	if v >= cur {
		return true
	}
	f, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(f), "\n") {
		if hex, ok := strings.CutPrefix(l, "CapEff:\t"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && caps&(1<<24) != 0 // CAP_SYS_RESOURCE
		}
	}
	return false
}

func hardLimit(res int) uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(res, &r); err != nil {
		return 0
	}
	return r.Max
}

// systemdIsPID1 reports whether systemd runs as PID 1 here (else systemd-run cannot start a scope).
func systemdIsPID1() bool {
	b, err := os.ReadFile("/proc/1/comm")
	return err == nil && strings.TrimSpace(string(b)) == "systemd"
}

// rlimInfinity is RLIM_INFINITY as getrlimit(2) reports it.
const rlimInfinity = ^uint64(0)

// TestUnitSchedulingSettings: the unit's scheduling settings are those the
// soak measures (a negative nice, the normal CPU policy, best-effort I/O),
// the Patroni drop-in carries the same ones, and execPrefix turns them into
// the wrapper chain.
func TestUnitSchedulingSettings(t *testing.T) {
	unit := readUnitSched(t, "../deploy/systemd/pgnoded.service")
	if !unit.hasNice || unit.Nice >= 0 {
		t.Errorf("unit: Nice=%d, want a negative value (the keepalive must not queue behind nice-0 load)", unit.Nice)
	}
	if unit.CPUPolicy != "other" {
		t.Errorf("unit: CPUSchedulingPolicy=%s, want other (a real-time policy is inherited by postgres)", unit.CPUPolicy)
	}
	if unit.IOClass != "best-effort" {
		t.Errorf("unit: IOSchedulingClass=%s, want best-effort", unit.IOClass)
	}
	dropIn := readUnitSched(t, "../deploy/systemd/patroni.service.d/pgnoded.conf")
	if dropIn.Nice != unit.Nice || dropIn.CPUPolicy != unit.CPUPolicy || dropIn.CPUPriority != unit.CPUPriority ||
		dropIn.IOClass != unit.IOClass || dropIn.IOPriority != unit.IOPriority {
		t.Errorf("patroni drop-in scheduling %s differs from the unit's %s", dropIn, unit)
	}
	prefix, _ := unit.execPrefix()
	got := strings.Join(prefix, " ")
	for _, want := range []string{"chrt --other 0", fmt.Sprintf("nice -n %d", unit.Nice), "ionice -c 2 -n 4"} {
		if !strings.Contains(got, want) {
			t.Errorf("exec prefix %q lacks %q", got, want)
		}
	}
}
