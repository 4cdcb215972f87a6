package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/pgnoded/pgnoded/internal/buildinfo"
	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/exporter"
	"github.com/pgnoded/pgnoded/internal/exporter/envfile"
)

// exporterPlan is the exporter's configuration from the exporter section and,
// where that section leaves a key unset, pg_exporter's environment file
// (exporter.env_file, /etc/default/pg_exporter on a Pigsty node).
type exporterPlan struct {
	cfg      exporter.Config // without DSN, Logger and Status
	logLevel *slog.Level     // pg_exporter's --log.level, for the exporter's own log lines
	applied  []string        // "<origin> -> what it sets", for the startup log
	ignored  []string        // "<origin>: why it is not acted on"
}

// planExporter maps the exporter section and pg_exporter's settings (nil when
// there is no environment file) onto the exporter's configuration. Every
// setting of the file is either applied or named in ignored, never dropped.
func planExporter(c *config.Config, pe *envfile.Settings) exporterPlan {
	x := c.Exporter
	p := exporterPlan{cfg: exporter.Config{
		Listen:           x.Listen,
		CollectorFile:    x.Config,
		CollectorSearch:  x.ConfigSearch,
		ExcludeDatabases: x.ExcludeDatabases,
	}}
	if pe == nil {
		return p
	}
	for _, prob := range pe.Problems {
		p.ignored = append(p.ignored, prob.String())
	}
	ignore := func(s envfile.Setting, why string) {
		p.ignored = append(p.ignored, fmt.Sprintf("%s=%q: not acted on: %s", s.Origin, s.Value, why))
	}
	apply := func(s envfile.Setting, what string) {
		p.applied = append(p.applied, fmt.Sprintf("%s=%q sets %s", s.Origin, s.Value, what))
	}
	// overridden reports (and notes) a setting the exporter section also sets.
	overridden := func(s envfile.Setting, key string) bool {
		if !c.IsSet(key) {
			return false
		}
		p.applied = append(p.applied, fmt.Sprintf("%s=%q: %s in %s wins", s.Origin, s.Value, key, c.Position(key)))
		return true
	}
	boolean := func(name string, use func(envfile.Setting, bool)) {
		s, ok := pe.Get(name)
		if !ok {
			return
		}
		v, _, err := pe.Bool(name)
		if err != nil {
			ignore(s, "not a boolean")
			return
		}
		use(s, v)
	}

	for _, name := range pe.Names() {
		s, _ := pe.Get(name)
		switch name {
		case "config":
			if s.Value != "" && !overridden(s, "exporter.config") {
				p.cfg.CollectorFile = s.Value
				apply(s, "the collector file")
			}
		case "web.listen-address":
			if s.Value != "" && !overridden(s, "exporter.listen") {
				p.cfg.Listen = s.Value
				apply(s, "the exporter's listen address")
			}
		case "exclude-database":
			if !overridden(s, "exporter.exclude_databases") {
				p.cfg.ExcludeDatabases = commaList(s.Value)
				if p.cfg.ExcludeDatabases == nil {
					p.cfg.ExcludeDatabases = []string{} // written empty: exclude nothing, as pg_exporter
				}
				apply(s, "the databases auto-discovery skips")
			}
		case "include-database":
			if s.Value != "" {
				p.cfg.IncludeDatabases = commaList(s.Value)
				apply(s, "the only databases auto-discovery scrapes")
			}
		case "auto-discovery":
			boolean(name, func(s envfile.Setting, v bool) {
				p.cfg.DisableAutoDiscovery = !v
				apply(s, "database auto-discovery")
			})
		case "disable-cache":
			boolean(name, func(s envfile.Setting, v bool) {
				p.cfg.DisableCache = v
				apply(s, "whether collector results are cached")
			})
		case "tag":
			if s.Value != "" {
				p.cfg.Tags = commaList(s.Value)
				apply(s, "the exporter's tags")
			}
		case "label":
			labels, bad := constLabels(s.Value)
			for _, b := range bad {
				ignore(s, b)
			}
			if len(labels) > 0 {
				p.cfg.ConstLabels = labels
				apply(s, "constant labels on every pg_* and pgnoded_* metric of the exporter")
			}
		case "connect-timeout":
			ms, err := strconv.Atoi(strings.TrimSpace(s.Value))
			if err != nil || ms <= 0 {
				ignore(s, "not a positive number of milliseconds")
				continue
			}
			p.cfg.ConnectTimeout = time.Duration(ms) * time.Millisecond
			apply(s, "the exporter's connect timeout")
		case "web.telemetry-path":
			switch {
			case s.Value == "" || s.Value == exporter.PathMetrics:
			case !strings.HasPrefix(s.Value, "/"):
				ignore(s, "a path must start with /")
			default:
				p.cfg.MetricsPath = s.Value
				apply(s, "a second path serving /metrics")
			}
		case "namespace":
			if s.Value != "" && s.Value != "pg" {
				ignore(s, "pgnoded's exporter names its metrics pg_* always")
			}
		case "log.level":
			lv, ok := exporterLogLevel(s.Value)
			if !ok {
				ignore(s, "not one of debug, info, warn, error")
				continue
			}
			p.logLevel = &lv
			apply(s, "the exporter's log level")
		case "fail-fast":
			boolean(name, func(s envfile.Setting, v bool) {
				if v {
					ignore(s, "the exporter never stops pgnoded: a failure is logged and retried")
				}
			})
		case "disable-intro":
			boolean(name, func(s envfile.Setting, v bool) {
				if v {
					ignore(s, "the pg_exporter_* self metrics are still served")
				}
			})
		case "url", envfile.NamePGURL, envfile.NameURLFile:
			if s.Value != "" {
				if name != envfile.NameURLFile {
					s.Value = redactURL(s.Value) // the log must not carry the monitor role's password
				}
				ignore(s, "the exporter connects to the local postgres as postgresql.authentication.superuser over the unix socket")
			}
		case "web.config.file":
			if s.Value != "" {
				ignore(s, "TLS and basic auth on the exporter port are not supported: it serves plain HTTP")
			}
		case "log.format":
			if s.Value != "" {
				ignore(s, "the exporter logs in pgnoded's format (log.type)")
			}
		default: // web.systemd-socket, dry-run, explain, version, help
			boolean(name, func(s envfile.Setting, v bool) {
				if v {
					ignore(s, "not an option of a running pgnoded")
				}
			})
		}
	}
	return p
}

// redactURL hides the password of a postgres URL.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil {
		return "(not shown: unparsable URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// commaList splits pg_exporter's comma-separated lists: blanks trimmed, empty items dropped.
func commaList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// constLabels parses pg_exporter's "k=v,k2=v2" constant labels; pairs that
// are not key=value or whose name is not a label name are returned as reasons.
func constLabels(s string) (map[string]string, []string) {
	var (
		labels map[string]string
		bad    []string
	)
	for _, part := range commaList(s) {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok || k == "" || v == "":
			bad = append(bad, fmt.Sprintf("label %q is not key=value", part))
		case !model.LabelName(k).IsValidLegacy() || strings.HasPrefix(k, "__"):
			bad = append(bad, fmt.Sprintf("label name %q is not valid", k))
		default:
			if labels == nil {
				labels = map[string]string{}
			}
			labels[k] = v
		}
	}
	return labels, bad
}

func exporterLogLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// readPGExporterEnv reads pg_exporter's environment file; nil when path is
// empty or the file does not exist (not a Pigsty node, or pg_exporter removed).
func readPGExporterEnv(path string, log *slog.Logger) *envfile.Settings {
	if path == "" {
		return nil
	}
	pe, err := envfile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		log.Warn("pg_exporter's environment file cannot be read; its settings are not applied", "file", path, "error", err)
		return nil
	}
	return pe
}

// exporterWarnings are what --validate-config reports about the exporter of
// the configuration at path: pg_exporter settings not acted on, and a
// collector file that cannot be loaded (the built-in set would be served).
func exporterWarnings(path string) []string {
	cfg, _, err := config.Load(path, os.Environ())
	if err != nil || !cfg.Exporter.Enabled {
		return nil
	}
	var out []string
	var pe *envfile.Settings
	if f := cfg.Exporter.EnvFile; f != "" {
		if pe, err = envfile.Read(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			out = append(out, fmt.Sprintf("exporter.env_file: %v", err))
		}
	}
	plan := planExporter(cfg, pe)
	for _, w := range plan.ignored {
		out = append(out, "exporter.env_file: "+w)
	}
	src := exporter.SelectSource(plan.cfg.CollectorFile, plan.cfg.CollectorSearch, os.Stat)
	if _, err := os.Stat(src.Path); src.Builtin() || err != nil {
		return out // a missing exporter.config is reported by config.Validate
	}
	if err := exporter.CheckSource(src); err != nil {
		out = append(out, fmt.Sprintf("exporter: collector file cannot be loaded, the built-in set would be served: %v", err))
	}
	return out
}

// buildExporter wires the exporter. It never fails pgnoded: an exporter that
// cannot be built is logged and left out (pgnoded_exporter_up stays 0 on the
// REST API's /metrics), and its port is bound by Run, which retries.
func (d *supervisor) buildExporter(cfg *config.Config, dsn string, log *slog.Logger) {
	pe := readPGExporterEnv(cfg.Exporter.EnvFile, log)
	plan := planExporter(cfg, pe)
	if pe != nil {
		log.Info("pg_exporter settings read", "file", pe.File, "applied", len(plan.applied), "not_acted_on", len(plan.ignored))
	}
	for _, a := range plan.applied {
		log.Info("pg_exporter setting", "setting", a)
	}
	for _, w := range plan.ignored {
		log.Warn("pg_exporter setting", "setting", w)
	}
	xlog := log // exporter.New adds component=exporter
	if plan.logLevel != nil {
		xlog = slog.New(levelHandler{level: *plan.logLevel, h: xlog.Handler()})
	}
	ec := plan.cfg
	ec.DSN, ec.Logger, ec.Status = dsn, xlog, d.exporterStatus
	ec.Version = buildinfo.Version // pg_exporter_build_info carries pgnoded's version
	e, err := exporter.New(ec, d.node.Snapshot)
	if err != nil {
		log.Error("the exporter cannot start; postgres and HA carry on without it", "error", err)
		return
	}
	d.exporter, d.exporterPlan = e, plan
}

// reloadExporter re-reads the configuration and pg_exporter's environment
// file and reloads the collector file (SIGHUP, POST /reload). A file that
// cannot be loaded keeps the running collectors; the other exporter settings
// apply at the next start of pgnoded.
func (d *supervisor) reloadExporter() {
	if d.exporter == nil {
		return
	}
	cfg, _, err := config.Load(d.path, os.Environ())
	if err != nil {
		cfg = d.cfg // the configuration error is logged by reload
	}
	plan := planExporter(cfg, readPGExporterEnv(cfg.Exporter.EnvFile, d.log))
	_ = d.exporter.Reload(plan.cfg.CollectorFile, plan.cfg.CollectorSearch) // logged by Reload
	was, now := d.exporterPlan.cfg, plan.cfg
	was.CollectorFile, was.CollectorSearch, now.CollectorFile, now.CollectorSearch = "", nil, "", nil
	if !reflect.DeepEqual(was, now) || !reflect.DeepEqual(d.exporterPlan.logLevel, plan.logLevel) {
		d.log.Warn("reload: exporter settings other than the collector file changed; they apply at the next start of pgnoded")
	}
}

// reloadAll is the work of SIGHUP and POST /reload: the configuration, then
// the exporter's collector file.
func (d *supervisor) reloadAll() {
	d.reload()
	d.reloadExporter()
}

// levelHandler logs at its own level, whatever the wrapped handler's (the
// handlers here filter in Enabled only).
type levelHandler struct {
	level slog.Level
	h     slog.Handler
}

func (l levelHandler) Enabled(_ context.Context, lv slog.Level) bool { return lv >= l.level }
func (l levelHandler) Handle(ctx context.Context, r slog.Record) error {
	return l.h.Handle(ctx, r)
}
func (l levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return levelHandler{level: l.level, h: l.h.WithAttrs(a)}
}
func (l levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{level: l.level, h: l.h.WithGroup(name)}
}
