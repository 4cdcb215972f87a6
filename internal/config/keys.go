package config

//go:generate go run ../../tools/keysdoc -o ../../docs/config-keys.md

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Class is what pgnoded does with a configuration key.
type Class int

// Key classes. The rule (docs/config-keys.md): a key pgnoded does not act on
// is refused when ignoring it would change what the operator was promised,
// else accepted with a warning that names what is not done.
const (
	Honoured Class = iota + 1 // pgnoded acts on it as Patroni does
	Refused                   // startup, --validate-config, PATCH/PUT /config and a runtime /config refuse it
	Warned                    // accepted; a warning says what is not done
)

// String names the class for the table.
func (c Class) String() string {
	switch c {
	case Honoured:
		return "honoured"
	case Refused:
		return "refused"
	case Warned:
		return "warned"
	}
	return "?"
}

// Where says in which document a key lives.
type Where int

// Documents.
const (
	Local   Where = iota + 1 // the configuration file (or PATRONI_* variables)
	Dynamic                  // bootstrap.dcs in the file and the config key in etcd (/config)
	Own                      // pgnoded's own sections (vip, exporter, pgnoded)
)

// KeyRule is one row of the key table.
type KeyRule struct {
	// Key is the dotted path; "*" matches one segment, "<name>" only names a
	// family for the table (it never matches a written key).
	Key   string
	Where Where
	Class Class
	// Note says what pgnoded does (honoured) or is the message of the refusal
	// or warning: for refusals "pgnoded does not support … (what to do)".
	Note string
	// When decides from the written value whether this use of the key is
	// refused or warned (returning the message, "" meaning Note). nil: always.
	// Rules of class Honoured have no When.
	When func(v any, x keyContext) (msg string, hit bool)
	// Decide replaces Class and When for rows whose outcome depends on the
	// value (watchdog.mode, create_replica_methods): 0 means nothing to say.
	Decide func(v any, x keyContext) (Class, string)
	// Subtree: the rule covers every key below Key (they are not looked at).
	Subtree bool
}

// keyContext is what a When function may look at besides the value.
type keyContext struct {
	key    string         // the key's own name (last path segment)
	parent map[string]any // the mapping holding the key
	local  map[string]any // the whole local configuration; nil for a /config document
	dcs    map[string]any // the dynamic document (bootstrap.dcs or /config)
	// compat4: the node runs with pgnoded.compat 4.1.4 (Patroni 4.x spellings and modes)
	compat4 bool
}

// Rule returns the table row for a key path of the given document, or nil.
func Rule(where Where, key string) *KeyRule {
	parts := strings.Split(key, ".")
	for i := range keyTable {
		r := &keyTable[i]
		if r.Where == where && matchKey(r.Key, parts) {
			return r
		}
	}
	return nil
}

// KeyTable returns every row of the table (a copy), in table order.
func KeyTable() []KeyRule { return slices.Clone(keyTable) }

func matchKey(pattern string, parts []string) bool {
	pp := strings.Split(pattern, ".")
	if len(pp) != len(parts) {
		return false
	}
	for i, p := range pp {
		if p != "*" && p != parts[i] {
			return false
		}
	}
	return true
}

// refusal is the message for a refused feature, in the form every surface uses.
func refusal(what, todo string) string {
	return refusalPrefix + what + " (" + todo + ")"
}

// refusalPrefix starts every refusal message.
const refusalPrefix = "pgnoded does not support "

// truthy reads a boolean setting as cluster.ParseBool does; ok is false when it is not one.
func truthy(v any) (b, ok bool) {
	b, err := cluster.ParseBool(v)
	return b, err == nil
}

// whenTrue hits when the value is a true boolean.
func whenTrue(v any, _ keyContext) (string, bool) {
	b, ok := truthy(v)
	return "", ok && b
}

// whenSet hits when the value is anything but null, false, 0 or empty.
func whenSet(v any, _ keyContext) (string, bool) {
	switch t := v.(type) {
	case nil:
		return "", false
	case string:
		return "", strings.TrimSpace(t) != ""
	case []any:
		return "", len(t) > 0
	case map[string]any:
		return "", len(t) > 0
	}
	if b, ok := truthy(v); ok {
		return "", b
	}
	return "", true
}

// whenNot hits when the value's string form is not one of the given ones.
func whenNot(allowed ...string) func(any, keyContext) (string, bool) {
	return func(v any, _ keyContext) (string, bool) {
		return "", !slices.Contains(allowed, fmt.Sprint(v))
	}
}

// whenSyncMode hits only together with synchronous_mode on: these keys have
// no effect in Patroni without it either.
func whenSyncMode(_ any, x keyContext) (string, bool) {
	if x.dcs == nil {
		return "", false
	}
	return "", syncModeOn(x.dcs["synchronous_mode"])
}

func syncModeOn(v any) bool {
	if s, ok := v.(string); ok && strings.EqualFold(strings.TrimSpace(s), "quorum") {
		return true
	}
	b, ok := truthy(v)
	return ok && b
}

// syncMode: on/off (any boolean spelling) is acted on; quorum (Patroni 4.x)
// is acted on under pgnoded.compat 4.1.4 and refused with its reason under
// 3.0.2; anything else is not a mode.
func syncMode(v any, x keyContext) (Class, string) {
	if s, ok := v.(string); ok && strings.EqualFold(strings.TrimSpace(s), "quorum") {
		if x.compat4 {
			return 0, ""
		}
		return Refused, refusal("quorum commit (synchronous_mode: quorum, Patroni 4.x; 3.0.2's patronictl cannot show it)",
			"set synchronous_mode: on, or run with pgnoded.compat: 4.1.4")
	}
	if v == nil {
		return 0, ""
	}
	if _, ok := truthy(v); !ok {
		return Refused, refusal(fmt.Sprintf("synchronous_mode %q", fmt.Sprint(v)), "an unknown mode: set on, off or quorum")
	}
	return 0, ""
}

// syncNodeCount refuses a synchronous_node_count that is not an integer >= 1.
func syncNodeCount(v any, _ keyContext) (Class, string) {
	if v == nil {
		return 0, ""
	}
	if num, ok := v.(json.Number); ok {
		v = num.String()
	}
	n, err := strictInt(v)
	if err != nil || n < 1 {
		return Refused, refusal(fmt.Sprintf("synchronous_node_count %q", fmt.Sprint(v)), "set an integer of at least 1; the default is 1")
	}
	return 0, ""
}

// whenNotLocal hits when a dynamic postgresql key is not also in the local
// postgresql section (Patroni lets the local value win; pgnoded reads only the local one).
func whenNotLocal(key string) func(any, keyContext) (string, bool) {
	return func(_ any, x keyContext) (string, bool) {
		if x.local == nil {
			return "", true
		}
		pg, _ := x.local["postgresql"].(map[string]any)
		_, ok := pg[key]
		return "", !ok
	}
}

// Messages shared by several rows.
const (
	stopTimeout = "not applied: a primary is stopped fast, then immediately after max(retry_timeout, 10 s), in every mode"
	notDone     = "accepted and not acted on"
	onlyLocal   = "pgnoded reads this from the local postgresql section only; set it there"
	noWatchdog  = "pgnoded drives no watchdog device; its fence guard stops postgres if pgnoded stalls"
	logFormat   = "pgnoded writes Patroni's default plain format \"%(asctime)s %(levelname)s: %(message)s\" with \"%Y-%m-%d %H:%M:%S %z\" dates (Pigsty's); another format is not applied"
	sslOpts     = "pgnoded connects with username and password only; this libpq option is not passed"
	roleVar     = "role-specific variants are not applied; pgnoded uses the base setting for every role"
)

// keyTable is every key of Patroni 4.x's configuration (docs/yaml_configuration.rst,
// docs/dynamic_configuration.rst), the 3.x spellings, and pgnoded's own sections.
// Lifting a refusal (a later feature) is changing its row.
var keyTable = []KeyRule{
	// --- global -----------------------------------------------------------------
	{Key: "name", Where: Local, Class: Honoured, Note: "the member name"},
	{Key: "scope", Where: Local, Class: Honoured, Note: "the cluster name (DCS prefix)"},
	{Key: "namespace", Where: Local, Class: Honoured, Note: "the DCS namespace (default /service)"},
	{Key: "thread_pool_size", Where: Local, Class: Warned, Note: "pgnoded has no thread pool; " + notDone},
	{Key: "thread_stack_size", Where: Local, Class: Warned, Note: "pgnoded has no threads to size; " + notDone},
	{Key: "citus", Where: Local, Class: Refused, Subtree: true,
		Note: refusal("Citus (one leader per group)", "remove the citus section; run Citus clusters under Patroni")},

	// --- log ----------------------------------------------------------------------
	{Key: "log.type", Where: Local, Class: Honoured, Note: "plain or json"},
	{Key: "log.level", Where: Local, Class: Honoured, Note: "DEBUG, INFO, WARNING, ERROR, CRITICAL"},
	{Key: "log.dir", Where: Local, Class: Honoured, Note: "writes patroni.log there, rotated"},
	{Key: "log.file_num", Where: Local, Class: Honoured, Note: "rotated files kept"},
	{Key: "log.file_size", Where: Local, Class: Honoured, Note: "rotation size in bytes"},
	{Key: "log.format", Where: Local, Class: Warned, Note: logFormat,
		When: whenNot("%(asctime)s %(levelname)s: %(message)s")},
	{Key: "log.dateformat", Where: Local, Class: Warned, Note: logFormat,
		When: whenNot("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S")},
	{Key: "log.traceback_level", Where: Local, Class: Warned, Note: "pgnoded logs no Python tracebacks; " + notDone},
	{Key: "log.static_fields", Where: Local, Class: Warned, Note: "extra fields are not added to log lines"},
	{Key: "log.max_queue_size", Where: Local, Class: Warned, Note: "pgnoded logs synchronously; " + notDone},
	{Key: "log.mode", Where: Local, Class: Warned, Note: "log files are created with mode 0600 regardless"},
	{Key: "log.loggers", Where: Local, Class: Warned, Note: "per-module log levels are not applied", Subtree: true},
	{Key: "log.deduplicate_heartbeat_logs", Where: Local, Class: Warned, Note: "repeated quiet decisions are logged at DEBUG anyway; " + notDone},

	// --- bootstrap ----------------------------------------------------------------
	{Key: "bootstrap.dcs", Where: Local, Class: Honoured, Note: "written once to /config when the cluster is created; its keys are the dynamic keys below"},
	{Key: "bootstrap.method", Where: Local, Class: Refused,
		Note: "initdb (default) or a custom method whose bootstrap.<method>.command restores the data directory: honoured; a custom method without its command: " +
			refusal("bootstrap.method <name> without bootstrap.<name>.command (Patroni would run initdb instead)", "set bootstrap.<name>.command, or bootstrap.method: initdb"),
		Decide: bootstrapMethod},
	{Key: "bootstrap.<method>", Where: Local, Class: Honoured, Subtree: true,
		Note: "custom bootstrap method: command (with --scope, --datadir unless no_params, and the section's other keys as --key=value), keep_existing_recovery_conf, recovery_conf; postgres recovers to the end, then starts as the primary; an unused section warns"},
	{Key: "bootstrap.initdb", Where: Local, Class: Honoured, Note: "initdb options (flags and name: value)", Subtree: true},
	{Key: "bootstrap.post_bootstrap", Where: Local, Class: Honoured, Note: "run once after the bootstrap (initdb or custom) with the superuser's connection string; a failure fails the bootstrap"},
	{Key: "bootstrap.post_init", Where: Local, Class: Honoured, Note: "3.x spelling of post_bootstrap (used when post_bootstrap is not set)"},
	{Key: "bootstrap.pg_hba", Where: Local, Class: Warned, Note: "3.x bootstrap.pg_hba is not applied; use postgresql.pg_hba", Subtree: true},
	{Key: "bootstrap.users", Where: Local, Class: Warned, Note: "3.x bootstrap.users are not created; create them after bootstrap", Subtree: true},

	// --- DCS --------------------------------------------------------------------------
	{Key: "etcd3.host", Where: Local, Class: Honoured, Note: "one etcd endpoint"},
	{Key: "etcd3.hosts", Where: Local, Class: Honoured, Note: "etcd endpoints (list or comma-separated)"},
	{Key: "etcd3.url", Where: Local, Class: Honoured, Note: "one etcd URL"},
	{Key: "etcd3.protocol", Where: Local, Class: Honoured, Note: "http or https"},
	{Key: "etcd3.username", Where: Local, Class: Honoured, Note: "etcd authentication"},
	{Key: "etcd3.password", Where: Local, Class: Honoured, Note: "etcd authentication"},
	{Key: "etcd3.cacert", Where: Local, Class: Honoured, Note: "etcd TLS"},
	{Key: "etcd3.cert", Where: Local, Class: Honoured, Note: "etcd TLS client certificate"},
	{Key: "etcd3.key", Where: Local, Class: Honoured, Note: "etcd TLS client key"},
	{Key: "etcd3.use_proxies", Where: Local, Class: Warned, Note: "the endpoints are used as given; " + notDone},
	{Key: "etcd3.proxy", Where: Local, Class: Warned, Note: "etcd proxies are not used; list etcd3.hosts"},
	{Key: "etcd3.srv", Where: Local, Class: Warned, Note: "DNS SRV discovery is not done; list etcd3.hosts"},
	{Key: "etcd3.srv_suffix", Where: Local, Class: Warned, Note: "DNS SRV discovery is not done; list etcd3.hosts"},
	{Key: "etcd", Where: Local, Class: Refused, Subtree: true, Note: refusal("the etcd v2 API", "use an etcd3 section")},
	{Key: "consul", Where: Local, Class: Refused, Subtree: true, Note: refusal("the consul DCS", "use an etcd3 section")},
	{Key: "zookeeper", Where: Local, Class: Refused, Subtree: true, Note: refusal("the zookeeper DCS", "use an etcd3 section")},
	{Key: "exhibitor", Where: Local, Class: Refused, Subtree: true, Note: refusal("the exhibitor DCS", "use an etcd3 section")},
	{Key: "kubernetes", Where: Local, Class: Refused, Subtree: true, Note: refusal("the kubernetes DCS", "use an etcd3 section")},
	{Key: "raft", Where: Local, Class: Refused, Subtree: true, Note: refusal("the raft DCS", "use an etcd3 section")},

	// --- postgresql -------------------------------------------------------------------
	{Key: "postgresql.listen", Where: Local, Class: Honoured, Note: "listen_addresses and port"},
	{Key: "postgresql.connect_address", Where: Local, Class: Honoured, Note: "published as conn_url"},
	{Key: "postgresql.proxy_address", Where: Local, Class: Warned, Note: "proxy_url is not published in the member key"},
	{Key: "postgresql.data_dir", Where: Local, Class: Honoured, Note: "the data directory"},
	{Key: "postgresql.config_dir", Where: Local, Class: Honoured, Note: "where postgresql.conf and pg_hba.conf are written"},
	{Key: "postgresql.bin_dir", Where: Local, Class: Honoured, Note: "where postgres, pg_ctl, initdb, pg_basebackup, pg_rewind are run from"},
	{Key: "postgresql.bin_name.*", Where: Local, Class: Warned, Note: "renamed binaries are not used; pgnoded runs the standard names under bin_dir"},
	{Key: "postgresql.pgpass", Where: Local, Class: Honoured, Note: "the passfile written for replication and rewind"},
	{Key: "postgresql.database", Where: Local, Class: Honoured, Note: "the database pgnoded connects to (default postgres)"},
	{Key: "postgresql.use_unix_socket", Where: Local, Class: Warned,
		Note: "pgnoded always connects to the local postgres over its unix socket", When: whenNot("true")},
	{Key: "postgresql.use_unix_socket_repl", Where: Local, Class: Warned,
		Note: "replication and pg_rewind connections from this node use TCP", When: whenTrue},
	{Key: "postgresql.authentication.*.username", Where: Local, Class: Honoured, Note: "superuser, replication and rewind roles"},
	{Key: "postgresql.authentication.*.password", Where: Local, Class: Honoured, Note: "superuser, replication and rewind passwords"},
	{Key: "postgresql.authentication.*.sslmode", Where: Local, Class: Warned, Note: sslOpts},
	{Key: "postgresql.authentication.*.sslkey", Where: Local, Class: Warned, Note: sslOpts},
	{Key: "postgresql.authentication.*.sslpassword", Where: Local, Class: Warned, Note: sslOpts},
	{Key: "postgresql.authentication.*.sslcert", Where: Local, Class: Warned, Note: sslOpts},
	{Key: "postgresql.authentication.*.sslrootcert", Where: Local, Class: Warned, Note: sslOpts},
	{Key: "postgresql.authentication.*.sslcrl", Where: Local, Class: Warned, Note: sslOpts},
	{Key: "postgresql.authentication.*.sslcrldir", Where: Local, Class: Warned, Note: sslOpts},
	{Key: "postgresql.authentication.*.sslnegotiation", Where: Local, Class: Warned, Note: sslOpts},
	{Key: "postgresql.authentication.*.gssencmode", Where: Local, Class: Warned, Note: sslOpts},
	{Key: "postgresql.authentication.*.channel_binding", Where: Local, Class: Warned, Note: sslOpts},
	{Key: "postgresql.callbacks.on_start", Where: Local, Class: Honoured, Note: "run as Patroni runs it"},
	{Key: "postgresql.callbacks.on_stop", Where: Local, Class: Honoured, Note: "run as Patroni runs it"},
	{Key: "postgresql.callbacks.on_restart", Where: Local, Class: Honoured, Note: "run as Patroni runs it"},
	{Key: "postgresql.callbacks.on_reload", Where: Local, Class: Honoured, Note: "run as Patroni runs it"},
	{Key: "postgresql.callbacks.on_role_change", Where: Local, Class: Honoured, Note: "run as Patroni runs it"},
	{Key: "postgresql.pre_promote", Where: Local, Class: Honoured, Note: "run before promotion; a non-zero exit gives the key up"},
	{Key: "postgresql.before_stop", Where: Local, Class: Honoured, Note: "run before postgres stops; its exit status is logged"},
	{Key: "postgresql.create_replica_methods", Where: Local, Class: Honoured,
		Note: "replica creation methods tried in order until one succeeds (default basebackup); reinitialize uses them too"},
	{Key: "postgresql.<method>", Where: Local, Class: Honoured, Subtree: true,
		Note: "custom replica method: command run as the OS user with --scope, --role=replica, --datadir, --connstring (unless no_params) and the section's other keys as --key=value; keep_data, no_leader (3.x no_master)"},
	{Key: "postgresql.basebackup", Where: Local, Class: Honoured, Note: "pg_basebackup options", Subtree: true},
	{Key: "postgresql.parameters", Where: Local, Class: Honoured, Note: "local GUCs; they win over the dynamic ones", Subtree: true},
	{Key: "postgresql.parameters_primary", Where: Local, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.parameters_replica", Where: Local, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.parameters_standby_leader", Where: Local, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_hba", Where: Local, Class: Honoured, Note: "pg_hba.conf is written from these lines", Subtree: true},
	{Key: "postgresql.pg_hba_primary", Where: Local, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_hba_replica", Where: Local, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_hba_standby_leader", Where: Local, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_ident", Where: Local, Class: Honoured, Note: "pg_ident.conf is written from these lines", Subtree: true},
	{Key: "postgresql.pg_ident_primary", Where: Local, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_ident_replica", Where: Local, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_ident_standby_leader", Where: Local, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.recovery_conf", Where: Local, Class: Warned, Note: "extra recovery settings are not written; put them in postgresql.parameters", Subtree: true},
	{Key: "postgresql.custom_conf", Where: Local, Class: Warned, Note: "a custom base configuration file is not included; use postgresql.parameters"},
	{Key: "postgresql.pg_ctl_timeout", Where: Local, Class: Honoured, Note: "bounds starts and stops"},
	{Key: "postgresql.use_pg_rewind", Where: Local, Class: Honoured, Note: "rewind a diverged former primary"},
	{Key: "postgresql.remove_data_directory_on_rewind_failure", Where: Local, Class: Honoured, Note: "re-clone when pg_rewind fails"},
	{Key: "postgresql.remove_data_directory_on_diverged_timelines", Where: Local, Class: Honoured, Note: "re-clone when timelines diverged"},

	// --- restapi / ctl ------------------------------------------------------------------
	{Key: "restapi.listen", Where: Local, Class: Honoured, Note: "the :8008 API's address"},
	{Key: "restapi.connect_address", Where: Local, Class: Honoured, Note: "published as api_url"},
	{Key: "restapi.authentication.username", Where: Local, Class: Honoured, Note: "Basic auth for unsafe endpoints"},
	{Key: "restapi.authentication.password", Where: Local, Class: Honoured, Note: "Basic auth for unsafe endpoints"},
	{Key: "restapi.certfile", Where: Local, Class: Honoured, Note: "HTTPS"},
	{Key: "restapi.keyfile", Where: Local, Class: Honoured, Note: "HTTPS key"},
	{Key: "restapi.keyfile_password", Where: Local, Class: Warned, Note: "the API's own key is not decrypted; use an unencrypted key (pgnodectl and peer calls use it)"},
	{Key: "restapi.cafile", Where: Local, Class: Honoured, Note: "verifies client certificates"},
	{Key: "restapi.verify_client", Where: Local, Class: Honoured, Note: "none, optional, required"},
	{Key: "restapi.allowlist", Where: Local, Class: Honoured, Note: "who may call unsafe endpoints", Subtree: true},
	{Key: "restapi.allowlist_include_members", Where: Local, Class: Honoured, Note: "members may call unsafe endpoints"},
	{Key: "restapi.ciphers", Where: Local, Class: Warned, Note: "Go's default TLS 1.2+ cipher suites are used"},
	{Key: "restapi.http_extra_headers", Where: Local, Class: Warned, Note: "extra response headers are not sent", Subtree: true},
	{Key: "restapi.https_extra_headers", Where: Local, Class: Warned, Note: "extra response headers are not sent", Subtree: true},
	{Key: "restapi.request_queue_size", Where: Local, Class: Warned, Note: "Go's listener backlog is used; " + notDone},
	{Key: "restapi.server_tokens", Where: Local, Class: Warned, Note: "the Server header is not changed"},
	{Key: "restapi.thread_pool_size", Where: Local, Class: Warned, Note: "pgnoded has no thread pool; " + notDone},
	{Key: "ctl.authentication.username", Where: Local, Class: Honoured, Note: "pgnodectl and peer calls"},
	{Key: "ctl.authentication.password", Where: Local, Class: Honoured, Note: "pgnodectl and peer calls"},
	{Key: "ctl.insecure", Where: Local, Class: Honoured, Note: "skip certificate verification in pgnodectl and peer calls"},
	{Key: "ctl.cacert", Where: Local, Class: Honoured, Note: "pgnodectl and peer calls"},
	{Key: "ctl.certfile", Where: Local, Class: Honoured, Note: "pgnodectl and peer calls"},
	{Key: "ctl.keyfile", Where: Local, Class: Honoured, Note: "pgnodectl and peer calls"},
	{Key: "ctl.keyfile_password", Where: Local, Class: Honoured, Note: "pgnodectl and peer calls"},

	// --- watchdog / tags ----------------------------------------------------------------
	{Key: "watchdog.mode", Where: Local, Class: Refused,
		Note: "off: honoured; automatic (written explicitly): warns that " + noWatchdog + "; required: " +
			refusal("a required watchdog device", "set watchdog.mode: off or automatic; the fence guard stands in"),
		Decide: watchdogMode},
	{Key: "watchdog.device", Where: Local, Class: Warned, Note: noWatchdog, When: watchdogOn},
	{Key: "watchdog.safety_margin", Where: Local, Class: Warned, Note: noWatchdog, When: watchdogOn},
	{Key: "tags.nofailover", Where: Local, Class: Honoured, Note: "never becomes primary"},
	{Key: "tags.failover_priority", Where: Local, Class: Honoured, Note: "leader race priority"},
	{Key: "tags.noloadbalance", Where: Local, Class: Honoured, Note: "/replica answers 503"},
	{Key: "tags.clonefrom", Where: Local, Class: Honoured, Note: "preferred clone source"},
	{Key: "tags.replicatefrom", Where: Local, Class: Honoured, Note: "cascading replication"},
	{Key: "tags.nostream", Where: Local, Class: Honoured, Note: "archive recovery only"},
	{Key: "tags.nosync", Where: Local, Class: Honoured, Note: "never picked as synchronous standby"},
	{Key: "tags.sync_priority", Where: Local, Class: Honoured, Note: "4.x: synchronous standby preference, <= 0 never picked (pgnoded.compat 4.1.4; 3.0.2 reads nosync only)"},
	{Key: "tags.*", Where: Local, Class: Honoured, Note: "custom tags are published in the member key"},

	// --- dynamic (bootstrap.dcs and /config) -----------------------------------------------
	{Key: "ttl", Where: Dynamic, Class: Honoured, Note: "leader lease length"},
	{Key: "loop_wait", Where: Dynamic, Class: Honoured, Note: "idle tick of the event-driven loop"},
	{Key: "retry_timeout", Where: Dynamic, Class: Honoured, Note: "bounds DCS and postgres calls"},
	{Key: "maximum_lag_on_failover", Where: Dynamic, Class: Honoured, Note: "replicas further behind do not race"},
	{Key: "max_timelines_history", Where: Dynamic, Class: Honoured, Note: "history key length"},
	{Key: "check_timeline", Where: Dynamic, Class: Honoured, Note: "replicas on an older timeline do not race"},
	{Key: "primary_start_timeout", Where: Dynamic, Class: Honoured, Note: "crash recovery time before failover"},
	{Key: "master_start_timeout", Where: Dynamic, Class: Honoured, Note: "3.x spelling of primary_start_timeout"},
	{Key: "failsafe_mode", Where: Dynamic, Class: Honoured, Note: "DCS failsafe mode"},
	{Key: "pause", Where: Dynamic, Class: Honoured, Note: "maintenance mode"},
	{Key: "primary_race_backoff", Where: Dynamic, Class: Warned, Note: "replicas race at once; the back-off is not applied"},
	{Key: "maximum_lag_on_syncnode", Where: Dynamic, Class: Honoured, Note: "a candidate lagging more is not picked as synchronous standby (<= 0: off)"},
	{Key: "primary_stop_timeout", Where: Dynamic, Class: Warned, Note: stopTimeout, When: whenSyncMode},
	{Key: "master_stop_timeout", Where: Dynamic, Class: Warned, Note: stopTimeout, When: whenSyncMode},
	{Key: "synchronous_node_count", Where: Dynamic, Class: Refused,
		Note: "an integer >= 1: how many synchronous standbys the primary lists; below 1 or not an integer: refused", Decide: syncNodeCount},
	{Key: "synchronous_mode", Where: Dynamic, Class: Refused,
		Note:   "on/off: honoured (the primary keeps synchronous_standby_names and the sync key; only the sync key's members are promoted); quorum: honoured under pgnoded.compat 4.1.4 (ANY n (…) and the sync key's quorum; a candidate needs quorum+1 votes, docs/synchronous-replication.md), refused under 3.0.2; unknown modes: refused",
		Decide: syncMode},
	{Key: "synchronous_mode_strict", Where: Dynamic, Class: Honoured, Note: "with no synchronous standby, commits wait rather than run unprotected"},
	{Key: "standby_cluster", Where: Dynamic, Class: Honoured, Note: "standby cluster: the leader key holder is a standby leader replicating from the remote primary; removing the section promotes it"},
	{Key: "standby_cluster.host", Where: Dynamic, Class: Honoured, Note: "remote primary (several hosts: target_session_attrs=read-write)"},
	{Key: "standby_cluster.port", Where: Dynamic, Class: Honoured, Note: "remote primary's port"},
	{Key: "standby_cluster.primary_slot_name", Where: Dynamic, Class: Honoured, Note: "slot on the remote primary (none when unset, as Patroni)"},
	{Key: "standby_cluster.restore_command", Where: Dynamic, Class: Honoured, Note: "archive recovery on every standby-cluster member"},
	{Key: "standby_cluster.archive_cleanup_command", Where: Dynamic, Class: Honoured, Note: "on every standby-cluster member"},
	{Key: "standby_cluster.recovery_min_apply_delay", Where: Dynamic, Class: Honoured, Note: "on the standby leader"},
	{Key: "standby_cluster.create_replica_methods", Where: Dynamic, Class: Honoured,
		Note: "how the standby leader is created, in order: basebackup from the remote primary, or a postgresql.<name> section's command (empty: postgresql.create_replica_methods)"},
	{Key: "standby_cluster.*", Where: Dynamic, Class: Warned, Note: "not a standby_cluster setting (Patroni ignores it too)"},
	{Key: "member_slots_ttl", Where: Dynamic, Class: Warned, Note: "slots of stopped members are kept until the member key goes (Patroni 3.x behaviour)"},
	{Key: "slots", Where: Dynamic, Class: Warned, Subtree: true, When: logicalSlots,
		Note: "permanent physical slots are created and kept; logical ones are neither created nor synchronised"},
	{Key: "ignore_slots", Where: Dynamic, Class: Warned, Subtree: true,
		Note: "ignore_slots entries are matched by name and type only; database and plugin are not compared", When: ignoreSlotsDetail},
	{Key: "postgresql.use_pg_rewind", Where: Dynamic, Class: Honoured, Note: "rewind a diverged former primary (a local value wins)"},
	{Key: "postgresql.use_slots", Where: Dynamic, Class: Honoured, Note: "replication slots for members"},
	{Key: "postgresql.parameters", Where: Dynamic, Class: Honoured, Note: "cluster-wide GUCs, reloaded on change", Subtree: true},
	{Key: "postgresql.pg_hba", Where: Dynamic, Class: Warned, Subtree: true,
		Note: "pg_hba.conf is written from the local postgresql.pg_hba only; set it there", When: whenNotLocal("pg_hba")},
	{Key: "postgresql.pg_ident", Where: Dynamic, Class: Warned, Subtree: true,
		Note: "pg_ident.conf is written from the local postgresql.pg_ident only; set it there", When: whenNotLocal("pg_ident")},
	{Key: "postgresql.recovery_conf", Where: Dynamic, Class: Warned, Subtree: true, Note: "extra recovery settings are not written; put them in postgresql.parameters"},
	{Key: "postgresql.parameters_primary", Where: Dynamic, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.parameters_replica", Where: Dynamic, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.parameters_standby_leader", Where: Dynamic, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_hba_primary", Where: Dynamic, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_hba_replica", Where: Dynamic, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_hba_standby_leader", Where: Dynamic, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_ident_primary", Where: Dynamic, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_ident_replica", Where: Dynamic, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.pg_ident_standby_leader", Where: Dynamic, Class: Warned, Note: roleVar, Subtree: true},
	{Key: "postgresql.*", Where: Dynamic, Class: Warned, Subtree: true, Note: onlyLocal, When: dynamicPostgresqlOther},
	{Key: "<other>", Where: Dynamic, Class: Honoured, Note: "any other key (e.g. Pigsty's pg_version) is kept in /config as written, as Patroni does"},

	// --- pgnoded's own sections ----------------------------------------------------------
	{Key: "vip.enabled", Where: Own, Class: Honoured, Note: "bind the VIP on the primary (in a standby cluster: on the standby leader, as vip-manager does)"},
	{Key: "vip.address", Where: Own, Class: Warned, Note: "vip.enabled is false: the VIP is not bound", When: vipAddress},
	{Key: "vip.interface", Where: Own, Class: Honoured, Note: "link to bind on (auto: the one holding connect_address)"},
	{Key: "vip.arp_count", Where: Own, Class: Honoured, Note: "gratuitous ARPs sent after binding"},
	{Key: "vip.arp_interval", Where: Own, Class: Honoured, Note: "their spacing"},
	{Key: "exporter.enabled", Where: Own, Class: Honoured, Note: "serve :9630"},
	{Key: "exporter.listen", Where: Own, Class: Honoured, Note: "its address"},
	{Key: "exporter.config", Where: Own, Class: Honoured, Note: "pg_exporter collector file or directory"},
	{Key: "exporter.exclude_databases", Where: Own, Class: Honoured, Note: "databases not scraped"},
	{Key: "exporter.config_search", Where: Own, Class: Honoured, Note: "collector files tried when exporter.config is empty (default /etc/pg_exporter.yml, /etc/pg_exporter)"},
	{Key: "exporter.env_file", Where: Own, Class: Honoured, Note: "pg_exporter's environment file (default /etc/default/pg_exporter); settings pgnoded does not act on are warned by name"},
	{Key: "pgnoded.os_user", Where: Own, Class: Honoured, Note: "user postgres runs as when pgnoded is root"},
	{Key: "pgnoded.compat", Where: Own, Class: Honoured, Note: "wire spellings of 3.0.2 or 4.1.4"},
	{Key: "pgnoded.fence.enabled", Where: Own, Class: Honoured, Note: "the out-of-process fence guard"},
	{Key: "pgnoded.fence.margin", Where: Own, Class: Honoured, Note: "how long before lease expiry the guard acts"},
	{Key: "pgnoded.postgres_log.max_size", Where: Own, Class: Honoured, Note: "rotation of the postmaster's stdout/stderr file"},
	{Key: "pgnoded.postgres_log.keep", Where: Own, Class: Honoured, Note: "rotated copies kept"},
}

// bootstrapMethod refuses a custom bootstrap.method without its command
// (Patroni would quietly run initdb instead).
func bootstrapMethod(v any, x keyContext) (Class, string) {
	name := strings.TrimSpace(fmt.Sprint(v))
	if v == nil || name == "" || name == "initdb" {
		return 0, ""
	}
	section, _ := x.parent[name].(map[string]any)
	if cmd, _ := section["command"].(string); strings.TrimSpace(cmd) != "" {
		return 0, ""
	}
	return Refused, refusal(fmt.Sprintf("bootstrap.method %s without bootstrap.%s.command (Patroni would run initdb instead)", name, name),
		fmt.Sprintf("set bootstrap.%s.command, or bootstrap.method: initdb", name))
}

// watchdogMode: required is refused, an explicit automatic warns, off is honoured.
func watchdogMode(v any, _ keyContext) (Class, string) {
	switch normalizeWatchdogMode(fmt.Sprint(v)) {
	case "required":
		return Refused, refusal("a required watchdog device", "set watchdog.mode: off or automatic; the fence guard stands in")
	case "automatic":
		return Warned, "automatic: " + noWatchdog
	}
	return 0, ""
}

// watchdogOn: the device settings warn unless the watchdog is off.
func watchdogOn(_ any, x keyContext) (string, bool) {
	if m, ok := x.parent["mode"]; ok && normalizeWatchdogMode(fmt.Sprint(m)) == "off" {
		return "", false
	}
	return "", true
}

// vipAddress warns when an address is set but the VIP is disabled.
func vipAddress(v any, x keyContext) (string, bool) {
	if s, _ := v.(string); strings.TrimSpace(s) == "" {
		return "", false
	}
	on, ok := truthy(x.parent["enabled"])
	return "", !ok || !on
}

// logicalSlots hits when a permanent slot is logical (or names a database or plugin).
func logicalSlots(v any, _ keyContext) (string, bool) {
	m, _ := v.(map[string]any)
	for _, e := range m {
		s, _ := e.(map[string]any)
		_, db := s["database"]
		_, plugin := s["plugin"]
		if t, _ := s["type"].(string); t == "logical" || db || plugin {
			return "", true
		}
	}
	return "", false
}

func ignoreSlotsDetail(v any, _ keyContext) (string, bool) {
	list, _ := v.([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		if _, ok := m["database"]; ok {
			return "", true
		}
		if _, ok := m["plugin"]; ok {
			return "", true
		}
	}
	return "", false
}

// dynamicPostgresqlOther: a local postgresql key written in the dynamic
// postgresql section. Patroni lets the local value win; pgnoded reads only the
// local one, so the dynamic value is ignored unless the local one is the same key.
func dynamicPostgresqlOther(v any, x keyContext) (string, bool) {
	return whenNotLocal(x.key)(v, x)
}
