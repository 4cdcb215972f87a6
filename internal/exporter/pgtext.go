package exporter

import (
	"bytes"
	"errors"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Type OIDs of PostgreSQL's built-in types whose text form the exporter reads
// (pg_type.dat in PostgreSQL's source; stable across versions).
const (
	oidBool        = 16
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidXID         = 28
	oidCID         = 29
	oidFloat4      = 700
	oidFloat8      = 701
	oidCIDR        = 650
	oidInet        = 869
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidInterval    = 1186
	oidNumeric     = 1700
	oidXID8        = 5069
)

// Session settings the text parsers below rely on, sent at connection start.
// They change how dates and intervals are printed, never what a query computes.
var textSessionParams = map[string]string{
	"datestyle":     "ISO, MDY",
	"intervalstyle": "postgres",
}

// textNumber reads a column value in PostgreSQL's text format as a sample
// value: numbers as they are, booleans 1/0, timestamps as Unix seconds,
// intervals as seconds. ok=false means the value is not a number (the sample
// is dropped). v is not NULL.
func textNumber(oid uint32, v []byte) (float64, bool) {
	switch oid {
	case oidBool:
		return boolFloat(len(v) > 0 && v[0] == 't'), true
	case oidInt2, oidInt4, oidInt8:
		n, err := strconv.ParseInt(string(v), 10, 64)
		return float64(n), err == nil
	case oidOID, oidXID, oidCID, oidXID8:
		n, err := strconv.ParseUint(string(v), 10, 64)
		return float64(n), err == nil
	case oidFloat4, oidFloat8, oidNumeric:
		f, err := strconv.ParseFloat(string(v), 64)
		return f, err == nil || isRangeErr(err)
	case oidTimestamptz, oidTimestamp, oidDate:
		t, ok := textTime(oid, v)
		if !ok {
			return 0, false
		}
		return float64(t.UnixNano()) / 1e9, true
	case oidInterval:
		return textInterval(v)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(v)), 64)
	return f, err == nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func isRangeErr(err error) bool {
	var ne *strconv.NumError
	return errors.As(err, &ne) && ne.Err == strconv.ErrRange
}

// textLabel renders a column value as a label value: text as it is (invalid
// UTF-8 replaced), booleans true/false, floating-point numbers in Go's
// shortest form, timestamps in RFC 3339 UTC, host addresses without their
// full-length mask. v is not NULL.
func textLabel(oid uint32, v []byte) string {
	switch oid {
	case oidBool:
		return strconv.FormatBool(len(v) > 0 && v[0] == 't')
	case oidFloat4:
		if f, err := strconv.ParseFloat(string(v), 32); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 32)
		}
	case oidFloat8, oidNumeric:
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
	case oidTimestamptz, oidTimestamp, oidDate:
		if t, ok := textTime(oid, v); ok {
			return t.UTC().Format(time.RFC3339Nano)
		}
	case oidInet, oidCIDR:
		if p, err := netip.ParsePrefix(string(v)); err == nil && p.IsSingleIP() {
			return p.Addr().String()
		}
	}
	if utf8.Valid(v) {
		return string(v)
	}
	return strings.ToValidUTF8(string(v), "\uFFFD")
}

// textTime parses a date or timestamp printed with DateStyle ISO; infinity
// and BC dates are not times (ok=false).
func textTime(oid uint32, v []byte) (time.Time, bool) {
	s := string(v)
	if oid == oidDate {
		t, err := time.Parse(time.DateOnly, s)
		return t, err == nil
	}
	if oid == oidTimestamp {
		t, err := time.Parse("2006-01-02 15:04:05.999999999", s)
		return t, err == nil
	}
	// The zone is ±hh, ±hh:mm or ±hh:mm:ss after the time of day.
	var layout string
	switch i := strings.LastIndexAny(s, "+-"); {
	case i < len(time.DateOnly):
		return time.Time{}, false
	case len(s)-i == 3:
		layout = "2006-01-02 15:04:05.999999999-07"
	case len(s)-i == 6:
		layout = "2006-01-02 15:04:05.999999999-07:00"
	default:
		layout = "2006-01-02 15:04:05.999999999-07:00:00"
	}
	t, err := time.Parse(layout, s)
	return t, err == nil
}

// textInterval parses an interval printed with IntervalStyle postgres
// ("1 year 2 mons -3 days 04:05:06.5") as seconds, a month counted as 30 days.
func textInterval(v []byte) (float64, bool) {
	var secs float64
	fields := bytes.Fields(v)
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if bytes.IndexByte(f, ':') >= 0 {
			d, ok := clockSeconds(f)
			if !ok {
				return 0, false
			}
			secs += d
			continue
		}
		if i+1 >= len(fields) {
			return 0, false
		}
		n, err := strconv.ParseFloat(string(f), 64)
		if err != nil {
			return 0, false
		}
		i++
		switch unit := string(fields[i]); {
		case strings.HasPrefix(unit, "year"):
			secs += n * 12 * 30 * 86400
		case strings.HasPrefix(unit, "mon"):
			secs += n * 30 * 86400
		case strings.HasPrefix(unit, "day"):
			secs += n * 86400
		default:
			return 0, false
		}
	}
	return secs, true
}

// clockSeconds parses [+-]hh:mm:ss[.ffffff] (hours may exceed 24).
func clockSeconds(f []byte) (float64, bool) {
	sign := 1.0
	switch f[0] {
	case '-':
		sign, f = -1, f[1:]
	case '+':
		f = f[1:]
	}
	parts := bytes.Split(f, []byte{':'})
	if len(parts) != 3 {
		return 0, false
	}
	h, err1 := strconv.ParseUint(string(parts[0]), 10, 64)
	m, err2 := strconv.ParseUint(string(parts[1]), 10, 64)
	s, err3 := strconv.ParseFloat(string(parts[2]), 64)
	if err1 != nil || err2 != nil || err3 != nil || math.IsNaN(s) {
		return 0, false
	}
	return sign * (float64(h)*3600 + float64(m)*60 + s), true
}
