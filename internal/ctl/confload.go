package ctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/ha/dcs"
)

// ctlOptional are the required keys of a node's configuration that pgnodectl
// never uses, with a placeholder each: an operator's pgnodectl file (like
// Pigsty's patronictl.yml) holds only etcd3, ctl and restapi credentials.
var ctlOptional = map[string][2]string{
	"name":                       {"PATRONI_NAME", "pgnodectl"},
	"scope":                      {"PATRONI_SCOPE", "pgnodectl-no-scope"},
	"restapi.listen":             {"PATRONI_RESTAPI_LISTEN", "127.0.0.1:8008"},
	"restapi.connect_address":    {"PATRONI_RESTAPI_CONNECT_ADDRESS", "127.0.0.1:8008"},
	"postgresql.listen":          {"PATRONI_POSTGRESQL_LISTEN", "127.0.0.1:5432"},
	"postgresql.connect_address": {"PATRONI_POSTGRESQL_CONNECT_ADDRESS", "127.0.0.1:5432"},
	"postgresql.data_dir":        {"PATRONI_POSTGRESQL_DATA_DIR", "/nonexistent"},
	"etcd3":                      {"PATRONI_ETCD3_HOST", "127.0.0.1:2379"},
}

// config loads the configuration once (see loadConfig).
func (a *app) config() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	p, explicit := a.configPath()
	if !explicit {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			p = "" // no file: the environment (PATRONI_*, PATRONI_CONFIGURATION) and -d only
		}
	} else if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("configuration %s does not exist or is not readable (check -c): %w", p, errors.Unwrap(err))
	}
	cfg, err := loadConfig(p, a.env.Environ, a.dcsURL() != "")
	if err != nil && p == "" && a.getenv("PATRONI_CONFIGURATION") == "" {
		return nil, fmt.Errorf("no configuration: %s does not exist (use -c FILE, PGNODECTL_CONFIG or --dcs-url)", DefaultConfigPath)
	}
	if err != nil {
		return nil, err
	}
	a.cfg = cfg
	return cfg, nil
}

// configPath is -c, else PGNODECTL_CONFIG, PATRONICTL_CONFIG_FILE or PGNODED_CONFIG, else the default.
func (a *app) configPath() (string, bool) {
	if a.g.configPath != "" {
		return a.g.configPath, true
	}
	for _, name := range []string{"PGNODECTL_CONFIG", "PATRONICTL_CONFIG_FILE", "PGNODED_CONFIG"} {
		if v := a.getenv(name); v != "" {
			return v, true
		}
	}
	return DefaultConfigPath, false
}

func (a *app) dcsURL() string {
	if a.g.dcsURL != "" {
		return a.g.dcsURL
	}
	return a.getenv("DCS_URL")
}

// loadConfig is config.Load, forgiving the required keys pgnodectl does not
// use: when they are the only problems, it loads again with placeholders for
// them (through PATRONI_* variables) and blanks the name and scope it invented.
func loadConfig(path string, environ []string, haveDCSURL bool) (*config.Config, error) {
	cfg, _, err := config.LoadForTool(path, environ)
	if err == nil {
		return cfg, nil
	}
	extra, ok := placeholders(err, haveDCSURL)
	if !ok {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	env := append(append([]string(nil), environ...), extra...)
	cfg, _, err2 := config.LoadForTool(path, env)
	if err2 != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	for _, kv := range extra {
		switch {
		case strings.HasPrefix(kv, "PATRONI_NAME="):
			cfg.Name = ""
		case strings.HasPrefix(kv, "PATRONI_SCOPE="):
			cfg.Scope = ""
		}
	}
	return cfg, nil
}

// placeholders returns the variables that stand in for the missing keys of
// err, or false when err has any other problem.
func placeholders(err error, haveDCSURL bool) ([]string, bool) {
	errs := config.Errors(err)
	if len(errs) == 0 {
		return nil, false
	}
	var env []string
	for _, e := range errs {
		ph, known := ctlOptional[e.Key]
		switch {
		case !known:
			return nil, false
		case e.Key == "etcd3" && !haveDCSURL:
			return nil, false
		case e.Key != "etcd3" && e.Msg != "required key is missing":
			return nil, false
		}
		env = append(env, ph[0]+"="+ph[1])
	}
	return env, true
}

// etcdTarget is where the cluster keys live and how to authenticate there.
type etcdTarget struct {
	endpoints []string
	namespace string // normalised: "/service"
	username  string
	password  string
	tls       dcs.TLSFiles
}

// target combines the configuration with a --dcs-url override.
func target(cfg *config.Config, dcsURL string) (etcdTarget, error) {
	t := etcdTarget{
		endpoints: cfg.EtcdEndpoints(),
		namespace: cfg.Namespace,
		username:  cfg.Etcd3.Username,
		password:  cfg.Etcd3.Password,
		tls:       dcs.TLSFiles{CACert: cfg.Etcd3.CACert, Cert: cfg.Etcd3.Cert, Key: cfg.Etcd3.Key},
	}
	if t.namespace == "" {
		t.namespace = config.DefaultNamespace
	}
	if dcsURL != "" {
		if err := applyDCSURL(&t, dcsURL, cfg.Etcd3.Protocol); err != nil {
			return t, err
		}
	}
	if len(t.endpoints) == 0 {
		return t, errors.New("no etcd endpoints: set etcd3 in the configuration or use --dcs-url")
	}
	return t, nil
}

// applyDCSURL parses etcd3://[user:pass@]host[:port][,host[:port]...][/namespace]
// (also http:// and https://, or a bare host:port).
func applyDCSURL(t *etcdTarget, raw, protocol string) error {
	rest := raw
	scheme := "etcd3"
	if s, r, ok := strings.Cut(raw, "://"); ok {
		scheme, rest = strings.ToLower(s), r
	}
	switch scheme {
	case "etcd3", "":
		if protocol == "" {
			protocol = "http"
		}
	case "http", "https":
		protocol = scheme
	default:
		return usagef("--dcs-url %q: only etcd3:// (or http://, https://) is supported", raw)
	}
	hosts, ns, _ := strings.Cut(rest, "/")
	if auth, h, ok := strings.Cut(hosts, "@"); ok {
		user, pass, _ := strings.Cut(auth, ":")
		t.username, t.password, hosts = user, pass, h
	}
	var eps []string
	for h := range strings.SplitSeq(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if !strings.Contains(strings.TrimPrefix(h, "["), ":") || strings.HasSuffix(h, "]") {
			h += ":" + config.DefaultEtcdPort
		}
		eps = append(eps, protocol+"://"+h)
	}
	if len(eps) == 0 {
		return usagef("--dcs-url %q names no host", raw)
	}
	t.endpoints = eps
	if ns = strings.Trim(ns, "/"); ns != "" {
		t.namespace = "/" + ns
	}
	return nil
}

// target resolves the etcd target of this invocation.
func (a *app) target() (etcdTarget, error) {
	cfg, err := a.config()
	if err != nil {
		return etcdTarget{}, err
	}
	return target(cfg, a.dcsURL())
}

// store opens the etcd connection once.
func (a *app) store() (store, error) {
	if a.st != nil {
		return a.st, nil
	}
	t, err := a.target()
	if err != nil {
		return nil, err
	}
	open := a.env.openStore
	if open == nil {
		open = openEtcd
	}
	st, err := open(t)
	if err != nil {
		return nil, err
	}
	a.st = st
	return st, nil
}
