package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pgnoded/pgnoded/internal/pgbin"
)

// pgPackage is the Debian package with the PostgreSQL server binaries.
const pgPackage = "postgresql-15"

// findBins locates pgnoded, pgnodectl and etcd: --bin, then this program's directory, then ./bin.
func findBins(dir string) (Bins, error) {
	var cands []string
	if dir != "" {
		cands = append(cands, dir)
	} else {
		if exe, err := os.Executable(); err == nil {
			cands = append(cands, filepath.Dir(exe))
		}
		cands = append(cands, "bin")
	}
	for _, d := range cands {
		abs, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		b := Bins{Pgnoded: filepath.Join(abs, "pgnoded"), Pgnodectl: filepath.Join(abs, "pgnodectl"),
			Etcd: filepath.Join(abs, "etcd"), Demo: filepath.Join(abs, "demo")}
		if isExec(b.Pgnoded) && isExec(b.Pgnodectl) && isExec(b.Etcd) {
			if !isExec(b.Demo) {
				b.Demo = "go run ./tools/demo"
			}
			return b, nil
		}
	}
	return Bins{}, fmt.Errorf("pgnoded, pgnodectl and etcd not found in %s: build them with `make build && go build -o bin/etcd go.etcd.io/etcd/server/v3` (or run `make demo`)",
		strings.Join(cands, " or "))
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// findPGBin returns the PostgreSQL server bin directory: $PGNODED_PG_BIN_DIR,
// then pgbin.Find's search; "" when absent.
func findPGBin() string { return pgbin.Find(os.Getenv(pgbin.EnvDir)) }

// ensurePG finds the PostgreSQL server binaries, installing them with apt when root.
func ensurePG(ctx context.Context, out io.Writer) (string, error) {
	if d := findPGBin(); d != "" {
		return d, nil
	}
	_, aptErr := exec.LookPath("apt-get")
	if os.Geteuid() != 0 || aptErr != nil {
		return "", fmt.Errorf("the PostgreSQL server binaries are missing: install them with `sudo apt-get install -y %s` (or set PGNODED_PG_BIN_DIR)", pgPackage)
	}
	fmt.Fprintf(out, "PostgreSQL server binaries not found: installing %s with apt-get\n", pgPackage)
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update"}, {"install", "-y", pgPackage}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
		}
	}
	// Debian starts a default cluster on install; the demo runs its own.
	_ = exec.CommandContext(ctx, "systemctl", "stop", "postgresql").Run()
	if d := findPGBin(); d != "" {
		return d, nil
	}
	return "", fmt.Errorf("installed %s but still no postgres binary under /usr/lib/postgresql/*/bin", pgPackage)
}

// netnsReason is why network namespaces cannot be used; "" when they can.
func netnsReason(forceLoopback bool) string {
	switch {
	case forceLoopback:
		return "--loopback given"
	case os.Geteuid() != 0:
		return "not root (network namespaces need root: `sudo make demo` adds them and the VIP)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "iproute2 (ip) is not installed: `apt-get install -y iproute2`"
	}
	return ""
}
