package exporter

import (
	"math"
	"testing"
)

func TestTextNumber(t *testing.T) {
	for _, tc := range []struct {
		oid  uint32
		in   string
		want float64
		ok   bool
	}{
		{oidBool, "t", 1, true},
		{oidBool, "f", 0, true},
		{oidInt2, "-7", -7, true},
		{oidInt8, "9007199254740993", 9007199254740992, true},
		{oidXID, "4294967295", 4294967295, true},
		{oidXID8, "18446744073709551615", 18446744073709551615, true},
		{oidFloat8, "1.5e+300", 1.5e300, true},
		{oidFloat4, "-Infinity", math.Inf(-1), true},
		{oidNumeric, "12345678901234567890.125", 12345678901234567890.125, true},
		{oidNumeric, "Infinity", math.Inf(1), true},
		{oidTimestamptz, "1970-01-01 00:01:40+00", 100, true},
		{oidTimestamptz, "1970-01-01 05:31:40.5+05:30", 100.5, true},
		{oidTimestamptz, "1970-01-01 00:00:00-00:00:30", 30, true},
		{oidTimestamptz, "infinity", 0, false},
		{oidTimestamp, "1970-01-02 00:00:00", 86400, true},
		{oidDate, "1970-01-03", 2 * 86400, true},
		{oidDate, "2000-01-01 BC", 0, false},
		{oidInterval, "00:01:00", 60, true},
		{oidInterval, "-00:00:01.25", -1.25, true},
		{oidInterval, "1 year 2 mons 3 days 04:05:06", 14*30*86400 + 3*86400 + 4*3600 + 5*60 + 6, true},
		{oidInterval, "-1 days +02:00:00", -86400 + 7200, true},
		{oidInterval, "1 day", 86400, true},
		{oidInterval, "838:00:00", 838 * 3600, true},
		{oidInterval, "1 fortnight", 0, false},
		{25, " 2.5 ", 2.5, true},
		{25, "abc", 0, false},
		{3220, "0/3000148", 0, false}, // pg_lsn is not a number
	} {
		got, ok := textNumber(tc.oid, []byte(tc.in))
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("textNumber(%d, %q) = %v, %v; want %v, %v", tc.oid, tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if f, ok := textNumber(oidFloat8, []byte("NaN")); !ok || !math.IsNaN(f) {
		t.Errorf("NaN = %v, %v", f, ok)
	}
}

func TestTextLabel(t *testing.T) {
	for _, tc := range []struct {
		oid      uint32
		in, want string
	}{
		{25, "plain", "plain"},
		{25, "bad\xffutf8", "bad\uFFFDutf8"},
		{oidBool, "t", "true"},
		{oidBool, "f", "false"},
		{oidInt4, "42", "42"},
		{oidFloat8, "1000000", "1e+06"},
		{oidFloat4, "0.1", "0.1"},
		{oidNumeric, "2.50", "2.5"},
		{oidTimestamptz, "2024-05-06 07:08:09.5+02", "2024-05-06T05:08:09.5Z"},
		{oidInet, "10.0.0.1", "10.0.0.1"},
		{oidInet, "10.0.0.1/24", "10.0.0.1/24"},
		{oidCIDR, "10.0.0.1/32", "10.0.0.1"},
		{oidCIDR, "fe80::/64", "fe80::/64"},
		{oidInterval, "1 day", "1 day"},
	} {
		if got := textLabel(tc.oid, []byte(tc.in)); got != tc.want {
			t.Errorf("textLabel(%d, %q) = %q, want %q", tc.oid, tc.in, got, tc.want)
		}
	}
}
