package restapi

import (
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// Helpers that reproduce how Patroni (Python) renders and interprets values,
// where clients can observe the difference; the formatting itself is pyfmt's.

// pyEpochSeconds is Python's (dt - epoch).total_seconds() rendered with repr().
func pyEpochSeconds(t time.Time) string {
	return pyfmt.Float(float64(t.UnixMicro()) / 1e6)
}

// pyTagString is Python's str(value).lower() for a tag value; strings are returned as-is.
// Integral floats are printed as integers: tags arrive through JSON/YAML where Python would have an int.
func pyTagString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return strings.ToLower(pyfmt.Str(v))
}

// pyParseBool is patroni.utils.parse_bool(value) used as a condition: None (not a boolean) is false.
func pyParseBool(v any) bool {
	b, _ := pyfmt.ParseBool(v)
	return b
}
