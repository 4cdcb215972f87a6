package proc

import (
	"fmt"
	"strings"
)

// Options Patroni refuses in bootstrap.initdb and postgresql.basebackup (the
// not_allowed_options of Bootstrap._initdb and Bootstrap.basebackup in Patroni's
// postgresql/bootstrap.py).
var (
	initdbForbidden     = []string{"pgdata", "nosync", "pwfile", "sync-only", "version"}
	basebackupForbidden = []string{"pgdata", "format", "wal-method", "xlog-method", "gzip", "version",
		"compress", "dbname", "host", "port", "username", "password"}
)

// userOptions turns Patroni's option list into command-line flags: a string item
// becomes --item, a one-key map {k: v} becomes --k=v. Forbidden names, maps with
// more than one key and other item types are errors naming the section.
func userOptions(section string, opts []any, forbidden []string) ([]string, error) {
	var out []string
	check := func(name string) error {
		name = strings.TrimSpace(name)
		if name == "" {
			return fmt.Errorf("%s: empty option", section)
		}
		if containsString(forbidden, strings.TrimLeft(name, "-")) {
			return fmt.Errorf("%s: option %q is not allowed", section, name)
		}
		return nil
	}
	for i, item := range opts {
		switch v := item.(type) {
		case string:
			if err := check(v); err != nil {
				return nil, err
			}
			out = append(out, "--"+strings.TrimLeft(strings.TrimSpace(v), "-"))
		case map[string]any:
			if len(v) != 1 {
				return nil, fmt.Errorf("%s: item %d must be a map with exactly one key, got %d keys", section, i, len(v))
			}
			for k, val := range v {
				if err := check(k); err != nil {
					return nil, err
				}
				out = append(out, fmt.Sprintf("--%s=%s", strings.TrimLeft(strings.TrimSpace(k), "-"), formatValue(val)))
			}
		case map[string]string:
			m := make(map[string]any, len(v))
			for k, s := range v {
				m[k] = s
			}
			flags, err := userOptions(section, []any{m}, forbidden)
			if err != nil {
				return nil, err
			}
			out = append(out, flags...)
		default:
			return nil, fmt.Errorf("%s: item %d has unsupported type %T (want a flag name or a one-key map)", section, i, item)
		}
	}
	return out, nil
}
