package restapi

import (
	"math"
	"strconv"
	"strings"
)

// parseUnitInt reproduces Patroni's parse_int(value, base_unit): an integer
// (decimal, 0x hex or 0-prefixed octal, strtol(3) style) or a float, followed by
// an optional case-sensitive unit that is converted into baseUnit ("B" or "s").
// ok is false for anything Patroni would answer None for.
func parseUnitInt(value, baseUnit string) (n int64, ok bool) {
	v := strings.TrimSpace(value)
	f, unit, ok := strtol(v)
	if (!ok && strings.HasPrefix(unit, ".")) || (unit != "" && strings.ContainsRune(".eE", rune(unit[0]))) {
		f, unit, ok = strtod(v)
	}
	if !ok {
		return 0, false
	}
	unit = strings.TrimSpace(unit)
	if unit != "" {
		if f, ok = convertToBaseUnit(f, unit, baseUnit); !ok {
			return 0, false
		}
	}
	return roundToInt64(f)
}

// strtol matches a C strtol(base=0) prefix: 0x hex, 0-prefixed octal or decimal.
// It returns the value, the unparsed rest and whether a number was found.
func strtol(s string) (float64, string, bool) {
	i := 0
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	base := 10
	switch {
	case strings.HasPrefix(s[i:], "0x") && len(s) > i+2 && isHex(s[i+2]):
		base = 16
		i += 2
		start = i
		for i < len(s) && isHex(s[i]) {
			i++
		}
	case i < len(s) && s[i] == '0':
		base = 8
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '7' {
			i++
		}
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return 0, s, false
	}
	digits := s[start:i]
	var f float64
	if digits != "" {
		u, err := strconv.ParseUint(digits, base, 64)
		if err != nil { // out of range: Python ints are unbounded, saturate
			f = math.Inf(1)
		} else {
			f = float64(u)
		}
	}
	if neg {
		f = -f
	}
	return f, s[i:], true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// strtod matches ^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)? as Patroni's strtod does.
func strtod(s string) (float64, string, bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := func(j int) int {
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j
	}
	intEnd := digits(i)
	end := -1
	if intEnd < len(s) && s[intEnd] == '.' {
		if fracEnd := digits(intEnd + 1); fracEnd > intEnd+1 {
			end = fracEnd
		}
	}
	if end < 0 {
		// no "." followed by digits: the mantissa is the digit run alone
		if intEnd == i {
			return 0, s, false
		}
		end = intEnd
	}
	if end < len(s) && (s[end] == 'e' || s[end] == 'E') {
		j := end + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if k := digits(j); k > j {
			end = k
		}
	}
	f, err := strconv.ParseFloat(s[:end], 64)
	if err != nil && !isRangeErr(err) {
		return 0, s, false
	}
	return f, s[end:], true
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

var unitFactors = map[string]map[string]float64{
	"B": {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40},
	"s": {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600, "d": 86400},
}

// roundOrder: after converting, round to a multiple of the next smaller unit.
var roundOrder = map[string]string{
	"TB": "GB", "GB": "MB", "MB": "kB", "kB": "B",
	"d": "h", "h": "min", "min": "s", "s": "ms", "ms": "us",
}

func convertToBaseUnit(v float64, unit, baseUnit string) (float64, bool) {
	conv, ok := unitFactors[baseUnit]
	if !ok {
		return 0, false
	}
	factor, ok := conv[unit]
	if !ok {
		return 0, false
	}
	v *= factor
	if lower, ok := roundOrder[unit]; ok {
		m := conv[lower]
		v = math.RoundToEven(v/m) * m
	}
	return v, true
}

// roundToInt64 is int(rint(f)) with saturation instead of Python's unbounded ints.
func roundToInt64(f float64) (int64, bool) {
	if math.IsNaN(f) {
		return 0, false
	}
	r := math.RoundToEven(f)
	switch {
	case r >= math.MaxInt64:
		return math.MaxInt64, true
	case r <= math.MinInt64:
		return math.MinInt64, true
	}
	return int64(r), true
}
