package fence

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Wire protocol: one request line, one reply line, over a unix stream socket.
//
//	arm <ns>\n   -> ok\n          postgres may run as primary until CLOCK_BOOTTIME instant <ns>
//	disarm\n     -> ok\n          this node is not a primary; forget any deadline
//	status\n     -> ok <json>\n   the guard's Status
//	(anything else) -> err <message>\n
const (
	opArm    = "arm"
	opDisarm = "disarm"
	opStatus = "status"

	replyOK  = "ok"
	replyErr = "err"

	maxLine = 4096
)

// ErrZeroDeadline is returned by Arm for a zero time.Time: it is a caller bug,
// and the guard keeps its previous deadline rather than fencing at once.
var ErrZeroDeadline = errors.New("fence: zero deadline")

// Status is the guard's state as reported by the status request.
type Status struct {
	PID     int    `json:"pid"`
	DataDir string `json:"data_dir"`
	Armed   bool   `json:"armed"`
	// RemainingNS is the time left before the guard fences (armed only; negative once passed).
	RemainingNS int64 `json:"remaining_ns"`
	Clients     int   `json:"clients"`
	Fences      int   `json:"fences"`
	// Fencing is true while a fence (stopping the postmaster) is in progress.
	Fencing  bool `json:"fencing"`
	Draining bool `json:"draining"`
}

// Remaining is RemainingNS as a duration.
func (s Status) Remaining() time.Duration { return time.Duration(s.RemainingNS) }

// bootNow reads CLOCK_BOOTTIME in nanoseconds. It is monotonic like
// CLOCK_MONOTONIC and shared by every process on the machine, but it also
// counts time spent suspended, so a deadline that passes while the machine
// sleeps is due at resume instead of late by the length of the sleep.
func bootNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME exists on every Linux since 2.6.39; this cannot fail in practice.
		panic(fmt.Sprintf("fence: clock_gettime(CLOCK_BOOTTIME): %v", err))
	}
	return ts.Nano()
}

// bootDeadline converts a wall/monotonic deadline into a CLOCK_BOOTTIME
// instant, using the remaining time measured now (time.Until uses Go's
// monotonic reading, so wall-clock steps do not move it).
func bootDeadline(deadline time.Time) int64 {
	return bootNow() + int64(time.Until(deadline))
}

type request struct {
	op       string
	deadline int64 // CLOCK_BOOTTIME ns, arm only
}

func parseRequest(line string) (request, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return request{}, errors.New("empty request")
	}
	switch fields[0] {
	case opArm:
		if len(fields) != 2 {
			return request{}, fmt.Errorf("arm wants 1 argument, got %d", len(fields)-1)
		}
		ns, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return request{}, fmt.Errorf("arm deadline: %w", err)
		}
		return request{op: opArm, deadline: ns}, nil
	case opDisarm, opStatus:
		if len(fields) != 1 {
			return request{}, fmt.Errorf("%s takes no argument", fields[0])
		}
		return request{op: fields[0]}, nil
	default:
		return request{}, fmt.Errorf("unknown request %q", fields[0])
	}
}

// DefaultSocketPath is the guard's socket for a data directory: next to it,
// not inside it (initdb, pg_basebackup and re-clones need an empty data
// directory), and named after it so guards of data directories that share a
// parent do not collide. Example: /pg/data -> /pg/pgnoded-fence-data.sock.
func DefaultSocketPath(dataDir string) string {
	dataDir = filepath.Clean(dataDir)
	return filepath.Join(filepath.Dir(dataDir), "pgnoded-fence-"+filepath.Base(dataDir)+".sock")
}

// lockPath is the file a running guard holds an exclusive flock on.
func lockPath(socket string) string { return socket + ".lock" }
