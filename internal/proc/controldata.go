package proc

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// parseControlData reads `pg_controldata` output (run with LC_ALL=C) into the
// fields pgnoded needs, plus every "label: value" pair for the rest.
func parseControlData(out string) (cluster.ControlData, map[string]string, error) {
	raw := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		raw[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	var cd cluster.ControlData
	cd.SystemID = raw["Database system identifier"]
	if cd.SystemID == "" {
		return cd, raw, fmt.Errorf("pg_controldata output has no system identifier")
	}
	cd.ClusterState = raw["Database cluster state"]
	cd.TimelineID, _ = strconv.Atoi(raw["Latest checkpoint's TimeLineID"])
	cd.MinRecoveryEndTimeline, _ = strconv.Atoi(raw["Min recovery ending loc's timeline"])
	cd.RedoWALFile = raw["Latest checkpoint's REDO WAL file"]
	var err error
	for _, f := range []struct {
		label string
		dst   *cluster.LSN
	}{
		{"Latest checkpoint location", &cd.CheckpointLSN},
		{"Latest checkpoint's REDO location", &cd.CheckpointRedoLSN},
		{"Minimum recovery ending location", &cd.MinRecoveryEndLSN},
	} {
		if *f.dst, err = ParseLSN(raw[f.label]); err != nil {
			return cd, raw, fmt.Errorf("pg_controldata %q: %w", f.label, err)
		}
	}
	cd.WALLogHints = raw["wal_log_hints setting"] == "on"
	cd.DataChecksumsEnabled = raw["Data page checksum version"] != "" && raw["Data page checksum version"] != "0"
	return cd, raw, nil
}

// ParseLSN parses a WAL position written as "16/B374D848".
func ParseLSN(s string) (cluster.LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad LSN %q", s)
	}
	return cluster.LSN(h<<32 | l), nil
}

// FormatLSN writes a WAL position as postgres does ("16/B374D848").
func FormatLSN(l cluster.LSN) string {
	return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xffffffff)
}

// pidFile is the content of postmaster.pid.
type pidFile struct {
	PID       int
	DataDir   string
	StartTime time.Time
	Port      int
	SocketDir string
	Status    string // "starting", "stopping", "ready", "standby" (PG >= 10)
}

// parsePidFile reads postmaster.pid: pid, data dir, start time (epoch), port,
// socket dir, listen address, shmem key, status.
func parsePidFile(s string) (pidFile, error) {
	lines := strings.Split(s, "\n")
	var pf pidFile
	if len(lines) < 1 {
		return pf, fmt.Errorf("empty postmaster.pid")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return pf, fmt.Errorf("postmaster.pid: bad pid %q", lines[0])
	}
	pf.PID = pid
	get := func(i int) string {
		if i < len(lines) {
			return strings.TrimSpace(lines[i])
		}
		return ""
	}
	pf.DataDir = get(1)
	if sec, err := strconv.ParseInt(get(2), 10, 64); err == nil {
		pf.StartTime = time.Unix(sec, 0)
	}
	pf.Port, _ = strconv.Atoi(get(3))
	pf.SocketDir = get(4)
	pf.Status = get(7)
	return pf, nil
}

// parsePostmasterOpts reads postmaster.opts (`/path/postgres "-D" "/data" "--port=5432"`)
// into its arguments, the binary first.
func parsePostmasterOpts(s string) []string {
	s = strings.TrimSpace(s)
	bin, rest, _ := strings.Cut(s, ` "`)
	args := []string{bin}
	if rest == "" {
		return args
	}
	rest = `"` + rest
	for _, tok := range strings.Split(rest, `" "`) {
		args = append(args, strings.Trim(tok, `"`))
	}
	return args
}
