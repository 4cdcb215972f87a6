package testenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// removeOrphanSegments removes the System V shared memory segment of every
// postmaster.pid below dir whose segment nothing is attached to any more. A
// postmaster that exits cleanly removes its segment and postmaster.pid; one
// that a test killed leaves both, and postgres removes such a segment only
// when the same data directory starts again. A test deletes the directory, so
// without this every killed postmaster leaks a segment until the kernel's
// table (kernel.shmmni, 4096 by default) is full and every initdb on the
// machine fails ("could not create shared memory segment").
func removeOrphanSegments(dir string) (removed int) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "postmaster.pid" {
			return nil
		}
		key, id, ok := pidFileSegment(path)
		if !ok {
			return nil
		}
		if detached(id, key) {
			if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err == nil {
				removed++
			}
		}
		return nil
	})
	return removed
}

// detachWait bounds how long removeOrphanSegments waits for the backends of a
// postmaster killed just before (the test's own cleanup) to exit.
var detachWait = 5 * time.Second

// detached reports whether segment id still has key and nothing attached,
// waiting up to detachWait for the last processes to detach; false when it
// is gone, belongs to another key now, or stays attached (a live postgres).
func detached(id int, key int32) bool {
	deadline := time.Now().Add(detachWait)
	for {
		var ds unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err != nil || ds.Perm.Key != key {
			return false
		}
		if ds.Nattch == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // no event announces a detach
	}
}

// pidFileSegment reads the shared memory key and id postgres writes on the
// 7th line of postmaster.pid ("  5432001     65538").
func pidFileSegment(path string) (key int32, id int, ok bool) {
	lines, ok := pidFileLines(path)
	if !ok || len(lines) < 7 {
		return 0, 0, false
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return 0, 0, false
	}
	k, err1 := strconv.ParseInt(f[0], 10, 64)
	i, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || k == 0 {
		return 0, 0, false
	}
	return int32(uint32(k)), i, true
}

// pidFileLines is the content of the postmaster.pid at path, by line.
func pidFileLines(path string) ([]string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	return strings.Split(string(b), "\n"), true
}
