package vip

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks, after all tests, that no goroutine is left and that no
// namespace or link named after this process remains.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && os.Getenv(childEnv) == "" {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
		if err := leftovers(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// leftovers lists namespaces and host links the tests created and did not remove.
func leftovers() error {
	if os.Geteuid() != 0 {
		return nil
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil
	}
	var left []string
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "pgv"+pidTag) {
			left = append(left, "netns "+strings.Fields(l)[0])
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return fmt.Errorf("ip link show: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
		if len(name) > 1 && strings.HasPrefix(name[1:], pidTag) {
			left = append(left, "link "+name)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("test leftovers: %s", strings.Join(left, ", "))
	}
	fmt.Fprintf(os.Stderr, "cleanup verified: no pgv%s* namespaces and no [vwde]%s* links left\n", pidTag, pidTag)
	return nil
}
