package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// dcsIntKeys and dcsBoolKeys are the bootstrap.dcs keys with a type pgnoded checks.
var (
	dcsIntKeys = []string{
		"ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "maximum_lag_on_syncnode",
		"primary_start_timeout", "master_start_timeout", "primary_stop_timeout", "master_stop_timeout",
		"primary_race_backoff", "max_timelines_history", "synchronous_node_count",
	}
	dcsBoolKeys = []string{
		"check_timeline", "synchronous_mode", "synchronous_mode_strict", "failsafe_mode", "pause",
		"postgresql.use_pg_rewind", "postgresql.use_slots",
	}
)

// parseDCS checks the typed keys of bootstrap.dcs (so errors carry their line)
// and parses it into cfg.Bootstrap.Dynamic.
func parseDCS(cfg *Config, d *decoder) {
	raw := cfg.Bootstrap.DCS
	if raw == nil {
		cfg.Bootstrap.Dynamic = cluster.DefaultDynamicConfig()
		return
	}
	bad := false
	for _, key := range dcsIntKeys {
		if v, ok := dig(raw, key); ok && v != nil {
			if _, err := strictInt(v); err != nil {
				cfg.errorf(d.p, "bootstrap.dcs."+key, "%v", err)
				bad = true
			}
		}
	}
	for _, key := range dcsBoolKeys {
		if v, ok := dig(raw, key); ok && v != nil {
			if s, isStr := v.(string); isStr && strings.EqualFold(s, "quorum") {
				continue // refused by the key table
			} else if _, err := cluster.ParseBool(v); err != nil {
				cfg.errorf(d.p, "bootstrap.dcs."+key, "expected a boolean (true/false, on/off, yes/no), got %q", fmt.Sprint(v))
				bad = true
			}
		}
	}
	for _, key := range []string{"postgresql", "postgresql.parameters"} {
		if v, ok := dig(raw, key); ok && v != nil {
			if _, isMap := v.(map[string]any); !isMap {
				cfg.errorf(d.p, "bootstrap.dcs."+key, "expected a mapping, got %s", fmt.Sprint(v))
				bad = true
			}
		}
	}
	dyn, err := cluster.FromMap(raw)
	if err != nil && !bad {
		cfg.errorf(d.p, "bootstrap.dcs", "%v", err)
	}
	cfg.Bootstrap.Dynamic = dyn
}

// dig looks up a dotted key path in nested maps.
func dig(m map[string]any, path string) (any, bool) {
	var cur any = m
	for part := range strings.SplitSeq(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// strictInt accepts integers, integral floats and numeric strings.
func strictInt(v any) (int64, error) {
	switch t := v.(type) {
	case int:
		return int64(t), nil
	case int64:
		return t, nil
	case uint64:
		if t > math.MaxInt64 {
			return 0, fmt.Errorf("integer out of range: %d", t)
		}
		return int64(t), nil
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t), nil
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("expected an integer, got %q", fmt.Sprint(v))
}
