package pyfmt

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// The expected strings were printed by Python 3 (repr, str, isoformat, json.dumps).

func TestFloat(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{1e16, "1e+16"}, {0.1, "0.1"}, {-0.0 * 1, "0.0"}, {math.Copysign(0, -1), "-0.0"},
		{math.Inf(1), "inf"}, {math.Inf(-1), "-inf"}, {math.NaN(), "nan"},
		{1e-5, "1e-05"}, {0.0001, "0.0001"}, {1e15, "1000000000000000.0"},
		{123456789012345678.0, "1.2345678901234568e+17"}, {1.5e16, "1.5e+16"}, {3, "3.0"},
		{1724873966.352526, "1724873966.352526"}, {9999999999999998.0, "9999999999999998.0"},
	} {
		if got := Float(c.in); got != c.want {
			t.Errorf("Float(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestJSONFloat(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"}, {math.NaN(), "NaN"}, {1e16, "1e+16"}, {0.5, "0.5"},
	} {
		if got := JSONFloat(c.in); got != c.want {
			t.Errorf("JSONFloat(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestIsoformat(t *testing.T) {
	for _, c := range []struct {
		in   time.Time
		sep  byte
		want string
	}{
		{time.Date(2024, 8, 28, 19, 39, 26, 0, time.UTC), 'T', "2024-08-28T19:39:26+00:00"},
		{time.Date(2024, 8, 28, 19, 39, 26, 352526000, time.UTC), ' ', "2024-08-28 19:39:26.352526+00:00"},
		{time.Date(2024, 8, 28, 19, 39, 26, 352526999, time.UTC), 'T', "2024-08-28T19:39:26.352526+00:00"},
		{time.Date(2024, 8, 28, 19, 39, 26, 999, time.UTC), 'T', "2024-08-28T19:39:26+00:00"},
		{time.Date(2024, 8, 28, 19, 39, 26, 1000, time.FixedZone("", -(5*3600+1800))), 'T', "2024-08-28T19:39:26.000001-05:30"},
		{time.Date(2024, 8, 28, 19, 39, 26, 0, time.FixedZone("CEST", 2*3600)), 'T', "2024-08-28T19:39:26+02:00"},
		{time.Date(2024, 8, 28, 19, 39, 26, 0, time.FixedZone("", 5*3600+30*60+15)), 'T', "2024-08-28T19:39:26+05:30:15"},
	} {
		if got := Isoformat(c.in, c.sep); got != c.want {
			t.Errorf("Isoformat(%v, %q) = %q, want %q", c.in, c.sep, got, c.want)
		}
	}
}

func TestStrAndRepr(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
	}{
		{nil, "None"}, {true, "True"}, {false, "False"}, {"abc", "abc"}, {"", ""},
		{float64(30), "30"}, {30.5, "30.5"}, {1e-5, "1e-05"}, {1e20, "1e+20"}, {int64(-7), "-7"},
		{json.Number("30"), "30"}, {json.Number("30.0"), "30.0"}, {json.Number("1E5"), "100000.0"},
		{json.Number("-0"), "0"}, {json.Number("-0.0"), "-0.0"}, {json.Number("12345678901234567890"), "12345678901234567890"},
		{[]any{json.Number("1"), "a", nil, true, 1.5, map[string]any{"b": []any{}, "a": "it's"}},
			`[1, 'a', None, True, 1.5, {'a': "it's", 'b': []}]`},
		{map[string]any{"x": `a"b'c`}, `{'x': 'a"b\'c'}`},
		{[]any{"tab\there\x7f\u00a0é\u200b"}, `['tab\there\x7f\xa0é\u200b']`},
	} {
		if got := Str(c.in); got != c.want {
			t.Errorf("Str(%#v) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := Repr("it's"); got != `"it's"` {
		t.Errorf(`Repr("it's") = %s`, got)
	}
}

func TestTruthy(t *testing.T) {
	for _, v := range []any{nil, false, "", json.Number("0"), json.Number("0.0"), 0.0, 0, int64(0), []any{}, map[string]any{}} {
		if Truthy(v) {
			t.Errorf("Truthy(%#v) = true", v)
		}
	}
	for _, v := range []any{true, "false", "0", json.Number("1"), 0.5, 1, int64(-1), []any{nil}, map[string]any{"a": nil}} {
		if !Truthy(v) {
			t.Errorf("Truthy(%#v) = false", v)
		}
	}
}

func TestParseBool(t *testing.T) {
	for _, c := range []struct {
		in      any
		val, ok bool
	}{
		{"on", true, true}, {"TRUE", true, true}, {"Yes", true, true}, {"1", true, true}, {true, true, true},
		{json.Number("1"), true, true}, {float64(1), true, true}, {int64(1), true, true},
		{"off", false, true}, {"False", false, true}, {"NO", false, true}, {"0", false, true}, {false, false, true},
		{json.Number("0"), false, true},
		// Not Patroni booleans: parse_bool returns None.
		{nil, false, false}, {"", false, false}, {"y", false, false}, {"t", false, false}, {" on", false, false},
		{json.Number("1.0"), false, false}, {json.Number("2"), false, false}, {"foo", false, false}, {[]any{}, false, false},
	} {
		val, ok := ParseBool(c.in)
		if val != c.val || ok != c.ok {
			t.Errorf("ParseBool(%#v) = %v, %v; want %v, %v", c.in, val, ok, c.val, c.ok)
		}
	}
}
