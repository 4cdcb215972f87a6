package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the configuration at path: a YAML file, or a directory whose
// *.yml and *.yaml files are merged in alphabetical order (later files win,
// mappings merge key by key). When path is empty or does not exist and env
// has PATRONI_CONFIGURATION, that YAML is used instead (and, as in Patroni,
// the other PATRONI_* variables are ignored). When path is empty and that
// variable is absent, the configuration comes from the environment alone.
// PATRONI_* and PGNODED_* variables in env override the file (see env.go).
//
// Unknown keys are returned as warnings. Every problem that stops pgnoded is
// an *Error naming file, line and key path; several are joined with errors.Join
// (use Errors to list them). On error the returned *Config is nil.
func Load(path string, env []string) (*Config, []Warning, error) {
	return loadChecked(path, env, false)
}

// LoadForTool is Load for tools that only read how to reach the cluster
// (pgnodectl): settings the daemon refuses (docs/config-keys.md) are warnings
// here, so an operator can still inspect a cluster whose file has them.
func LoadForTool(path string, env []string) (*Config, []Warning, error) {
	return loadChecked(path, env, true)
}

func loadChecked(path string, env []string, refusedAsWarnings bool) (*Config, []Warning, error) {
	cfg, p := load(path, env)
	if refusedAsWarnings {
		p.refusalsToWarnings()
	}
	if err := p.err(); err != nil {
		return nil, p.warnings(), err
	}
	return cfg, p.warnings(), nil
}

// load does the work of Load and returns whatever could be decoded, even when
// there were errors (nil only when no YAML could be parsed at all).
func load(path string, env []string) (*Config, *problems) {
	p := &problems{}
	t := newTree(p)
	vars := envMap(env)
	root, sources, patroniEnv := readSources(t, path, vars)
	if root == nil {
		return nil, p
	}
	t.applyEnv(root, vars, patroniEnv)

	cfg := defaults()
	cfg.Sources = sources
	cfg.origin = sources[0]
	d := &decoder{t: t, p: p, pos: cfg.pos}
	d.structure(root, "", reflect.ValueOf(cfg).Elem(), rootHook(d))
	finish(cfg, d)
	check(cfg, p)
	if m, ok := toAny(root).(map[string]any); ok {
		checkKeys(cfg, m, p)
	}
	return cfg, p
}

// readSources parses the file, directory or PATRONI_CONFIGURATION into one
// tree. patroniEnv reports whether PATRONI_* overrides apply.
func readSources(t *tree, path string, env map[string]string) (root *yaml.Node, sources []string, patroniEnv bool) {
	inline, hasInline := env[envConfiguration]
	var info fs.FileInfo
	var statErr error
	if path != "" {
		info, statErr = os.Stat(path)
	}
	switch {
	case path != "" && statErr == nil:
		// read below
	case (path == "" || errors.Is(statErr, fs.ErrNotExist)) && hasInline:
		return t.parse(envConfiguration, []byte(inline)), []string{envConfiguration}, false
	case path == "":
		return t.emptyMapping("environment"), []string{"environment"}, true
	default:
		t.p.errorf(Position{File: path}, "", "cannot read configuration: %v", unwrapPath(statErr))
		return nil, nil, false
	}
	files := []string{path}
	if info.IsDir() {
		files = yamlFiles(t, path)
		if files == nil {
			return nil, nil, false
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.p.errorf(Position{File: f}, "", "cannot read configuration: %v", unwrapPath(err))
			return nil, nil, false
		}
		n := t.parse(f, data)
		if n == nil {
			return nil, nil, false
		}
		if root == nil {
			root = n
		} else {
			merge(root, n)
		}
	}
	return root, files, true
}

// yamlFiles lists dir's *.yml and *.yaml files in alphabetical order.
func yamlFiles(t *tree, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.p.errorf(Position{File: dir}, "", "cannot read configuration directory: %v", unwrapPath(err))
		return nil
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0 {
			if ext := filepath.Ext(name); ext == ".yml" || ext == ".yaml" {
				files = append(files, filepath.Join(dir, name))
			}
		}
	}
	slices.Sort(files)
	if len(files) == 0 {
		t.p.errorf(Position{File: dir}, "", "no *.yml or *.yaml files in the configuration directory")
		return nil
	}
	return files
}

// unwrapPath drops the path from *fs.PathError (the position already names it).
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// unsupportedDCS are Patroni DCS sections pgnoded rejects.
var unsupportedDCS = []string{"consul", "zookeeper", "kubernetes", "exhibitor", "raft"}

// dynamicOnly are keys Patroni reads only from the dynamic configuration.
var dynamicOnly = []string{
	"ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "maximum_lag_on_syncnode",
	"primary_start_timeout", "master_start_timeout", "primary_stop_timeout", "master_stop_timeout",
	"synchronous_mode", "synchronous_mode_strict", "synchronous_node_count", "failsafe_mode",
	"check_timeline", "max_timelines_history", "standby_cluster", "slots", "ignore_slots",
}

// rootHook handles top-level keys that need more than generic decoding.
func rootHook(d *decoder) keyHook {
	return func(key string, k, v *yaml.Node) bool {
		switch {
		case Rule(Local, key) != nil && Rule(Local, key).Class != Honoured:
			// no field: the key table refuses or warns (other DCS sections, citus)
		case slices.Contains(dynamicOnly, key):
			d.p.warnf(d.at(k, v), key, "dynamic-only setting ignored here; set it in bootstrap.dcs (or PATCH /config)")
		default:
			return false
		}
		return true
	}
}

// finish fills the defaults that depend on other keys and normalises values.
func finish(cfg *Config, d *decoder) {
	cfg.Namespace = normalizeNamespace(cfg.Namespace)
	pg := &cfg.PostgreSQL
	if pg.ConfigDir == "" {
		pg.ConfigDir = pg.DataDir
	}
	if pg.Database == "" {
		pg.Database = DefaultDatabase
	}
	if strings.EqualFold(cfg.VIP.Interface, "auto") {
		cfg.VIP.Interface = ""
	}
	cfg.Etcd3.Protocol = strings.ToLower(strings.TrimSpace(cfg.Etcd3.Protocol))
	if cfg.Etcd3.Protocol == "" {
		cfg.Etcd3.Protocol = "http"
	}
	cfg.Watchdog.Mode = normalizeWatchdogMode(cfg.Watchdog.Mode)
	if cfg.Bootstrap.PostBootstrap == "" {
		cfg.Bootstrap.PostBootstrap = cfg.Bootstrap.PostInit
	}
	parseDCS(cfg, d)
}

// normalizeNamespace makes "/pg/", "pg" and "//pg" all "/pg".
func normalizeNamespace(ns string) string {
	parts := strings.FieldsFunc(strings.TrimSpace(ns), func(r rune) bool { return r == '/' })
	return "/" + strings.Join(parts, "/")
}

// normalizeWatchdogMode maps Patroni's spellings (including YAML booleans) to off/automatic/required.
func normalizeWatchdogMode(m string) string {
	switch strings.ToLower(strings.TrimSpace(m)) {
	case "off", "false", "no", "n", "0", "disabled":
		return "off"
	case "automatic", "on", "true", "yes", "y", "1":
		return "automatic"
	case "required":
		return "required"
	}
	return m
}
