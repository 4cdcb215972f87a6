package config

import (
	"fmt"
	"slices"
	"strings"
)

// patroniEnvVars are the variables of Patroni 4.x's docs/ENVIRONMENT.rst, then
// the 3.x spellings Patroni still reads.
var patroniEnvVars = []string{
	"PATRONI_CONFIGURATION", "PATRONI_THREAD_POOL_SIZE", "PATRONI_THREAD_STACK_SIZE", "PATRONI_NAME", "PATRONI_NAMESPACE", "PATRONI_SCOPE",
	"PATRONI_LOG_TYPE", "PATRONI_LOG_LEVEL", "PATRONI_LOG_TRACEBACK_LEVEL", "PATRONI_LOG_FORMAT", "PATRONI_LOG_DATEFORMAT",
	"PATRONI_LOG_STATIC_FIELDS", "PATRONI_LOG_MAX_QUEUE_SIZE", "PATRONI_LOG_DIR", "PATRONI_LOG_MODE", "PATRONI_LOG_FILE_NUM",
	"PATRONI_LOG_FILE_SIZE", "PATRONI_LOG_LOGGERS", "PATRONI_LOG_DEDUPLICATE_HEARTBEAT_LOGS", "PATRONI_CITUS_GROUP", "PATRONI_CITUS_DATABASE",
	"PATRONI_CONSUL_HOST", "PATRONI_CONSUL_URL", "PATRONI_CONSUL_PORT", "PATRONI_CONSUL_SCHEME", "PATRONI_CONSUL_TOKEN",
	"PATRONI_CONSUL_VERIFY", "PATRONI_CONSUL_CACERT", "PATRONI_CONSUL_CERT", "PATRONI_CONSUL_KEY", "PATRONI_CONSUL_DC",
	"PATRONI_CONSUL_CONSISTENCY", "PATRONI_CONSUL_CHECKS", "PATRONI_CONSUL_REGISTER_SERVICE", "PATRONI_CONSUL_SERVICE_TAGS",
	"PATRONI_CONSUL_SERVICE_CHECK_INTERVAL", "PATRONI_CONSUL_SERVICE_CHECK_TLS_SERVER_NAME", "PATRONI_ETCD_PROXY", "PATRONI_ETCD_URL",
	"PATRONI_ETCD_HOSTS", "PATRONI_ETCD_USE_PROXIES", "PATRONI_ETCD_PROTOCOL", "PATRONI_ETCD_HOST", "PATRONI_ETCD_SRV",
	"PATRONI_ETCD_SRV_SUFFIX", "PATRONI_ETCD_USERNAME", "PATRONI_ETCD_PASSWORD", "PATRONI_ETCD_CACERT",
	"PATRONI_ETCD_CERT", "PATRONI_ETCD_KEY", "PATRONI_ZOOKEEPER_HOSTS", "PATRONI_ZOOKEEPER_USE_SSL", "PATRONI_ZOOKEEPER_CACERT",
	"PATRONI_ZOOKEEPER_CERT", "PATRONI_ZOOKEEPER_KEY", "PATRONI_ZOOKEEPER_KEY_PASSWORD", "PATRONI_ZOOKEEPER_VERIFY",
	"PATRONI_ZOOKEEPER_SET_ACLS", "PATRONI_ZOOKEEPER_AUTH_DATA", "PATRONI_EXHIBITOR_HOSTS", "PATRONI_EXHIBITOR_PORT",
	"PATRONI_KUBERNETES_BYPASS_API_SERVICE", "PATRONI_KUBERNETES_NAMESPACE", "PATRONI_KUBERNETES_LABELS", "PATRONI_KUBERNETES_SCOPE_LABEL",
	"PATRONI_KUBERNETES_BOOTSTRAP_LABELS", "PATRONI_KUBERNETES_ROLE_LABEL", "PATRONI_KUBERNETES_LEADER_LABEL_VALUE",
	"PATRONI_KUBERNETES_FOLLOWER_LABEL_VALUE", "PATRONI_KUBERNETES_STANDBY_LEADER_LABEL_VALUE", "PATRONI_KUBERNETES_TMP_ROLE_LABEL",
	"PATRONI_KUBERNETES_USE_ENDPOINTS", "PATRONI_KUBERNETES_POD_IP", "PATRONI_KUBERNETES_PORTS", "PATRONI_KUBERNETES_CACERT",
	"PATRONI_RETRIABLE_HTTP_CODES", "PATRONI_RAFT_SELF_ADDR", "PATRONI_RAFT_BIND_ADDR", "PATRONI_RAFT_PARTNER_ADDRS", "PATRONI_RAFT_DATA_DIR",
	"PATRONI_RAFT_PASSWORD", "PATRONI_RAFT_MIN_TIMEOUT", "PATRONI_RAFT_MAX_TIMEOUT", "PATRONI_RAFT_CONNECTION_TIMEOUT",
	"PATRONI_RAFT_APPEND_ENTRIES_PERIOD", "PATRONI_RAFT_CONNECTION_RETRY_TIME", "PATRONI_RAFT_LEADER_FALLBACK_TIMEOUT",
	"PATRONI_POSTGRESQL_LISTEN", "PATRONI_POSTGRESQL_CONNECT_ADDRESS", "PATRONI_POSTGRESQL_PROXY_ADDRESS", "PATRONI_POSTGRESQL_DATA_DIR",
	"PATRONI_POSTGRESQL_CONFIG_DIR", "PATRONI_POSTGRESQL_BIN_DIR", "PATRONI_POSTGRESQL_BIN_PG_CTL", "PATRONI_POSTGRESQL_BIN_INITDB",
	"PATRONI_POSTGRESQL_BIN_PG_CONTROLDATA", "PATRONI_POSTGRESQL_BIN_PG_BASEBACKUP", "PATRONI_POSTGRESQL_BIN_POSTGRES",
	"PATRONI_POSTGRESQL_BIN_IS_READY", "PATRONI_POSTGRESQL_BIN_PG_REWIND", "PATRONI_POSTGRESQL_PGPASS", "PATRONI_REPLICATION_USERNAME",
	"PATRONI_REPLICATION_PASSWORD", "PATRONI_REPLICATION_SSLMODE", "PATRONI_REPLICATION_SSLKEY", "PATRONI_REPLICATION_SSLPASSWORD",
	"PATRONI_REPLICATION_SSLCERT", "PATRONI_REPLICATION_SSLROOTCERT", "PATRONI_REPLICATION_SSLCRL", "PATRONI_REPLICATION_SSLCRLDIR",
	"PATRONI_REPLICATION_SSLNEGOTIATION", "PATRONI_REPLICATION_GSSENCMODE", "PATRONI_REPLICATION_CHANNEL_BINDING",
	"PATRONI_SUPERUSER_USERNAME", "PATRONI_SUPERUSER_PASSWORD", "PATRONI_SUPERUSER_SSLMODE", "PATRONI_SUPERUSER_SSLKEY",
	"PATRONI_SUPERUSER_SSLPASSWORD", "PATRONI_SUPERUSER_SSLCERT", "PATRONI_SUPERUSER_SSLROOTCERT", "PATRONI_SUPERUSER_SSLCRL",
	"PATRONI_SUPERUSER_SSLCRLDIR", "PATRONI_SUPERUSER_SSLNEGOTIATION", "PATRONI_SUPERUSER_GSSENCMODE", "PATRONI_SUPERUSER_CHANNEL_BINDING",
	"PATRONI_REWIND_USERNAME", "PATRONI_REWIND_PASSWORD", "PATRONI_REWIND_SSLMODE", "PATRONI_REWIND_SSLKEY", "PATRONI_REWIND_SSLPASSWORD",
	"PATRONI_REWIND_SSLCERT", "PATRONI_REWIND_SSLROOTCERT", "PATRONI_REWIND_SSLCRL", "PATRONI_REWIND_SSLCRLDIR",
	"PATRONI_REWIND_SSLNEGOTIATION", "PATRONI_REWIND_GSSENCMODE", "PATRONI_REWIND_CHANNEL_BINDING", "PATRONI_RESTAPI_THREAD_POOL_SIZE",
	"PATRONI_RESTAPI_CONNECT_ADDRESS", "PATRONI_RESTAPI_LISTEN", "PATRONI_RESTAPI_USERNAME", "PATRONI_RESTAPI_PASSWORD",
	"PATRONI_RESTAPI_CERTFILE", "PATRONI_RESTAPI_KEYFILE", "PATRONI_RESTAPI_KEYFILE_PASSWORD", "PATRONI_RESTAPI_CAFILE",
	"PATRONI_RESTAPI_CIPHERS", "PATRONI_RESTAPI_VERIFY_CLIENT", "PATRONI_RESTAPI_ALLOWLIST", "PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS",
	"PATRONI_RESTAPI_HTTP_EXTRA_HEADERS", "PATRONI_RESTAPI_HTTPS_EXTRA_HEADERS", "PATRONI_RESTAPI_REQUEST_QUEUE_SIZE",
	"PATRONI_RESTAPI_SERVER_TOKENS", "PATRONICTL_CONFIG_FILE", "PATRONI_CTL_USERNAME", "PATRONI_CTL_PASSWORD", "PATRONI_CTL_INSECURE",
	"PATRONI_CTL_CACERT", "PATRONI_CTL_CERTFILE", "PATRONI_CTL_KEYFILE", "PATRONI_CTL_KEYFILE_PASSWORD",
	// 3.x spellings and the generic etcd3 form.
	"PATRONI_LOGLEVEL", "PATRONI_LOGFORMAT", "PATRONI_LOG_DATEFMT",
	"PATRONI_ETCD3_HOST", "PATRONI_ETCD3_HOSTS", "PATRONI_ETCD3_URL", "PATRONI_ETCD3_PROTOCOL", "PATRONI_ETCD3_USERNAME",
	"PATRONI_ETCD3_PASSWORD", "PATRONI_ETCD3_CACERT", "PATRONI_ETCD3_CERT", "PATRONI_ETCD3_KEY",
	"PATRONI_<user>_PASSWORD", "PATRONI_<user>_OPTIONS",
}

// EnvRow is one environment variable: the key it sets and that key's class.
type EnvRow struct {
	Name  string
	Key   string // "" when the variable sets no key
	Class Class
	Note  string
}

// EnvTable classifies every PATRONI_* variable by the key it maps to.
func EnvTable() []EnvRow {
	out := make([]EnvRow, 0, len(patroniEnvVars))
	for _, name := range patroniEnvVars {
		out = append(out, envRow(name))
	}
	return out
}

func envRow(name string) EnvRow {
	switch name {
	case envConfiguration:
		return EnvRow{Name: name, Class: Honoured, Note: "the whole configuration as YAML (other PATRONI_* variables are then ignored)"}
	case "PATRONICTL_CONFIG_FILE":
		return EnvRow{Name: name, Class: Honoured, Note: "pgnodectl's configuration file"}
	}
	rule, ok := envRuleFor(name, true)
	if !ok {
		return EnvRow{Name: name, Class: Warned, Note: "sets no key pgnoded reads: warned as an unknown environment variable and ignored"}
	}
	key := strings.Join(rule.path, ".")
	r := ruleFor(key)
	if r == nil {
		return EnvRow{Name: name, Key: key, Class: Warned, Note: "no such key: warned as unknown and ignored"}
	}
	return EnvRow{Name: name, Key: key, Class: r.Class, Note: "as " + r.Key}
}

// ruleFor finds the row of a local key, or of its nearest ancestor with a Subtree row.
func ruleFor(key string) *KeyRule {
	for k := key; k != ""; {
		for _, w := range []Where{Local, Own} {
			if r := Rule(w, k); r != nil && (k == key || r.Subtree) {
				return r
			}
		}
		i := strings.LastIndex(k, ".")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return nil
}

// RenderKeysDoc renders docs/config-keys.md from the key table.
func RenderKeysDoc() string {
	var b strings.Builder
	counts := Counts()
	rows := map[Class]int{}
	for _, r := range keyTable {
		rows[r.Class]++
	}
	envRows := map[Class]int{}
	for _, e := range EnvTable() {
		envRows[e.Class]++
	}
	b.WriteString("# Configuration keys: what pgnoded does with each\n\n")
	b.WriteString("<!-- Generated from internal/config/keys.go by `go generate ./internal/config` " +
		"(tools/keysdoc); a unit test fails when this file is stale. Do not edit by hand. -->\n\n")
	b.WriteString("Every key of Patroni 4.x's configuration (`docs/yaml_configuration.rst`, " +
		"`docs/dynamic_configuration.rst`, `docs/ENVIRONMENT.rst`), the 3.x spellings, and pgnoded's own " +
		"sections, each in one class:\n\n")
	b.WriteString("- **honoured**: pgnoded acts on it as Patroni does.\n")
	b.WriteString("- **refused**: `pgnoded --config` and `--validate-config` exit 2 with " +
		"`file:line: key: pgnoded does not support … (what to do)`; `PATCH`/`PUT /config` answer 400 with the same " +
		"reason and change nothing; found in etcd's `/config` at startup, pgnoded exits 2 with `/config: key: …`; " +
		"appearing there at runtime it is logged as an error at every change, `pgnoded_config_refused{key}` is 1, and " +
		"the node takes no leadership and promotes nothing while it stands (a running primary keeps running).\n")
	b.WriteString("- **warned**: accepted; a warning at startup (and from `--validate-config`) says what is not done.\n\n")
	b.WriteString("A row with a condition (\"when …\") refuses or warns only for the values it names; other values are honoured.\n\n")
	fmt.Fprintf(&b, "| | honoured | refused | warned |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| keys | %d | %d | %d |\n", rows[Honoured], rows[Refused], rows[Warned])
	fmt.Fprintf(&b, "| environment variables | %d | %d | %d |\n", envRows[Honoured], envRows[Refused], envRows[Warned])
	fmt.Fprintf(&b, "| total | %d | %d | %d |\n\n", counts[Honoured], counts[Refused], counts[Warned])

	sections := []struct {
		where Where
		title string
		intro string
	}{
		{Local, "Local keys (the configuration file)", "Keys of the YAML file (or `PATRONI_CONFIGURATION`)."},
		{Dynamic, "Dynamic keys (`bootstrap.dcs` and etcd's `/config`)",
			"The same rules apply to `bootstrap.dcs.<key>` in the file, to the `/config` key in etcd and to `PATCH`/`PUT /config`."},
		{Own, "pgnoded's own sections", "Sections Patroni does not have."},
	}
	for _, s := range sections {
		fmt.Fprintf(&b, "## %s\n\n%s\n\n| key | class | what pgnoded does |\n|---|---|---|\n", s.title, s.intro)
		for _, r := range keyTable {
			if r.Where != s.where {
				continue
			}
			key := "`" + r.Key + "`"
			if r.Subtree {
				key += " (and below)"
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", key, classCell(r), mdEscape(r.Note))
		}
		b.WriteString("\n")
	}
	b.WriteString("A dynamic key written at the top level of the file (e.g. `ttl:`) is warned about and ignored there, as in Patroni; set it in `bootstrap.dcs`.\n\n")
	b.WriteString("## Environment variables\n\n")
	b.WriteString("Each `PATRONI_*` variable sets a key and takes that key's class. pgnoded's own sections read " +
		"`PGNODED_OS_USER`, `PGNODED_COMPAT`, `PGNODED_FENCE_<KEY>`, `PGNODED_VIP_<KEY>`, `PGNODED_EXPORTER_<KEY>` (honoured), " +
		"and `PGNODED_CONFIG` names the file.\n\n")
	b.WriteString("| variable | key | class | note |\n|---|---|---|---|\n")
	for _, e := range EnvTable() {
		key := ""
		if e.Key != "" {
			key = "`" + e.Key + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", e.Name, key, e.Class, mdEscape(e.Note))
	}
	return b.String()
}

func classCell(r KeyRule) string {
	switch {
	case r.Decide != nil:
		return r.Class.String() + " (depends on the value)"
	case r.When != nil:
		return r.Class.String() + " (" + whenText(r) + ")"
	}
	return r.Class.String()
}

// whenText names a row's condition for the table.
func whenText(r KeyRule) string {
	switch r.Key {
	case "log.format", "log.dateformat":
		return "when not Pigsty's format"
	case "bootstrap.method":
		return "when not initdb"
	case "postgresql.use_unix_socket":
		return "when false"
	case "vip.address":
		return "when vip.enabled is false"
	case "watchdog.device", "watchdog.safety_margin":
		return "unless watchdog.mode is off"
	case "ignore_slots":
		return "when an entry has database or plugin"
	case "slots":
		return "when a slot is logical"
	case "synchronous_mode":
		return "when on or quorum"
	}
	if slices.Contains([]string{"maximum_lag_on_syncnode", "primary_stop_timeout", "master_stop_timeout", "synchronous_node_count"}, r.Key) {
		return "with synchronous_mode on"
	}
	if strings.HasPrefix(r.Key, "postgresql.") && r.Where == Dynamic {
		return "unless also set locally"
	}
	if r.Key == "tags.sync_priority" {
		return "when set"
	}
	return "when true"
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
