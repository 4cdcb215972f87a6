package cluster

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Patroni 3.0.2 defaults for the dynamic configuration (Config.__DEFAULT_CONFIG in
// Patroni's config.py).
const (
	DefaultTTL                  = 30
	DefaultLoopWait             = 10
	DefaultRetryTimeout         = 10
	DefaultMaximumLagOnFailover = 1048576
	DefaultPrimaryStartTimeout  = 300
)

// DynamicConfig is the cluster-wide configuration stored in the config key
// (seeded once from bootstrap.dcs). Raw keeps every key, known or not, so that
// a round trip through pgnoded loses nothing an operator or Patroni wrote.
type DynamicConfig struct {
	TTL                   int   `json:"ttl"`
	LoopWait              int   `json:"loop_wait"`
	RetryTimeout          int   `json:"retry_timeout"`
	MaximumLagOnFailover  int64 `json:"maximum_lag_on_failover"`
	PrimaryStartTimeout   int   `json:"primary_start_timeout"`
	PrimaryStopTimeout    int   `json:"primary_stop_timeout"`
	CheckTimeline         bool  `json:"check_timeline"`
	MaxTimelinesHistory   int   `json:"max_timelines_history"`
	SynchronousMode       bool  `json:"synchronous_mode"` // on, or quorum (SynchronousQuorum)
	SynchronousModeStrict bool  `json:"synchronous_mode_strict"`
	SynchronousNodeCount  int   `json:"synchronous_node_count"`
	// MaximumLagOnSyncnode: a candidate further behind (bytes) is not picked as
	// synchronous standby; <= 0 is off (Patroni's default -1).
	MaximumLagOnSyncnode int64 `json:"maximum_lag_on_syncnode"`
	FailsafeMode         bool  `json:"failsafe_mode"`
	Pause                bool  `json:"pause"`
	// SynchronousQuorum is Patroni 4.x's synchronous_mode: quorum (quorum
	// commit); SynchronousMode is then true as well, as in 4.x's
	// global_config.is_synchronous_mode.
	SynchronousQuorum bool `json:"-"`

	UsePgRewind bool           `json:"-"` // postgresql.use_pg_rewind
	UseSlots    bool           `json:"-"` // postgresql.use_slots
	Parameters  map[string]any `json:"-"` // postgresql.parameters
	PgHBA       []string       `json:"-"` // postgresql.pg_hba

	// StandbyCluster is the standby_cluster section (nil when absent); see Active.
	StandbyCluster *StandbyCluster `json:"-"`

	Raw map[string]any `json:"-"` // the whole document
}

// DefaultDynamicConfig returns Patroni's defaults.
func DefaultDynamicConfig() DynamicConfig {
	return DynamicConfig{
		TTL: DefaultTTL, LoopWait: DefaultLoopWait, RetryTimeout: DefaultRetryTimeout,
		MaximumLagOnFailover: DefaultMaximumLagOnFailover, PrimaryStartTimeout: DefaultPrimaryStartTimeout,
		SynchronousNodeCount: 1, MaximumLagOnSyncnode: -1, UseSlots: true, Raw: map[string]any{},
	}
}

// TTLDuration etc. are the timing values as durations.
func (c DynamicConfig) TTLDuration() time.Duration { return time.Duration(c.TTL) * time.Second }

// LoopWaitDuration is loop_wait as a duration.
func (c DynamicConfig) LoopWaitDuration() time.Duration {
	return time.Duration(c.LoopWait) * time.Second
}

// RetryTimeoutDuration is retry_timeout as a duration.
func (c DynamicConfig) RetryTimeoutDuration() time.Duration {
	return time.Duration(c.RetryTimeout) * time.Second
}

// ParseDynamicConfig reads a config-key document leniently, as Patroni does:
// booleans accept on/off/yes/no/1/0, integers accept strings; missing keys take defaults.
func ParseDynamicConfig(b []byte) (DynamicConfig, error) {
	c := DefaultDynamicConfig()
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return c, fmt.Errorf("config key is not a JSON object: %w", err)
	}
	if raw == nil {
		raw = map[string]any{}
	}
	return FromMap(raw)
}

// FromMap builds a DynamicConfig from a decoded document (JSON or YAML).
func FromMap(raw map[string]any) (DynamicConfig, error) {
	c := DefaultDynamicConfig()
	c.Raw = raw
	var errs []string
	int64Key := func(key string, dst *int64) {
		if v, ok := raw[key]; ok && v != nil {
			n, err := ParseInt(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", key, err))
				return
			}
			*dst = n
		}
	}
	intKey := func(key string, dst *int) {
		n := int64(*dst)
		int64Key(key, &n)
		*dst = int(n)
	}
	boolKey := func(m map[string]any, key string, dst *bool) {
		if v, ok := m[key]; ok && v != nil {
			b, err := ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", key, err))
				return
			}
			*dst = b
		}
	}
	intKey("ttl", &c.TTL)
	intKey("loop_wait", &c.LoopWait)
	intKey("retry_timeout", &c.RetryTimeout)
	int64Key("maximum_lag_on_failover", &c.MaximumLagOnFailover)
	if _, ok := raw["primary_start_timeout"]; ok {
		intKey("primary_start_timeout", &c.PrimaryStartTimeout)
	} else {
		intKey("master_start_timeout", &c.PrimaryStartTimeout)
	}
	if _, ok := raw["primary_stop_timeout"]; ok {
		intKey("primary_stop_timeout", &c.PrimaryStopTimeout)
	} else {
		intKey("master_stop_timeout", &c.PrimaryStopTimeout)
	}
	intKey("max_timelines_history", &c.MaxTimelinesHistory)
	intKey("synchronous_node_count", &c.SynchronousNodeCount)
	int64Key("maximum_lag_on_syncnode", &c.MaximumLagOnSyncnode)
	boolKey(raw, "check_timeline", &c.CheckTimeline)
	if v, ok := raw["synchronous_mode"].(string); ok && strings.EqualFold(strings.TrimSpace(v), "quorum") {
		c.SynchronousMode, c.SynchronousQuorum = true, true // acted on under compat 4.1.4 (refused by the key table under 3.0.2)
	} else {
		boolKey(raw, "synchronous_mode", &c.SynchronousMode)
	}
	boolKey(raw, "synchronous_mode_strict", &c.SynchronousModeStrict)
	boolKey(raw, "failsafe_mode", &c.FailsafeMode)
	boolKey(raw, "pause", &c.Pause)
	if pg, ok := raw["postgresql"].(map[string]any); ok {
		boolKey(pg, "use_pg_rewind", &c.UsePgRewind)
		boolKey(pg, "use_slots", &c.UseSlots)
		if p, ok := pg["parameters"].(map[string]any); ok {
			c.Parameters = p
		}
		if h, ok := pg["pg_hba"].([]any); ok {
			for _, line := range h {
				c.PgHBA = append(c.PgHBA, fmt.Sprint(line))
			}
		}
	}
	sc, err := parseStandbyCluster(raw)
	if err != nil {
		errs = append(errs, err.Error())
	}
	c.StandbyCluster = sc
	if len(errs) > 0 {
		return c, fmt.Errorf("dynamic config: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// ParseBool reads a boolean setting (config keys, tags, boolean GUCs) given
// as a YAML/JSON boolean, a number (non-zero is true) or a string: on, true,
// yes, 1, y, t / off, false, no, 0, n, f, "" in any case, spaces trimmed; a
// json.Number is read as its text. It is deliberately more lenient than
// Patroni's parse_bool (pyfmt.ParseBool), which takes only str(value) in
// on/true/yes/1/off/false/no/0: postgres's one-letter forms, "" and YAML
// numbers are not refused here. Anything else is an error naming the value.
func ParseBool(v any) (bool, error) {
	if n, ok := v.(json.Number); ok {
		v = n.String()
	}
	switch t := v.(type) {
	case bool:
		return t, nil
	case float64:
		return t != 0, nil
	case int:
		return t != 0, nil
	case int64:
		return t != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "on", "true", "yes", "1", "y", "t":
			return true, nil
		case "off", "false", "no", "0", "n", "f", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("not a boolean: %v", v)
}

// ParseInt parses an integer given as a number or a numeric string.
func ParseInt(v any) (int64, error) {
	switch t := v.(type) {
	case float64:
		return int64(t), nil
	case int:
		return int64(t), nil
	case int64:
		return t, nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("not an integer: %q", t)
		}
		return n, nil
	}
	return 0, fmt.Errorf("not an integer: %v", v)
}
