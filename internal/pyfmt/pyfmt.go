// Package pyfmt renders and reads values the way Patroni (Python 3) does,
// wherever a client can observe the difference: datetime.isoformat, float
// repr, str(), truthiness and patroni.utils.parse_bool. It imports nothing
// internal, so every package may use it.
//
// Values are those decoded from JSON or YAML. Go's decoders lose one
// distinction Python keeps: a float64 may have been an integer in the
// document ("30") or a float ("30.0"). Integral float64 values below 2^53 are
// taken as integers, the common case; json.Number keeps the text and is
// exact.
package pyfmt

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Isoformat is Python's datetime.isoformat(sep) of an aware datetime:
// microseconds only when non-zero, the UTC offset as +HH:MM (with :SS when the
// offset has seconds). Patroni writes sep 'T' (scheduled_at, schedule,
// history) and ' ' (postmaster_start_time, str() of a datetime).
func Isoformat(t time.Time, sep byte) string {
	b := make([]byte, 0, 40)
	b = t.AppendFormat(b, "2006-01-02")
	b = append(b, sep)
	b = t.AppendFormat(b, "15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		b = appendPadded(b, us, 6)
	}
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	b = append(b, sign)
	b = appendPadded(b, off/3600, 2)
	b = append(b, ':')
	b = appendPadded(b, off%3600/60, 2)
	if off%60 != 0 {
		b = append(b, ':')
		b = appendPadded(b, off%60, 2)
	}
	return string(b)
}

// appendPadded appends n (>= 0) in decimal, zero-padded to width digits.
func appendPadded(b []byte, n, width int) []byte {
	s := strconv.Itoa(n)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// Float is Python's repr() of a float: the shortest digits that round-trip,
// always with a decimal point or an exponent, exponent form outside
// [1e-4, 1e16), and inf, -inf, nan.
func Float(f float64) string {
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

// JSONFloat is a float as Python's json.dumps writes it: repr(), except
// Infinity, -Infinity and NaN.
func JSONFloat(f float64) string {
	switch s := Float(f); s {
	case "inf":
		return "Infinity"
	case "-inf":
		return "-Infinity"
	case "nan":
		return "NaN"
	default:
		return s
	}
}

// IntegralFloat reports whether f is taken as an integer of the document
// (see the package doc): integral and below 2^53 in magnitude.
func IntegralFloat(f float64) bool {
	return f == math.Trunc(f) && math.Abs(f) < 1<<53
}

// Number is Python's str() of a JSON number: an integer literal is an int
// (printed canonically), anything with a fraction or exponent is a float
// (printed with repr). Text that is not a number is returned unchanged.
func Number(n json.Number) string {
	s := n.String()
	if !strings.ContainsAny(s, ".eE") {
		if i, ok := new(big.Int).SetString(s, 10); ok {
			return i.String()
		}
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !math.IsInf(f, 0) {
		return s
	}
	return Float(f)
}

// Str is Python's str() of a value decoded from JSON or YAML: None, True and
// False; strings as they are; numbers as int or float (see Number and the
// package doc); lists and dicts as their repr, dict keys sorted (Go maps keep
// no order, Python's dicts keep the document's).
func Str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return Repr(v)
}

// Repr is Python's repr() of a value decoded from JSON or YAML: as Str, but
// strings quoted.
func Repr(v any) string {
	var b strings.Builder
	writeRepr(&b, v)
	return b.String()
}

func writeRepr(b *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if t {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case string:
		writeStrRepr(b, t)
	case json.Number:
		b.WriteString(Number(t))
	case float64:
		if IntegralFloat(t) {
			b.WriteString(strconv.FormatInt(int64(t), 10))
		} else {
			b.WriteString(Float(t))
		}
	case float32:
		writeRepr(b, float64(t))
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		fmt.Fprintf(b, "%d", t)
	case []any:
		writeItems(b, "[]", len(t), func(i int) { writeRepr(b, t[i]) })
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		writeItems(b, "{}", len(keys), func(i int) {
			writeStrRepr(b, keys[i])
			b.WriteString(": ")
			writeRepr(b, t[keys[i]])
		})
	default:
		fmt.Fprint(b, v)
	}
}

// writeItems writes n items between brackets[0] and brackets[1], separated by ", ".
func writeItems(b *strings.Builder, brackets string, n int, item func(i int)) {
	b.WriteByte(brackets[0])
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		item(i)
	}
	b.WriteByte(brackets[1])
}

// writeStrRepr writes Python's repr() of a str: single quotes unless the text
// holds a single quote and no double one; backslash escapes for the quote,
// backslash, \t \n \r and characters that are not printable.
func writeStrRepr(b *strings.Builder, s string) {
	quote := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	b.WriteByte(quote)
	for i, w := 0, 0; i < len(s); i += w {
		r, width := utf8.DecodeRuneInString(s[i:])
		w = width
		switch {
		case r == utf8.RuneError && width == 1:
			fmt.Fprintf(b, `\x%02x`, s[i])
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || (r < 0x100 && !unicode.IsPrint(r)):
			fmt.Fprintf(b, `\x%02x`, r)
		case !unicode.IsPrint(r) && r != ' ':
			if r > 0xffff {
				fmt.Fprintf(b, `\U%08x`, r)
			} else {
				fmt.Fprintf(b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
}

// Truthy is Python's bool() of a value decoded from JSON or YAML: false for
// None, False, zero, "" and empty lists and dicts, true otherwise.
func Truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case string:
		return t != ""
	case json.Number:
		f, err := t.Float64()
		return err != nil || f != 0
	case float64:
		return t != 0
	case int:
		return t != 0
	case int64:
		return t != 0
	case []any:
		return len(t) > 0
	case map[string]any:
		return len(t) > 0
	}
	return true
}

// ParseBool is patroni.utils.parse_bool: str(value).lower() is one of on,
// true, yes, 1 (true) or off, false, no, 0 (false); ok is false for anything
// else (Python's None), including None itself.
func ParseBool(v any) (value, ok bool) {
	switch strings.ToLower(Str(v)) {
	case "on", "true", "yes", "1":
		return true, true
	case "off", "false", "no", "0":
		return false, true
	}
	return false, false
}
