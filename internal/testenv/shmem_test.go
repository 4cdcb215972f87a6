package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRemoveOrphanSegments: the segment a killed postmaster's postmaster.pid
// names is removed when nothing is attached to it, and left alone while a
// process is attached or when the id now belongs to another key.
func TestRemoveOrphanSegments(t *testing.T) {
	newSegment := func(key int) int {
		t.Helper()
		id, err := unix.SysvShmGet(key, 56, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
		if err != nil {
			t.Skipf("cannot create a System V segment here: %v", err)
		}
		t.Cleanup(func() { _, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil) })
		return id
	}
	exists := func(id int) bool {
		var ds unix.SysvShmDesc
		_, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds)
		return err == nil
	}
	pidFile := func(dir string, key, id int) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("12345\n%s\n1700000000\n5432\n/tmp\n*\n%9d %9d\nready   \n", dir, key, id)
		if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	defer func(d time.Duration) { detachWait = d }(detachWait)
	detachWait = 100 * time.Millisecond // the attached segment stays attached
	base := t.TempDir()
	keyBase := 0x7e000000 + os.Getpid()%0x10000*16
	orphan := newSegment(keyBase + 1)
	pidFile(filepath.Join(base, "n1", "data"), keyBase+1, orphan)
	attached := newSegment(keyBase + 2)
	mem, err := unix.SysvShmAttach(attached, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.SysvShmDetach(mem) }()
	pidFile(filepath.Join(base, "n2", "data"), keyBase+2, attached)
	other := newSegment(keyBase + 3)
	pidFile(filepath.Join(base, "n3", "data"), keyBase+4, other) // the id now belongs to another key

	if n := removeOrphanSegments(base); n != 1 {
		t.Errorf("removed %d segments, want 1", n)
	}
	if exists(orphan) {
		t.Error("the orphaned segment is still there")
	}
	if !exists(attached) || !exists(other) {
		t.Error("a segment in use, or one of another key, was removed")
	}
}
