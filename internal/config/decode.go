package config

import (
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// nodeUnmarshaler is implemented by field types with their own YAML shapes.
type nodeUnmarshaler interface {
	unmarshalNode(d *decoder, n *yaml.Node, path string)
}

// keyHook handles a key of a mapping before the generic decoding; it reports
// whether it consumed the key.
type keyHook func(key string, k, v *yaml.Node) bool

// decoder fills Go structs from a node tree, recording where each key was
// written and reporting type errors and unknown keys with their key path.
type decoder struct {
	t   *tree
	p   *problems
	pos map[string]Position
}

var durationType = reflect.TypeFor[time.Duration]()

// at is where the value of a key was written: the environment variable when it
// came from one, else the key's own line.
func (d *decoder) at(k, v *yaml.Node) Position {
	if v != nil && strings.HasPrefix(d.t.src[v], "env ") {
		return d.t.at(v)
	}
	return d.t.at(k)
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.p.errorf(d.t.at(n), path, format, args...)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// value decodes n into rv. A null leaves rv unchanged (its default).
func (d *decoder) value(n *yaml.Node, path string, rv reflect.Value) {
	if rv.CanAddr() {
		if u, ok := rv.Addr().Interface().(nodeUnmarshaler); ok {
			u.unmarshalNode(d, n, path)
			return
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		if rv.Kind() == reflect.Pointer {
			rv.SetZero()
		}
		return
	}
	if rv.Type() == durationType {
		if dur, ok := d.duration(n, path); ok {
			rv.SetInt(int64(dur))
		}
		return
	}
	switch rv.Kind() {
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			rv.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, path, "a boolean"); ok {
			b, err := cluster.ParseBool(s)
			if err != nil {
				d.errorf(n, path, "expected a boolean (true/false, on/off, yes/no), got %q", s)
				return
			}
			rv.SetBool(b)
		}
	case reflect.Int, reflect.Int64:
		if s, ok := d.scalar(n, path, "an integer"); ok {
			i, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
			if err != nil {
				d.errorf(n, path, "expected an integer, got %q", s)
				return
			}
			rv.SetInt(i)
		}
	case reflect.Pointer:
		elem := reflect.New(rv.Type().Elem())
		before := len(d.p.errs)
		d.value(n, path, elem.Elem())
		if len(d.p.errs) == before {
			rv.Set(elem)
		}
	case reflect.Slice:
		d.stringSlice(n, path, rv)
	case reflect.Map:
		d.mapping(n, path, rv)
	case reflect.Struct:
		d.structure(n, path, rv, nil)
	default:
		d.errorf(n, path, "internal: cannot decode into %s", rv.Type())
	}
}

// scalar returns n's text, or reports that a scalar of the given kind was expected.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected %s, got %s", want, describe(n))
		return "", false
	}
	return n.Value, true
}

// duration accepts Go durations ("1s", "500ms") and bare numbers of seconds.
func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.scalar(n, path, "a duration")
	if !ok {
		return 0, false
	}
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), true
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, path, "expected a duration like 1s or 500ms, got %q", s)
		return 0, false
	}
	return dur, true
}

func (d *decoder) stringSlice(n *yaml.Node, path string, rv reflect.Value) {
	if rv.Type().Elem().Kind() != reflect.String {
		d.errorf(n, path, "internal: cannot decode into %s", rv.Type())
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a list, got %s", describe(n))
		return
	}
	out := reflect.MakeSlice(rv.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		if s, ok := d.scalar(item, path+"["+strconv.Itoa(i)+"]", "a string"); ok {
			out = reflect.Append(out, reflect.ValueOf(s).Convert(rv.Type().Elem()))
		}
	}
	rv.Set(out)
}

func (d *decoder) mapping(n *yaml.Node, path string, rv reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	d.record(n, path)
	switch rv.Type().Elem().Kind() {
	case reflect.Interface:
		rv.Set(reflect.ValueOf(toAny(n)))
	case reflect.String:
		m := reflect.MakeMapWithSize(rv.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if s, ok := d.scalar(v, joinPath(path, k.Value), "a string"); ok {
				m.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(s))
			}
		}
		rv.Set(m)
	default:
		d.errorf(n, path, "internal: cannot decode into %s", rv.Type())
	}
}

// record remembers the position of every key below mapping n.
func (d *decoder) record(n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		d.pos[p] = d.at(k, v)
		d.record(v, p)
	}
}

// field describes one struct field that a YAML key maps to.
type field struct {
	index int
	rest  bool // collects keys without a field of their own
}

func fieldsOf(t reflect.Type) (map[string]field, int) {
	fields := map[string]field{}
	rest := -1
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		switch {
		case !f.IsExported() || tag == "-" || tag == "":
		case tag == ",rest":
			rest = i
		default:
			fields[tag] = field{index: i}
		}
	}
	return fields, rest
}

// structure decodes a mapping into a struct. Keys without a field go to the
// struct's ",rest" map when it has one, else they are reported as unknown.
func (d *decoder) structure(n *yaml.Node, path string, rv reflect.Value, hook keyHook) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields, rest := fieldsOf(rv.Type())
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		p := joinPath(path, key)
		d.pos[p] = d.at(k, v)
		if hook != nil && hook(key, k, v) {
			continue
		}
		if f, ok := fields[key]; ok {
			d.value(v, p, rv.Field(f.index))
			continue
		}
		if rest >= 0 {
			m := rv.Field(rest)
			if m.IsNil() {
				m.Set(reflect.MakeMap(m.Type()))
			}
			d.record(v, p)
			val := reflect.New(m.Type().Elem()).Elem()
			if x := toAny(v); x != nil {
				val.Set(reflect.ValueOf(x))
			}
			m.SetMapIndex(reflect.ValueOf(key), val)
			continue
		}
		if !hasRule(p) { // the key table says what happens to it
			d.p.warnf(d.t.at(k), p, "unknown key, ignored")
		}
	}
}
