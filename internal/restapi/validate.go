package restapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// Validation that Patroni performs in its REST layer before handing a request
// to the HA loop (api.py do_POST_failover up to is_failover_possible, and
// do_POST_restart with parse_schedule).

// parseTimestamp parses ISO 8601-like timestamps as patronictl and operators send
// them: date, 'T' or ' ', time with optional seconds and fraction, optional zone
// (Z, UTC, GMT, ±HH, ±HHMM, ±HH:MM). hasTZ reports whether a zone was given.
func parseTimestamp(s string) (t time.Time, hasTZ bool, err error) {
	s = strings.TrimSpace(s)
	base := s
	tz := ""
	for _, suffix := range []string{"Z", "UTC", "GMT"} {
		if strings.HasSuffix(s, suffix) {
			base, tz = strings.TrimSpace(strings.TrimSuffix(s, suffix)), "+00:00"
			break
		}
	}
	if tz == "" {
		if i := strings.LastIndexAny(s, "+-"); i > len("2006-01-02") {
			base, tz = strings.TrimSpace(s[:i]), s[i:]
		}
	}
	loc := time.UTC
	if tz != "" {
		off, ok := parseOffset(tz)
		if !ok {
			return time.Time{}, false, fmt.Errorf("bad time zone %q", tz)
		}
		loc = time.FixedZone("", off)
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, base, loc); err == nil {
			if layout == "2006-01-02" && tz != "" {
				break // "2024-01-02+01:00" is not a timestamp
			}
			return t, tz != "", nil
		}
	}
	return time.Time{}, false, fmt.Errorf("cannot parse timestamp %q", s)
}

// parseOffset parses ±HH, ±HHMM or ±HH:MM into seconds east of UTC.
func parseOffset(tz string) (int, bool) {
	sign := 1
	switch tz[0] {
	case '-':
		sign = -1
	case '+':
	default:
		return 0, false
	}
	digits := strings.ReplaceAll(tz[1:], ":", "")
	if len(digits) != 2 && len(digits) != 4 {
		return 0, false
	}
	for _, c := range digits {
		if !unicode.IsDigit(c) {
			return 0, false
		}
	}
	h, _ := strconv.Atoi(digits[:2])
	m := 0
	if len(digits) == 4 {
		m, _ = strconv.Atoi(digits[2:])
	}
	if h > 23 || m > 59 {
		return 0, false
	}
	return sign * (h*3600 + m*60), true
}

// parseSchedule is Patroni's parse_schedule: 400 without a zone, 422 in the past or unparsable.
func parseSchedule(v any, action string, now time.Time) (time.Time, int, string) {
	str, isStr := v.(string)
	if !isStr {
		return time.Time{}, http.StatusUnprocessableEntity, msgUnparsableSchedule
	}
	t, hasTZ, err := parseTimestamp(str)
	switch {
	case err != nil:
		return time.Time{}, http.StatusUnprocessableEntity, msgUnparsableSchedule
	case !hasTZ:
		return time.Time{}, http.StatusBadRequest, "Timezone information is mandatory for the scheduled " + action
	case t.Before(now):
		return time.Time{}, http.StatusUnprocessableEntity, "Cannot schedule " + action + " in the past"
	}
	return t, 0, ""
}

const msgUnparsableSchedule = "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"

// nameOf is a member name sent in a body (Python would use the value as is).
func nameOf(v any) string {
	if v == nil {
		return ""
	}
	return pyfmt.Str(v)
}

// validateSwitchover applies the checks of Patroni's do_POST_failover that
// precede is_failover_possible for action "switchover" or "failover", in
// Patroni's order: candidate, leader, scheduled_at, paused, then (4.x) leader ==
// candidate. It returns the action to perform (4.x turns a failover naming a
// leader into a switchover) or a non-zero code with Patroni's text.
func validateSwitchover(action string, body object, paused bool, compat cluster.Compat, now time.Time) (SwitchoverRequest, string, int, string) {
	leaderV, _ := body.get("leader")
	candV, _ := body.get("candidate")
	if !pyfmt.Truthy(candV) {
		candV, _ = body.get("member")
	}
	schedV, _ := body.get("scheduled_at")
	hasLeader, hasCand, scheduled := pyfmt.Truthy(leaderV), pyfmt.Truthy(candV), pyfmt.Truthy(schedV)
	req := SwitchoverRequest{Leader: nameOf(leaderV), Candidate: nameOf(candV)}
	bad := func(text string) (SwitchoverRequest, string, int, string) {
		return req, action, http.StatusBadRequest, text
	}
	title := strings.ToUpper(action[:1]) + action[1:]

	if action == "failover" && !hasCand {
		return bad("Failover could be performed only to a specific candidate")
	}
	if action == "switchover" && !hasLeader {
		return bad("Switchover could be performed only from a specific leader")
	}
	if compat == cluster.Compat4 {
		if scheduled {
			switch {
			case action == "failover":
				return bad("Failover can't be scheduled")
			case paused:
				return bad("Can't schedule switchover in the paused state")
			}
			t, code, text := parseSchedule(schedV, action, now)
			if code != 0 {
				return req, action, code, text
			}
			req.ScheduledAt = t
		}
		if paused && !hasCand {
			return bad("Switchover is possible only to a specific candidate in a paused state")
		}
		if action == "failover" && hasLeader {
			action = "switchover"
		}
		if hasLeader && hasCand && req.Leader == req.Candidate {
			return bad("Switchover target and source are the same")
		}
		return req, action, 0, ""
	}
	if scheduled {
		switch {
		case !hasLeader:
			return bad("Scheduled " + action + " is possible only from a specific leader")
		case paused:
			return bad("Can't schedule " + action + " in the paused state")
		}
		t, code, text := parseSchedule(schedV, action, now)
		if code != 0 {
			return req, action, code, text
		}
		req.ScheduledAt = t
	}
	if paused && !hasCand {
		return bad(title + " is possible only to a specific candidate in a paused state")
	}
	return req, action, 0, ""
}

// validateRestart applies Patroni's do_POST_restart checks: the paused check,
// then each key in the order sent.
func validateRestart(body object, paused bool, compat cluster.Compat, now time.Time) (RestartRequest, int, string) {
	var req RestartRequest
	if _, ok := body.get("schedule"); ok && paused {
		return req, http.StatusInternalServerError, "Can't schedule restart in the paused state"
	}
	for _, f := range body {
		switch f.key {
		case "schedule":
			t, code, text := parseSchedule(f.val, "restart", now)
			if code != 0 {
				return req, code, text
			}
			req.Schedule = t
		case "role":
			role, _ := f.val.(string)
			if !validRestartRole(role, compat) {
				if compat == cluster.Compat4 {
					return req, http.StatusBadRequest, "PostgreSQL role should be either primary, standby_leader, or replica"
				}
				return req, http.StatusBadRequest, "PostgreSQL role should be either primary or replica"
			}
			req.Role = role
		case "postgres_version":
			if err := checkPostgresVersion(f.val); err != "" {
				return req, http.StatusBadRequest, err
			}
			req.PostgresVersion = pyfmt.Str(f.val)
		case "timeout":
			n, ok := parseUnitInt(pyfmt.Str(f.val), "s")
			if !ok || n <= 0 {
				return req, http.StatusBadRequest, "Timeout should be a positive number of seconds"
			}
			req.Timeout = time.Duration(min(n, int64(1<<62)/int64(time.Second))) * time.Second
		case "restart_pending":
			req.RestartPending = pyfmt.Truthy(f.val)
		default:
			return req, http.StatusBadRequest, "Unknown filter for the scheduled restart: " + f.key
		}
	}
	return req, 0, ""
}

func validRestartRole(role string, compat cluster.Compat) bool {
	if compat == cluster.Compat4 {
		return role == "primary" || role == "standby_leader" || role == "replica"
	}
	return role == "master" || role == "primary" || role == "replica"
}

// checkPostgresVersion is postgres_version_to_int's validation: X.Y (X ≥ 10) or X.Y.Z.
func checkPostgresVersion(v any) string {
	s, ok := v.(string)
	if !ok {
		return "Invalid PostgreSQL version: " + pyfmt.Str(v)
	}
	parts := strings.Split(s, ".")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return "Invalid PostgreSQL version: " + s
		}
		nums[i] = n
	}
	if len(nums) < 2 || len(nums) == 2 && nums[0] < 10 || len(nums) > 3 {
		return "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: " + s
	}
	return ""
}

// validateFailsafe checks a POST /failsafe body: name required, the rest typed.
func validateFailsafe(body object) (FailsafeRequest, string) {
	var req FailsafeRequest
	str := func(key string, required bool) (string, string) {
		v, ok := body.get(key)
		if !ok || v == nil {
			if required {
				return "", key + " is required"
			}
			return "", ""
		}
		s, isStr := v.(string)
		if !isStr || (required && s == "") {
			return "", key + " must be a non-empty string"
		}
		return s, ""
	}
	var msg string
	if req.Name, msg = str("name", true); msg != "" {
		return req, msg
	}
	if req.ConnURL, msg = str("conn_url", false); msg != "" {
		return req, msg
	}
	if req.APIURL, msg = str("api_url", false); msg != "" {
		return req, msg
	}
	if v, ok := body.get("slots"); ok && v != nil {
		m, isMap := v.(map[string]any)
		if !isMap {
			return req, "slots must be an object"
		}
		req.Slots = make(map[string]int64, len(m))
		for name, lsn := range m {
			n, err := cluster.ParseInt(jsonNumberToAny(lsn))
			if err != nil {
				return req, "slots." + name + ": " + err.Error()
			}
			req.Slots[name] = n
		}
	}
	return req, ""
}

// jsonNumberToAny converts a json.Number into int64 (or float64) for cluster.ParseInt.
func jsonNumberToAny(v any) any {
	n, ok := v.(interface{ Int64() (int64, error) })
	if !ok {
		return v
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	return v
}
