package config

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// CommaList is a list written either as a YAML list or as one comma-separated string.
type CommaList []string

func (c *CommaList) unmarshalNode(d *decoder, n *yaml.Node, path string) {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
	case n.Kind == yaml.ScalarNode:
		var out CommaList
		for part := range strings.SplitSeq(n.Value, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
		*c = out
	case n.Kind == yaml.SequenceNode:
		out := make(CommaList, 0, len(n.Content))
		for i, item := range n.Content {
			if s, ok := d.scalar(item, path+"["+strconv.Itoa(i)+"]", "a string"); ok {
				out = append(out, strings.TrimSpace(s))
			}
		}
		*c = out
	default:
		d.errorf(n, path, "expected a list or a comma-separated string, got %s", describe(n))
	}
}

// Option is one command-line option of initdb or pg_basebackup: a bare flag
// ("data-checksums") or a name with a value ("encoding" = "UTF8").
type Option struct {
	Name     string
	Value    string
	HasValue bool
}

// Arg renders the option as one argument: "--name" or "--name=value".
func (o Option) Arg() string {
	if o.HasValue {
		return "--" + o.Name + "=" + o.Value
	}
	return "--" + o.Name
}

// Options is bootstrap.initdb or postgresql.basebackup: a list of flags and
// one-key mappings, or (basebackup) one mapping of name: value, in file order.
type Options []Option

// Args renders every option with Option.Arg.
func (o Options) Args() []string {
	out := make([]string, len(o))
	for i, opt := range o {
		out[i] = opt.Arg()
	}
	return out
}

// Get returns the value of the named option and whether it is present.
func (o Options) Get(name string) (string, bool) {
	for _, opt := range o {
		if opt.Name == name {
			return opt.Value, true
		}
	}
	return "", false
}

func (o *Options) unmarshalNode(d *decoder, n *yaml.Node, path string) {
	var out Options
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return
		}
		d.errorf(n, path, "expected a list of options (flags or name: value), got %s", describe(n))
		return
	case yaml.MappingNode:
		out = d.optionPairs(n, path)
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			switch {
			case item.Kind == yaml.ScalarNode && item.Tag != "!!null":
				out = append(out, Option{Name: strings.TrimLeft(strings.TrimSpace(item.Value), "-")})
			case item.Kind == yaml.MappingNode && len(item.Content) == 2:
				out = append(out, d.optionPairs(item, p)...)
			default:
				d.errorf(item, p, "expected a flag or a one-key mapping (name: value), got %s", describe(item))
			}
		}
	default:
		d.errorf(n, path, "expected a list of options, got %s", describe(n))
		return
	}
	*o = out
}

func (d *decoder) optionPairs(n *yaml.Node, path string) Options {
	var out Options
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			out = append(out, Option{Name: strings.TrimLeft(k.Value, "-")})
			continue
		}
		if s, ok := d.scalar(v, joinPath(path, k.Value), "a scalar option value"); ok {
			out = append(out, Option{Name: strings.TrimLeft(k.Value, "-"), Value: s, HasValue: true})
		}
	}
	return out
}
