package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// pgRewindSameTimeline is what pg_rewind prints (LC_ALL=C) when it compares
// the source's timeline with the target's last checkpoint's and finds them equal.
const pgRewindSameTimeline = "source and target cluster are on the same timeline"

// Rewind makes a stopped data directory follow source with pg_rewind. An
// unclean shutdown is first completed with single-user crash recovery.
// pg_rewind copies the source's config files, so ours are put back afterwards.
//
// pg_rewind judges the target's timeline by its last checkpoint. A node
// promoted behind our back and stopped before its first checkpoint on the new
// timeline still has that checkpoint on the old one, the source's: pg_rewind
// then says "no rewind required" although the target's WAL went on on a
// timeline the source never had. pg_control shows it (the minimum recovery
// end's timeline is the newer one): single-user recovery then writes a
// checkpoint on the target's real timeline and pg_rewind runs again.
func (p *Postgres) Rewind(ctx context.Context, source cluster.ConnInfo) error {
	unlock, err := p.lockOps(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if p.current() != nil {
		return fmt.Errorf("rewind: %w", ErrAlreadyRunning)
	}
	p.setState(cluster.StateRewinding)
	defer p.setState(cluster.StateStopped)
	if err := p.ensureCleanShutdown(ctx); err != nil {
		return fmt.Errorf("rewind: %w", err)
	}
	major, err := p.majorVersion(ctx)
	if err != nil {
		return fmt.Errorf("rewind: %w", err)
	}
	creds := p.cfg.Rewind
	if source.User != "" {
		creds = Credentials{Username: source.User, Password: source.Password}
	}
	if err := p.writePgpass(&source); err != nil {
		return fmt.Errorf("rewind: %w", err)
	}
	args := []string{"--target-pgdata=" + p.cfg.DataDir, "--source-server=" + formatDSN(upstreamDSN(p.cfg, source, creds))}
	if major >= 150000 && p.cfg.ConfigDir != p.cfg.DataDir {
		args = append(args, "--config-file="+filepath.Join(p.cfg.ConfigDir, confName))
	}
	saved := p.saveConfigFiles()
	start := time.Now()
	env := append([]string{"PGPASSFILE=" + p.cfg.PgPass, "PGOPTIONS=-c statement_timeout=0"}, cEnv...)
	out, err := p.runTool(ctx, "pg_rewind", env, args...)
	if err == nil && strings.Contains(out, pgRewindSameTimeline) {
		var ahead bool
		if ahead, err = p.checkpointOnOwnTimeline(ctx, out); err == nil && ahead {
			out, err = p.runTool(ctx, "pg_rewind", env, args...)
			if err == nil && strings.Contains(out, pgRewindSameTimeline) {
				err = fmt.Errorf("pg_rewind still finds the target on the source's timeline: %s", tail(out, 500))
			}
		}
	}
	rerr := p.restoreConfigFiles(saved)
	if err != nil {
		return errors.Join(fmt.Errorf("rewind: %w", err), rerr)
	}
	p.log.Info("pg_rewind done", "source", source.Host, "port", source.Port, "duration", time.Since(start), "output", tail(out, 500))
	return rerr
}

// checkpointOnOwnTimeline handles pg_rewind's "same timeline" answer (out):
// when pg_control shows WAL on a newer timeline than the last checkpoint's,
// single-user recovery replays it and checkpoints there. ahead reports that
// it did, and pg_rewind must run again.
func (p *Postgres) checkpointOnOwnTimeline(ctx context.Context, out string) (ahead bool, err error) {
	cd, err := p.ControlData(ctx)
	if err != nil {
		return false, err
	}
	if cd.MinRecoveryEndTimeline <= cd.TimelineID {
		return false, nil
	}
	p.log.Warn("pg_rewind compared the source with the target's last checkpoint, on an older timeline than the target's WAL; "+
		"checkpointing on the target's own timeline with single-user recovery, then running pg_rewind again",
		"checkpoint_timeline", cd.TimelineID, "wal_timeline", cd.MinRecoveryEndTimeline, "output", tail(out, 300))
	if err := p.singleUserRecovery(ctx); err != nil {
		return false, err
	}
	after, err := p.ControlData(ctx)
	if err != nil {
		return false, err
	}
	if after.TimelineID < cd.MinRecoveryEndTimeline {
		return false, fmt.Errorf("after single-user recovery the last checkpoint is on timeline %d, not %d",
			after.TimelineID, cd.MinRecoveryEndTimeline)
	}
	return true, nil
}

// ensureCleanShutdown runs single-user crash recovery when pg_control says the
// cluster was not shut down cleanly (as Patroni does before pg_rewind).
func (p *Postgres) ensureCleanShutdown(ctx context.Context) error {
	cd, err := p.ControlData(ctx)
	if err != nil {
		return err
	}
	if cd.ClusterState == "shut down" || cd.ClusterState == "shut down in recovery" {
		return nil
	}
	p.log.Info("running single-user crash recovery", "state", cd.ClusterState)
	return p.singleUserRecovery(ctx)
}

// singleUserRecovery replays the WAL in postgres' single-user mode (crash
// recovery, up to the timeline pg_control names) and shuts down cleanly, with
// a checkpoint: the cluster state is "shut down" afterwards.
func (p *Postgres) singleUserRecovery(ctx context.Context) error {
	if exists(filepath.Join(p.cfg.DataDir, "backup_label")) {
		return fmt.Errorf("backup_label present: cannot run single-user recovery")
	}
	if err := p.writeSignals(false); err != nil { // single-user mode refuses standby mode
		return err
	}
	_, err := p.runTool(ctx, "postgres", nil, "--single", "-D", p.cfg.DataDir,
		"--config-file="+filepath.Join(p.cfg.ConfigDir, confName),
		"-c", "archive_mode=on", "-c", "archive_command=false", "template1")
	if err != nil {
		return fmt.Errorf("crash recovery: %w", err)
	}
	cd, err := p.ControlData(ctx)
	if err != nil {
		return err
	}
	if cd.ClusterState != "shut down" && cd.ClusterState != "shut down in recovery" {
		return fmt.Errorf("after crash recovery the cluster state is %q", cd.ClusterState)
	}
	return nil
}

// saveConfigFiles reads the config files that live in the data directory.
func (p *Postgres) saveConfigFiles() map[string][]byte {
	saved := map[string][]byte{}
	if p.cfg.ConfigDir != p.cfg.DataDir {
		return saved
	}
	for _, name := range []string{confName, baseConfName, hbaName, identName} {
		if b, err := os.ReadFile(filepath.Join(p.cfg.DataDir, name)); err == nil {
			saved[name] = b
		}
	}
	return saved
}

func (p *Postgres) restoreConfigFiles(saved map[string][]byte) error {
	var errs []error
	for name, b := range saved {
		if _, err := p.writeFileIfChanged(filepath.Join(p.cfg.DataDir, name), b, 0o600); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
