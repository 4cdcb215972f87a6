package proc

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// Defaults for rotating LogFile.
const (
	DefaultLogMaxBytes = 100 << 20 // 100 MiB
	DefaultLogKeep     = 4
	logCheckEvery      = 30 * time.Second
)

// RotateLog copies LogFile to LogFile.1 (shifting older copies up to
// LogFile.<LogKeep>, dropping the oldest) and truncates it, once it is larger
// than LogMaxBytes. The postmaster keeps its O_APPEND descriptor, so it goes
// on writing at the start of the emptied file, with or without a pgnoded;
// only lines written between the copy and the truncate are lost (as with
// logrotate's copytruncate). rotated is false when nothing was to do.
func (p *Postgres) RotateLog() (rotated bool, err error) {
	max, keep, path := p.cfg.LogMaxBytes, p.cfg.LogKeep, p.cfg.LogFile
	if max <= 0 || path == "" || fileSize(path) <= max {
		return false, nil
	}
	if keep < 1 {
		keep = 1
	}
	_ = os.Remove(fmt.Sprintf("%s.%d", path, keep))
	for i := keep - 1; i >= 1; i-- {
		from := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(from); err == nil {
			if err := os.Rename(from, fmt.Sprintf("%s.%d", path, i+1)); err != nil {
				return false, fmt.Errorf("rotate %s: %w", path, err)
			}
		}
	}
	if err := copyFile(path, path+".1"); err != nil {
		return false, fmt.Errorf("rotate %s: %w", path, err)
	}
	if err := p.chown(path + ".1"); err != nil {
		return false, fmt.Errorf("rotate %s: chown copy: %w", path, err)
	}
	if err := os.Truncate(path, 0); err != nil {
		return false, fmt.Errorf("rotate %s: truncate: %w", path, err)
	}
	return true, nil
}

// copyFile copies src to a new dst (0600), replacing dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// rotateLogs checks LogFile every logCheckEvery until ctx ends.
func (p *Postgres) rotateLogs(ctx context.Context) {
	if p.cfg.LogMaxBytes <= 0 {
		return
	}
	t := time.NewTicker(logCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if rotated, err := p.RotateLog(); err != nil {
				p.log.Warn("cannot rotate the postgres log", "file", p.cfg.LogFile, "err", err)
			} else if rotated {
				p.log.Info("rotated the postgres log", "file", p.cfg.LogFile, "max_bytes", p.cfg.LogMaxBytes, "keep", p.cfg.LogKeep)
			}
		}
	}
}
