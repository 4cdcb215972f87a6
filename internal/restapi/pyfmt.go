package restapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Helpers that reproduce how Patroni (Python) renders and interprets values,
// where clients can observe the difference.

// pyDatetime renders an aware datetime like Python: str() with sep ' ',
// isoformat() with sep 'T'; microseconds only when non-zero.
func pyDatetime(t time.Time, sep byte) string {
	b := make([]byte, 0, 40)
	b = t.AppendFormat(b, "2006-01-02")
	b = append(b, sep)
	b = t.AppendFormat(b, "15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		s := strconv.Itoa(us)
		for i := len(s); i < 6; i++ {
			b = append(b, '0')
		}
		b = append(b, s...)
	}
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	b = append(b, sign)
	b = append2(b, off/3600)
	b = append(b, ':')
	b = append2(b, off%3600/60)
	if off%60 != 0 {
		b = append(b, ':')
		b = append2(b, off%60)
	}
	return string(b)
}

func append2(b []byte, n int) []byte {
	return append(b, byte('0'+n/10%10), byte('0'+n%10))
}

// pyEpochSeconds is Python's (dt - epoch).total_seconds() rendered with repr().
func pyEpochSeconds(t time.Time) string {
	return pyFloat(float64(t.UnixMicro()) / 1e6)
}

// pyFloat renders a float like Python's repr(): shortest round-trip digits,
// always with a decimal point or exponent, exponent form outside [1e-4, 1e16).
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	abs := math.Abs(f)
	if abs >= 1e16 || abs < 1e-4 {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

// pyTagString is Python's str(value).lower() for a non-string tag value; strings are returned as-is.
// Integral floats are printed as integers: tags arrive through JSON/YAML where Python would have an int.
func pyTagString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case bool:
		if t {
			return "true"
		}
		return "false"
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1e16 {
			return strconv.FormatInt(int64(t), 10)
		}
		return strings.ToLower(pyFloat(t))
	case float32:
		return pyTagString(float64(t))
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case uint64:
		return strconv.FormatUint(t, 10)
	case json.Number:
		return strings.ToLower(t.String())
	}
	return strings.ToLower(fmt.Sprint(v))
}

// pyStr is Python's str(value) for a value decoded from a JSON request body.
func pyStr(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case string:
		return t
	case bool:
		if t {
			return "True"
		}
		return "False"
	case json.Number:
		return t.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// pyTruthy is Python truthiness for a decoded JSON value.
func pyTruthy(v any) bool { return cluster.Truthy(v) }

// pyParseBool is patroni.utils.parse_bool: str(value).lower() in on/true/yes/1 → true, anything else false.
func pyParseBool(v any) bool {
	if v == nil {
		return false
	}
	switch strings.ToLower(pyStr(v)) {
	case "on", "true", "yes", "1":
		return true
	}
	return false
}

// tagEnabled reads a built-in boolean tag (noloadbalance, nofailover, ...) as
// Patroni's bool(value), except that boolean-looking strings are parsed.
func tagEnabled(tags map[string]any, name string) bool {
	v, ok := tags[name]
	if !ok {
		return false
	}
	if s, isStr := v.(string); isStr {
		if b, err := cluster.ParseBool(s); err == nil {
			return b
		}
	}
	return pyTruthy(v)
}
