package pgbin

import (
	"os"
	"path/filepath"
	"testing"
)

func fakeBinDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "postgres"), []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFindPrefersTheGivenDirectories(t *testing.T) {
	good := fakeBinDir(t, 0o755)
	if got := Find("", t.TempDir(), fakeBinDir(t, 0o644), good); got != good {
		t.Errorf("Find = %q, want the first given directory with an executable postgres %q", got, good)
	}
}

func TestFindSearchesPATH(t *testing.T) {
	good := fakeBinDir(t, 0o755)
	t.Setenv("PATH", good)
	if got := Find(""); got != good {
		t.Errorf("Find = %q, want the directory of postgres on PATH %q", got, good)
	}
}

func TestHas(t *testing.T) {
	if Has(t.TempDir()) {
		t.Error("an empty directory has no postgres")
	}
	d := t.TempDir()
	if err := os.Mkdir(filepath.Join(d, "postgres"), 0o755); err != nil {
		t.Fatal(err)
	}
	if Has(d) {
		t.Error("a directory named postgres is not the binary")
	}
	if !Has(fakeBinDir(t, 0o700)) {
		t.Error("an executable postgres is found")
	}
}

func TestFindFollowsALinkOnPATH(t *testing.T) {
	real := fakeBinDir(t, 0o755)
	onPath := t.TempDir()
	if err := os.Symlink(filepath.Join(real, "postgres"), filepath.Join(onPath, "postgres")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", onPath)
	if got := Find(); got != real {
		t.Errorf("Find = %q, want the link's target directory %q", got, real)
	}
}
