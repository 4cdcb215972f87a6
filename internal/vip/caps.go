package vip

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Capability bits (linux/capability.h).
const (
	capNetAdmin = 12
	capNetRaw   = 13
)

var capNames = map[int]string{capNetAdmin: "CAP_NET_ADMIN", capNetRaw: "CAP_NET_RAW"}

// MissingCapabilityError names the capabilities the process lacks for managing the VIP.
type MissingCapabilityError struct {
	// Missing holds capability names, e.g. "CAP_NET_RAW".
	Missing []string
}

func (e *MissingCapabilityError) Error() string {
	return fmt.Sprintf("vip: missing capability %s (CAP_NET_ADMIN adds/removes the address, "+
		"CAP_NET_RAW sends gratuitous ARP/NA); run as root or grant them, e.g. "+
		"AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW in the systemd unit",
		strings.Join(e.Missing, " and "))
}

// CheckCapabilities reports (as *MissingCapabilityError) which of CAP_NET_ADMIN and
// CAP_NET_RAW are missing from the process's effective set.
func CheckCapabilities() error {
	missing, err := missingCaps(capNetAdmin, capNetRaw)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return &MissingCapabilityError{Missing: missing}
	}
	return nil
}

// missingCaps returns the names of the given capabilities absent from CapEff.
func missingCaps(bits ...int) ([]string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("vip: read capabilities: %w", err)
	}
	defer f.Close()
	eff, err := parseCapEff(bufio.NewScanner(f))
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, b := range bits {
		if eff&(1<<b) == 0 {
			missing = append(missing, capNames[b])
		}
	}
	return missing, nil
}

// parseCapEff finds the CapEff line of a /proc/<pid>/status text.
func parseCapEff(sc *bufio.Scanner) (uint64, error) {
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("vip: parse CapEff %q: %w", strings.TrimSpace(v), err)
		}
		return eff, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("vip: read capabilities: %w", err)
	}
	return 0, errors.New("vip: no CapEff line in /proc/self/status")
}

// explainPerm adds, to a permission error, which capability is missing (bit),
// or that it is present and something else (LSM, user namespace) denied it.
func explainPerm(err error, bit int) error {
	if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) {
		return err
	}
	missing, cerr := missingCaps(bit)
	switch {
	case cerr != nil:
		return fmt.Errorf("%w (needs %s; %v)", err, capNames[bit], cerr)
	case len(missing) > 0:
		return fmt.Errorf("%w: %w", err, &MissingCapabilityError{Missing: missing})
	default:
		return fmt.Errorf("%w (%s is in the effective set; denied by a security module or user namespace?)", err, capNames[bit])
	}
}
