package ctl

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Layouts accepted for --scheduled and found in the failover key, with and without a zone.
var (
	zonedLayouts = []string{
		"2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04Z07:00",
		"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04Z07:00",
		"2006-01-02T15:04:05.999999999Z0700", "2006-01-02 15:04:05.999999999Z0700",
		"2006-01-02T15:04:05.999999999 MST", "2006-01-02 15:04:05.999999999 MST",
	}
	localLayouts = []string{
		"2006-01-02T15:04:05.999999999", "2006-01-02T15:04",
		"2006-01-02 15:04:05.999999999", "2006-01-02 15:04", "2006-01-02",
	}
)

var errNoZone = errors.New("no time zone")

// parseISO parses a timestamp that carries its zone.
func parseISO(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range zonedLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	for _, l := range localLayouts {
		if _, err := time.Parse(l, s); err == nil {
			return time.Time{}, errNoZone
		}
	}
	return time.Time{}, fmt.Errorf("unparsable timestamp %q", s)
}

// parseScheduled is patronictl's parse_scheduled: "" or "now" means
// immediately (zero time); a timestamp without a zone is taken in loc.
func parseScheduled(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "now" {
		return time.Time{}, nil
	}
	t, err := parseISO(s)
	if errors.Is(err, errNoZone) {
		for _, l := range localLayouts {
			if t, err = time.ParseInLocation(l, s, loc); err == nil {
				break
			}
		}
	}
	if err != nil {
		return time.Time{}, usagef("Unable to parse scheduled timestamp (%s). It should be in an unambiguous format (e.g. ISO 8601)", s)
	}
	return t, nil
}

// stamp is patronictl's timestamp(): seconds with five fractional digits.
func stamp(t time.Time) string {
	return t.Format("2006-01-02 15:04:05.00000")
}

// stampSeconds is patronictl's timestamp(0).
func stampSeconds(t time.Time) string {
	return t.Format("2006-01-02 15:04:05")
}
