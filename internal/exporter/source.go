package exporter

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// Source is where the collector set comes from.
type Source struct {
	Path   string // file or directory; "" is the built-in set
	Reason string // why this one was chosen, for the log
}

// Builtin reports whether s is the built-in set.
func (s Source) Builtin() bool { return s.Path == "" }

func (s Source) String() string {
	if s.Builtin() {
		return "built-in set"
	}
	return s.Path
}

// SelectSource picks the collector set as pg_exporter picks its config: an
// explicit file or directory always (a missing one fails to load and is
// reported), else the first of search that exists (pg_exporter looks at
// /etc/pg_exporter.yml, then /etc/pg_exporter/), else the built-in set.
// stat is os.Stat outside tests.
func SelectSource(explicit string, search []string, stat func(string) (fs.FileInfo, error)) Source {
	if explicit != "" {
		return Source{Path: explicit, Reason: "configured"}
	}
	for _, p := range search {
		if p == "" {
			continue
		}
		if _, err := stat(p); err == nil {
			return Source{Path: p, Reason: "found (no collector file configured)"}
		}
	}
	return Source{Reason: "no collector file configured or found"}
}

// collectorSet is a loaded and compiled set of collectors.
type collectorSet struct {
	source     Source
	collectors []*compiled
	perDB      bool // some collector runs per database
}

// loadSet reads and compiles the collectors of src. Every problem names its
// file and line. With noCache, results are never reused between scrapes
// (pg_exporter's --disable-cache).
func loadSet(src Source, noCache bool) (*collectorSet, error) {
	specs, err := loadSpecs(src.Path)
	if err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("%s: no collectors defined", src.Path)
	}
	set := &collectorSet{source: src}
	var errs []error
	for _, s := range specs {
		if noCache {
			s.TTL = 0
		}
		cc, err := compile(s)
		if err != nil {
			file := s.File
			if file == "" {
				file = defaultCollectorsFile
			}
			errs = append(errs, fmt.Errorf("%s:%d: %w", file, s.Line, err))
			continue
		}
		set.collectors = append(set.collectors, cc)
		if !s.ClusterLevel() && !s.Skip {
			set.perDB = true
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// CheckSource loads and compiles src without serving it (pgnoded --validate-config).
func CheckSource(src Source) error {
	_, err := loadSet(src, false)
	return err
}

// setCollectors makes set the collectors of the next scrape. Cached results
// and statistics of the previous set are dropped: a branch of the same name
// may now run another query.
func (c *pgCollector) setCollectors(set *collectorSet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.useCollectors(set)
	for _, t := range c.allTargets() {
		t.state = map[string]*collectorState{}
		t.planned = nil
	}
}

func (c *pgCollector) allTargets() []*target {
	out := []*target{c.main}
	for _, t := range c.others {
		out = append(out, t)
	}
	return out
}

// Reload selects the collector source again (explicit as in Config.CollectorFile,
// search as in Config.CollectorSearch) and loads it. A source that cannot be
// loaded leaves the running collectors in place, sets the fallback gauge and
// returns the error, which names file and line.
func (e *Exporter) Reload(explicit string, search []string) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	src := SelectSource(explicit, search, os.Stat)
	set, err := loadSet(src, e.cfg.DisableCache)
	if err != nil {
		e.st.setFallback(true)
		e.log.Error("reload: collectors cannot be loaded; the running collectors are kept",
			"source", src.String(), "running", e.running.String(), "error", err)
		return fmt.Errorf("exporter: reload %s: %w", src, err)
	}
	e.pg.setCollectors(set)
	e.running = src
	e.st.setFallback(false)
	e.log.Info("reload: collectors loaded", "source", src.String(), "reason", src.Reason, "collectors", len(set.collectors))
	return nil
}

// Source is the collector source being served.
func (e *Exporter) Source() Source {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.running
}

// Status is the exporter's serving and fallback state.
func (e *Exporter) Status() *Status { return e.st }

// initialSet loads the selected source at start; one that cannot be loaded
// gives way to the built-in set, with the error logged and the fallback gauge set.
func initialSet(cfg Config, log *slog.Logger, status *Status) (*collectorSet, error) {
	src := SelectSource(cfg.CollectorFile, cfg.CollectorSearch, os.Stat)
	set, err := loadSet(src, cfg.DisableCache)
	if err == nil {
		return set, nil // New logs the source
	}
	if src.Builtin() {
		return nil, fmt.Errorf("exporter: built-in collectors: %w", err)
	}
	log.Error("collector file cannot be loaded; serving the built-in set instead", "source", src.String(), "error", err)
	builtin := Source{Reason: "fallback: " + src.Path + " cannot be loaded"}
	if set, err = loadSet(builtin, cfg.DisableCache); err != nil {
		return nil, fmt.Errorf("exporter: built-in collectors: %w", err)
	}
	status.setFallback(true)
	return set, nil
}
