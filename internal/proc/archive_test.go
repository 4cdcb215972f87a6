package proc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/testenv"
)

func TestArchiverCommand(t *testing.T) {
	for _, c := range []struct{ cmd, want string }{
		{"cp %p /a/%f", "cp /d/pg_wal/SEG /a/SEG"},
		{"pgbackrest --stanza=x archive-push %p", "pgbackrest --stanza=x archive-push /d/pg_wal/SEG"},
		{"x %r %% %z 100%", "x 000000010000000000000001 % %z 100%"},
		{"%%p", "%p"},
	} {
		if got := archiverCommand(c.cmd, "/d/pg_wal", "SEG"); got != c.want {
			t.Errorf("archiverCommand(%q) = %q, want %q", c.cmd, got, c.want)
		}
	}
}

// A primary stopped cleanly hands the segment holding its shutdown checkpoint
// to archive_command; nothing is run when archiving is off; a failing command
// is an error naming it and its exit status.
func TestArchiveShutdownCheckpoint(t *testing.T) {
	cfg := testConfig(t, "archive")
	archive := filepath.Join(testenv.PGDir(t), "archive")
	n := newTestNode(t, cfg)
	ctx := opCtx(t)
	n.must(n.p.Initdb(ctx), "initdb")
	startStop := func(params map[string]any) {
		t.Helper()
		n.must(n.p.Start(ctx, cluster.StartOptions{Params: params}), "start")
		n.must(n.p.Stop(ctx, cluster.StopFast), "stop")
	}

	startStop(map[string]any{"archive_mode": "on", "archive_command": "mkdir -p " + archive + " && cp %p " + archive + "/%f"})
	seg, err := n.p.ArchiveShutdownCheckpoint(ctx)
	n.must(err, "archive the shutdown checkpoint")
	cd, err := n.p.ControlData(ctx)
	n.must(err, "pg_controldata")
	if cd.ClusterState != "shut down" || seg == "" || seg != cd.RedoWALFile {
		t.Fatalf("archived %q; pg_control %q with the REDO WAL file %q", seg, cd.ClusterState, cd.RedoWALFile)
	}
	got, err := os.ReadFile(filepath.Join(archive, seg))
	n.must(err, "read the archived segment")
	want, err := os.ReadFile(filepath.Join(cfg.DataDir, "pg_wal", seg))
	n.must(err, "read the segment")
	if string(got) != string(want) {
		t.Errorf("the archived %s differs from pg_wal's", seg)
	}

	startStop(map[string]any{"archive_mode": "on", "archive_command": "exit 3"})
	if _, err := n.p.ArchiveShutdownCheckpoint(ctx); err == nil || !strings.Contains(err.Error(), `archive_command "exit 3": exited with status 3`) {
		t.Errorf("failing archive_command: %v", err)
	}

	startStop(map[string]any{"archive_mode": "off", "archive_command": "exit 3"})
	if seg, err := n.p.ArchiveShutdownCheckpoint(ctx); err != nil || seg != "" {
		t.Errorf("archive_mode off: archived %q, err %v; want nothing run", seg, err)
	}
}
