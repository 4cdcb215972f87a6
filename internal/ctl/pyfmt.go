package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"go.yaml.in/yaml/v3"

	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

// kv is one entry of an orderedMap.
type kv struct {
	key string
	val any
}

// orderedMap is a JSON object whose keys keep their order (patronictl's rows).
type orderedMap []kv

// pyJSON renders v as Python's json.dumps does by default: ", " and ": "
// separators, non-ASCII escaped, integers without a fraction.
func pyJSON(v any) string {
	var b strings.Builder
	writePyJSON(&b, v)
	return b.String()
}

func writePyJSON(b *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case string:
		writePyString(b, t)
	case int:
		b.WriteString(strconv.Itoa(t))
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case float64:
		if pyfmt.IntegralFloat(t) { // an integer of the JSON document
			b.WriteString(strconv.FormatInt(int64(t), 10))
		} else {
			b.WriteString(pyfmt.JSONFloat(t))
		}
	case json.Number:
		b.WriteString(t.String())
	case orderedMap:
		b.WriteByte('{')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyString(b, e.key)
			b.WriteString(": ")
			writePyJSON(b, e.val)
		}
		b.WriteByte('}')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		om := make(orderedMap, 0, len(keys))
		for _, k := range keys {
			om = append(om, kv{k, t[k]})
		}
		writePyJSON(b, om)
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyJSON(b, e)
		}
		b.WriteByte(']')
	default:
		raw, err := json.Marshal(t)
		if err != nil {
			writePyString(b, fmt.Sprint(t))
			return
		}
		var back any
		if json.Unmarshal(raw, &back) == nil {
			writePyJSON(b, normalize(back))
			return
		}
		b.Write(raw)
	}
}

func writePyString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || (r >= 0x7f && r <= 0xffff):
			fmt.Fprintf(b, `\u%04x`, r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(b, `\u%04x\u%04x`, r1, r2)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// toYAML renders v like PyYAML's safe_dump as patronictl calls it: keys
// sorted, two-space indent, sequences not indented under their key; flow
// style ({a: 1, b: 2}) when flow is set.
func toYAML(v any, flow bool) (string, error) {
	var n yaml.Node
	if err := n.Encode(yamlReady(v)); err != nil {
		return "", fmt.Errorf("format as YAML: %w", err)
	}
	if flow {
		n.Style = yaml.FlowStyle
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(&n); err != nil {
		return "", fmt.Errorf("format as YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("format as YAML: %w", err)
	}
	return buf.String(), nil
}

// yamlReady turns orderedMaps into plain maps (YAML output sorts keys anyway).
func yamlReady(v any) any {
	switch t := v.(type) {
	case orderedMap:
		m := make(map[string]any, len(t))
		for _, e := range t {
			m[e.key] = yamlReady(e.val)
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = yamlReady(e)
		}
		return out
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = yamlReady(e)
		}
		return m
	}
	return v
}

// normalize converts decoded JSON or YAML into one representation so that
// documents compare equal whatever their source: maps with string keys,
// []any, string, bool, nil, int64 for integers and float64 otherwise.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = normalize(e)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = normalize(e)
		}
		return out
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n
		}
		f, _ := t.Float64()
		return f
	case int:
		return int64(t)
	case int32:
		return int64(t)
	case uint64:
		if t <= math.MaxInt64 {
			return int64(t)
		}
		return float64(t)
	case float64:
		if pyfmt.IntegralFloat(t) {
			return int64(t)
		}
		return t
	case time.Time:
		return t.Format(time.RFC3339Nano)
	}
	return v
}
