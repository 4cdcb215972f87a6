package proc

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// managedParam is one GUC Patroni controls (ConfigHandler.CMDLINE_OPTIONS in
// Patroni's postgresql/config.py): it must be equal on every member, so only
// the dynamic configuration may set it, and a value that breaks its constraint
// is replaced by the default.
type managedParam struct {
	name    string
	def     string
	cmdline bool                          // passed on the postgres command line
	norm    func(string) (string, bool)   // normalises a configured value; false: invalid
	fixed   func(c Config) (string, bool) // value that comes from the local config, not parameters
}

// managedParams in Patroni's command-line order.
var managedParams = []managedParam{
	{name: "listen_addresses", cmdline: true, fixed: func(c Config) (string, bool) { return c.ListenAddresses, true }},
	{name: "port", cmdline: true, fixed: func(c Config) (string, bool) { return strconv.Itoa(c.Port), true }},
	{name: "cluster_name", cmdline: true, fixed: func(c Config) (string, bool) { return c.Scope, true }},
	{name: "wal_level", def: "replica", cmdline: true, norm: normWALLevel},
	{name: "hot_standby", def: "on", cmdline: true, fixed: func(Config) (string, bool) { return "on", true }},
	{name: "max_connections", def: "100", cmdline: true, norm: intAtLeast(25)},
	{name: "max_wal_senders", def: "10", cmdline: true, norm: intAtLeast(3)},
	// wal_keep_size is reloadable, so like Patroni it stays off the command line.
	{name: "wal_keep_size", def: "128MB", norm: sizeAtLeastMB(16)},
	{name: "max_prepared_transactions", def: "0", cmdline: true, norm: intAtLeast(0)},
	{name: "max_locks_per_transaction", def: "64", cmdline: true, norm: intAtLeast(32)},
	{name: "track_commit_timestamp", def: "off", cmdline: true, norm: normBool},
	{name: "max_replication_slots", def: "10", cmdline: true, norm: intAtLeast(4)},
	{name: "max_worker_processes", def: "8", cmdline: true, norm: intAtLeast(2)},
	// Patroni 3.0.2 forces wal_log_hints on so pg_rewind always works.
	{name: "wal_log_hints", def: "on", cmdline: true, fixed: func(Config) (string, bool) { return "on", true }},
}

// controlDataParams are the replica settings that may not be lower than the
// primary's (hot standby refuses to start otherwise); pg_controldata names them.
var controlDataParams = map[string]string{
	"max_connections":           "max_connections setting",
	"max_worker_processes":      "max_worker_processes setting",
	"max_wal_senders":           "max_wal_senders setting",
	"max_prepared_transactions": "max_prepared_xacts setting",
	"max_locks_per_transaction": "max_locks_per_xact setting",
}

func isManaged(name string) bool {
	for _, m := range managedParams {
		if m.name == name {
			return true
		}
	}
	return false
}

// effectiveParams is the pure core of what postgres runs with: dynamic GUCs,
// overridden by local ones (except managed ones), then the managed GUCs
// validated and defaulted. On a replica, control holds pg_controldata values
// that raise the five hot-standby-sensitive settings. It returns every GUC for
// postgresql.conf, the managed command-line GUCs in order, and warnings.
func effectiveParams(c Config, dynamic map[string]any, control map[string]string) (map[string]string, []string, []string) {
	params := map[string]string{}
	var warnings []string
	for k, v := range dynamic {
		if v != nil {
			params[strings.ToLower(k)] = formatValue(v)
		}
	}
	for k, v := range c.Parameters {
		name := strings.ToLower(k)
		if isManaged(name) {
			if _, dyn := params[name]; !dyn || params[name] != formatValue(v) {
				warnings = append(warnings, fmt.Sprintf("local parameter %s ignored: it must be set in the dynamic configuration", name))
			}
			continue
		}
		if v != nil {
			params[name] = formatValue(v)
		}
	}
	if seg, ok := params["wal_keep_segments"]; ok {
		if _, hasSize := params["wal_keep_size"]; !hasSize {
			if n, err := strconv.ParseInt(strings.TrimSpace(seg), 10, 64); err == nil {
				params["wal_keep_size"] = fmt.Sprintf("%dMB", n*16)
			}
		}
		delete(params, "wal_keep_segments") // unknown to PG >= 13
	}
	var cmdline []string
	for _, m := range managedParams {
		var val string
		switch {
		case m.fixed != nil:
			val, _ = m.fixed(c)
		default:
			raw, ok := params[m.name]
			val = m.def
			if ok {
				if n, valid := m.norm(raw); valid {
					val = n
				} else {
					warnings = append(warnings, fmt.Sprintf("parameter %s=%q is invalid, using %q", m.name, raw, m.def))
				}
			}
		}
		if label, ok := controlDataParams[m.name]; ok && control != nil {
			have, _ := strconv.ParseInt(val, 10, 64)
			if need, err := strconv.ParseInt(strings.TrimSpace(control[label]), 10, 64); err == nil && need > have {
				warnings = append(warnings, fmt.Sprintf("parameter %s raised from %s to %d as pg_controldata requires", m.name, val, need))
				val = strconv.FormatInt(need, 10)
			}
		}
		params[m.name] = val
		if m.cmdline {
			cmdline = append(cmdline, fmt.Sprintf("--%s=%s", m.name, val))
		}
	}
	if _, ok := params["unix_socket_directories"]; !ok && c.SocketDir != "" {
		params["unix_socket_directories"] = c.SocketDir
	}
	return params, cmdline, warnings
}

// cmdlineParams turns "--name=value" flags back into a map.
func cmdlineParams(flags []string) map[string]string {
	out := map[string]string{}
	for _, f := range flags {
		if name, val, ok := strings.Cut(strings.TrimPrefix(f, "--"), "="); ok && strings.HasPrefix(f, "--") {
			out[strings.ReplaceAll(strings.ToLower(name), "-", "_")] = val
		}
	}
	return out
}

// pendingCmdline reports managed command-line GUCs whose wanted value differs
// from what the running postmaster was started with (postgres itself never
// flags those as pending_restart: the command line outranks the files).
func pendingCmdline(running, wanted map[string]string) map[string]cluster.PendingChange {
	if running == nil || wanted == nil {
		return nil
	}
	var out map[string]cluster.PendingChange
	for _, m := range managedParams {
		if !m.cmdline {
			continue
		}
		old, okOld := running[m.name]
		cur, okNew := wanted[m.name]
		if okOld && okNew && old != cur {
			if out == nil {
				out = map[string]cluster.PendingChange{}
			}
			out[m.name] = cluster.PendingChange{OldValue: old, NewValue: cur}
		}
	}
	return out
}

// formatValue renders a YAML/JSON value as a GUC string.
func formatValue(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		if t {
			return "on"
		}
		return "off"
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1e15 {
			return strconv.FormatInt(int64(t), 10)
		}
		return strconv.FormatFloat(t, 'g', -1, 64)
	case float32:
		return formatValue(float64(t))
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprintf("%d", t)
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = formatValue(e)
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}

func intAtLeast(lo int64) func(string) (string, bool) {
	return func(s string) (string, bool) {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < lo {
			return "", false
		}
		return strconv.FormatInt(n, 10), true
	}
}

// sizeAtLeastMB accepts a size in MB or with a kB/MB/GB/TB unit.
func sizeAtLeastMB(lo float64) func(string) (string, bool) {
	return func(s string) (string, bool) {
		s = strings.TrimSpace(s)
		i := len(s)
		for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
			i--
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return "", false
		}
		mult := map[string]float64{"": 1, "kb": 1.0 / 1024, "mb": 1, "gb": 1024, "tb": 1024 * 1024}[strings.ToLower(strings.TrimSpace(s[i:]))]
		if mult == 0 || n*mult < lo {
			return "", false
		}
		return s, true
	}
}

func normWALLevel(s string) (string, bool) {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "hot_standby", "replica":
		return "replica", true
	case "logical":
		return v, true
	}
	return "", false
}

// normBool renders a boolean GUC as on/off, read as every boolean setting is
// (cluster.ParseBool, which also takes postgres's y/t/n/f, unlike Patroni's parse_bool).
func normBool(s string) (string, bool) {
	b, err := cluster.ParseBool(s)
	if err != nil {
		return "", false
	}
	return formatValue(b), true
}
