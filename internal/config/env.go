package config

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Environment variables that name the configuration rather than override a key.
const (
	envConfiguration = "PATRONI_CONFIGURATION"
)

// envValue is how an environment variable's text becomes a node.
type envValue int

const (
	envString     envValue = iota // the text as a string
	envYAML                       // the text parsed as YAML (lists, mappings)
	envListOrText                 // YAML when it starts with '[', else the text
)

// envRule maps an environment variable name to a key path.
type envRule struct {
	path  []string
	value envValue
}

// patroniSections are the PATRONI_<SECTION>_<KEY> prefixes, mapped key by key
// to <section>.<key in lower case>, as Patroni does (Patroni's config.py
// Config._build_environment_configuration; its docs, ENVIRONMENT.rst).
// DCS sections other than etcd3 are mapped too so that the root check can
// reject them with a clear message.
var patroniSections = []string{
	"RESTAPI", "CTL", "POSTGRESQL", "LOG", "ETCD3", "ETCD", "CONSUL", "ZOOKEEPER",
	"KUBERNETES", "EXHIBITOR", "RAFT", "CITUS",
}

var pgUserTypes = []string{"SUPERUSER", "REPLICATION", "REWIND"}

// yamlEnvKeys are the keys whose environment values are YAML documents.
var yamlEnvKeys = map[string]envValue{
	"restapi.allowlist":           envYAML,
	"restapi.http_extra_headers":  envYAML,
	"restapi.https_extra_headers": envYAML,
	"etcd3.hosts":                 envListOrText,
	"exporter.exclude_databases":  envListOrText,
	"exporter.config_search":      envListOrText,
}

// envRuleFor maps one variable name to its key path; ok is false for
// variables that are not configuration overrides.
func envRuleFor(name string, patroni bool) (envRule, bool) {
	lower := func(s string) string { return strings.ToLower(s) }
	var path []string
	switch {
	case patroni && strings.HasPrefix(name, "PATRONI_"):
		path = patroniPath(strings.TrimPrefix(name, "PATRONI_"))
	case strings.HasPrefix(name, "PGNODED_"):
		rest := strings.TrimPrefix(name, "PGNODED_")
		switch {
		case rest == "OS_USER" || rest == "COMPAT":
			path = []string{"pgnoded", lower(rest)}
		case strings.HasPrefix(rest, "FENCE_"):
			path = []string{"pgnoded", "fence", lower(strings.TrimPrefix(rest, "FENCE_"))}
		case strings.HasPrefix(rest, "VIP_"):
			path = []string{"vip", lower(strings.TrimPrefix(rest, "VIP_"))}
		case strings.HasPrefix(rest, "EXPORTER_"):
			path = []string{"exporter", lower(strings.TrimPrefix(rest, "EXPORTER_"))}
		}
	}
	if len(path) == 0 || slices.Contains(path, "") {
		return envRule{}, false
	}
	return envRule{path: path, value: yamlEnvKeys[strings.Join(path, ".")]}, true
}

// patroniPath maps the part after PATRONI_ to a key path, or nil.
func patroniPath(rest string) []string {
	lower := strings.ToLower
	switch rest {
	case "NAME", "SCOPE", "NAMESPACE":
		return []string{lower(rest)}
	case "LOGLEVEL":
		return []string{"log", "level"}
	case "LOGFORMAT":
		return []string{"log", "format"}
	case "LOG_DATEFMT":
		return []string{"log", "dateformat"}
	case "RESTAPI_USERNAME", "RESTAPI_PASSWORD", "CTL_USERNAME", "CTL_PASSWORD":
		section, key, _ := strings.Cut(rest, "_")
		return []string{lower(section), "authentication", lower(key)}
	}
	for _, user := range pgUserTypes {
		if key, ok := strings.CutPrefix(rest, user+"_"); ok {
			return []string{"postgresql", "authentication", lower(user), lower(key)}
		}
	}
	if key, ok := strings.CutPrefix(rest, "POSTGRESQL_BIN_"); ok && key != "" && rest != "POSTGRESQL_BIN_DIR" {
		return []string{"postgresql", "bin_name", lower(key)}
	}
	for _, section := range patroniSections {
		if key, ok := strings.CutPrefix(rest, section+"_"); ok {
			return []string{lower(section), lower(key)}
		}
	}
	return nil
}

// envMap turns KEY=VALUE entries into a map; later entries win, empty values are ignored.
func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

// applyEnv lays the environment overrides over root. PATRONI_* variables are
// skipped when patroni is false (the whole config came from PATRONI_CONFIGURATION).
func (t *tree) applyEnv(root *yaml.Node, env map[string]string, patroni bool) {
	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	// Sorted, so that PATRONI_LOG_LEVEL (later) wins over legacy PATRONI_LOGLEVEL.
	slices.Sort(names)
	for _, name := range names {
		if name == envConfiguration {
			continue
		}
		rule, ok := envRuleFor(name, patroni)
		if !ok {
			if patroni && strings.HasPrefix(name, "PATRONI_") {
				t.p.warnf(Position{File: "env " + name}, "", "unknown environment variable, ignored")
			}
			continue
		}
		source := "env " + name
		if n := t.envNode(env[name], rule, source); n != nil {
			t.set(root, rule.path, n, source)
		}
	}
}

func (t *tree) envNode(text string, rule envRule, source string) *yaml.Node {
	asYAML := rule.value == envYAML ||
		(rule.value == envListOrText && strings.HasPrefix(strings.TrimSpace(text), "["))
	if !asYAML {
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: text}
		t.src[n] = source
		return n
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.p.errorf(Position{File: source}, strings.Join(rule.path, "."), "invalid YAML value: %s",
			strings.TrimPrefix(err.Error(), "yaml: "))
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	n := t.copy(doc.Content[0], source, strings.Join(rule.path, "."))
	zeroLines(n)
	return n
}

// zeroLines clears line numbers of nodes that came from an environment variable.
func zeroLines(n *yaml.Node) {
	n.Line, n.Column = 0, 0
	for _, c := range n.Content {
		zeroLines(c)
	}
}
