package proc

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// ArchiveShutdownCheckpoint hands the WAL segment holding the shutdown
// checkpoint of a stopped primary to archive_command, as Patroni 4.1 does
// after demote-cluster (postgresql/rewind.py archive_shutdown_checkpoint_wal):
// postgres archives only completed segments, so without this the archive the
// remote site recovers from lacks the last one, and a standby cluster that
// replays from the archive and is promoted later has not seen our shutdown
// checkpoint (pg_rewind is then needed to follow it).
//
// Archiving is configured when `postgres -C` (our config files) says
// archive_mode is on or always and archive_command is set; otherwise it does
// nothing and returns "". The segment is pg_control's "Latest checkpoint's
// REDO WAL file"; %p is its path under pg_wal, %f its name, %r
// 000000010000000000000001 and %% a percent sign, as Patroni fills them in.
// The command runs through /bin/sh as the OS user in the data directory
// (where postgres runs it). It returns the segment archived, or an error
// naming the command and its exit status.
func (p *Postgres) ArchiveShutdownCheckpoint(ctx context.Context) (string, error) {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	if p.current() != nil {
		return "", fmt.Errorf("archive the shutdown checkpoint: %w", ErrAlreadyRunning)
	}
	mode, err := p.showSetting(ctx, "archive_mode")
	if err != nil {
		return "", fmt.Errorf("archive the shutdown checkpoint: %w", err)
	}
	command, err := p.showSetting(ctx, "archive_command")
	if err != nil {
		return "", fmt.Errorf("archive the shutdown checkpoint: %w", err)
	}
	if (mode != "on" && mode != "always") || command == "" || command == "(disabled)" {
		p.log.Info("not archiving the shutdown checkpoint's WAL segment: archiving is not configured",
			"archive_mode", mode)
		return "", nil
	}
	cd, err := p.ControlData(ctx)
	if err != nil {
		return "", fmt.Errorf("archive the shutdown checkpoint: %w", err)
	}
	if cd.RedoWALFile == "" {
		return "", errors.New("archive the shutdown checkpoint: pg_controldata shows no \"Latest checkpoint's REDO WAL file\"")
	}
	line := archiverCommand(command, filepath.Join(p.cfg.DataDir, "pg_wal"), cd.RedoWALFile)
	p.log.Info("archiving the shutdown checkpoint's WAL segment", "segment", cd.RedoWALFile, "command", line)
	start := time.Now()
	out, err := p.runCommandIn(ctx, p.cfg.DataDir, []string{"/bin/sh", "-c", line})
	if err != nil {
		return "", fmt.Errorf("archive the shutdown checkpoint's WAL segment %s: archive_command %q: %w: %s",
			cd.RedoWALFile, line, err, tail(out, 2000))
	}
	p.log.Info("archived the shutdown checkpoint's WAL segment", "segment", cd.RedoWALFile,
		"duration", time.Since(start), "output", tail(out, 500))
	return cd.RedoWALFile, nil
}

// showSetting is a setting's value as a stopped postgres would start with it
// (`postgres -C name` on our data directory and config file).
func (p *Postgres) showSetting(ctx context.Context, name string) (string, error) {
	args := []string{"-D", p.cfg.DataDir, "-C", name}
	if p.cfg.ConfigDir != p.cfg.DataDir {
		args = append(args, "--config-file="+filepath.Join(p.cfg.ConfigDir, confName))
	}
	out, err := p.runTool(ctx, "postgres", cEnv, args...)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// archiverCommand fills in an archive_command's placeholders for segment in
// walDir as Patroni's _build_archiver_command does: %p the segment's path, %f
// its name, %r 000000010000000000000001, %% a percent sign; any other %
// stays as it is.
func archiverCommand(command, walDir, segment string) string {
	var b strings.Builder
	for i := 0; i < len(command); i++ {
		if command[i] != '%' || i+1 == len(command) {
			b.WriteByte(command[i])
			continue
		}
		switch command[i+1] {
		case 'p':
			b.WriteString(filepath.Join(walDir, segment))
		case 'f':
			b.WriteString(segment)
		case 'r':
			b.WriteString("000000010000000000000001")
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			continue
		}
		i++
	}
	return b.String()
}
