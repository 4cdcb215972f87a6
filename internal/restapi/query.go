package restapi

import (
	"net/url"
	"strings"
)

// Query strings are read the way Python's parse_qs reads them: '&'-separated
// pairs, '+' and %XX decoded, pairs without a value or with an empty value
// dropped, and the first value of a repeated key used. The scanner does not
// allocate unless a component needs decoding.

// forEachParam calls fn for each non-blank key=value pair of raw, in order.
// fn returns false to stop.
func forEachParam(raw string, fn func(key, value string) bool) {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, hasEq := strings.Cut(pair, "=")
		if !hasEq || v == "" {
			continue
		}
		k, v = unquotePlus(k), unquotePlus(v)
		if v == "" {
			continue
		}
		if !fn(k, v) {
			return
		}
	}
}

// unquotePlus decodes like urllib.parse.unquote_plus (invalid escapes stay literal).
func unquotePlus(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return strings.ReplaceAll(s, "+", " ")
}

// firstParam returns the first value of key.
func firstParam(raw, key string) (string, bool) {
	var val string
	var found bool
	forEachParam(raw, func(k, v string) bool {
		if k == key {
			val, found = v, true
			return false
		}
		return true
	})
	return val, found
}

// tagsMatch applies the tag_<name>=<value> filters of raw to tags: every
// filtered tag must exist and equal the value (non-strings as str(v).lower()).
func tagsMatch(raw string, tags map[string]any) bool {
	if !strings.Contains(raw, "tag_") {
		return true
	}
	ok := true
	forEachParam(raw, func(k, v string) bool {
		name, isTag := strings.CutPrefix(k, "tag_")
		if !isTag {
			return true
		}
		if first, _ := firstParam(raw, k); first != v {
			return true // a repeated key: parse_qs keeps the first value only
		}
		tv, present := tags[name]
		if !present || tv == nil || pyTagString(tv) != v {
			ok = false
			return false
		}
		return true
	})
	return ok
}
