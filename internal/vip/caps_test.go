package vip

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// Environment of the child process TestCapabilityChild.
const (
	childEnv     = "PGNODED_VIP_CAP_CHILD" // namespace path
	childIfEnv   = "PGNODED_VIP_CAP_IF"
	childAddrEnv = "PGNODED_VIP_CAP_ADDR"
	childDropEnv = "PGNODED_VIP_CAP_DROP" // "admin+raw" or "raw"
)

func TestCheckCapabilitiesAsRoot(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in child")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root")
	}
	if err := CheckCapabilities(); err != nil {
		t.Fatalf("CheckCapabilities as root: %v", err)
	}
}

// TestDroppedCapabilities re-runs this test binary under setpriv without
// CAP_NET_ADMIN and/or CAP_NET_RAW; the child (TestCapabilityChild) checks
// the messages against a namespace of this test.
func TestDroppedCapabilities(t *testing.T) {
	tp := newTopo(t, "k")
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipping: setpriv (util-linux) is not installed")
	}
	a := tp.nodes["a"]
	for _, drop := range []string{"admin+raw", "raw"} {
		caps := "-net_raw"
		if drop == "admin+raw" {
			caps = "-net_admin,-net_raw"
		}
		cmd := exec.Command("setpriv", "--inh-caps="+caps, "--bounding-set="+caps, "--",
			os.Args[0], "-test.run=^TestCapabilityChild$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+a.path, childIfEnv+"="+a.ifname,
			childAddrEnv+"="+tp.vip4().String(), childDropEnv+"="+drop)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestCapabilityChild") {
			t.Fatalf("child without %s: %v\n%s", caps, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if _, msg, ok := strings.Cut(l, "child: "); ok {
				t.Logf("without %s: %s", caps, msg)
			}
		}
	}
	if n := tp.count(a.ns, a.ifname, tp.vip4()); n != 0 {
		t.Fatalf("child left the VIP bound")
	}
}

// TestCapabilityChild runs only inside TestDroppedCapabilities's setpriv.
func TestCapabilityChild(t *testing.T) {
	path := os.Getenv(childEnv)
	if path == "" {
		t.Skip("runs only as the child of TestDroppedCapabilities")
	}
	drop := os.Getenv(childDropEnv)
	err := CheckCapabilities()
	var mc *MissingCapabilityError
	if !errors.As(err, &mc) {
		t.Fatalf("CheckCapabilities = %v, want a MissingCapabilityError", err)
	}
	t.Logf("child: CheckCapabilities: %v", err)
	want := map[string]string{"admin+raw": "CAP_NET_ADMIN CAP_NET_RAW", "raw": "CAP_NET_RAW"}[drop]
	if got := strings.Join(mc.Missing, " "); got != want {
		t.Fatalf("missing %q, want %q", got, want)
	}

	m, err := New(Config{Address: os.Getenv(childAddrEnv), Interface: os.Getenv(childIfEnv), NetnsPath: path})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer m.Close()
	ctx := context.Background()
	err = m.Ensure(ctx, true)
	t.Logf("child: Ensure(true): %v", err)
	if !errors.Is(err, syscall.EPERM) || !errors.As(err, &mc) {
		t.Fatalf("Ensure(true) = %v, want EPERM with a MissingCapabilityError", err)
	}
	switch drop {
	case "admin+raw":
		if mc.Missing[0] != "CAP_NET_ADMIN" || errors.Is(err, ErrAnnounce) {
			t.Fatalf("want the address add to fail for CAP_NET_ADMIN: %v", err)
		}
	case "raw":
		if mc.Missing[0] != "CAP_NET_RAW" || !errors.Is(err, ErrAnnounce) {
			t.Fatalf("want the announcement to fail for CAP_NET_RAW: %v", err)
		}
		if ok, err := m.Bound(ctx); !ok || err != nil {
			t.Fatalf("Bound = %v, %v: the address should be bound without CAP_NET_RAW", ok, err)
		}
		if err := m.Ensure(ctx, false); err != nil {
			t.Fatalf("Ensure(false): %v", err)
		}
	}
}
