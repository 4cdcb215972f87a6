package config

import (
	"bytes"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the size of a configuration tree after alias expansion.
const maxNodes = 1 << 20

// tree parses YAML documents into plain node trees (no aliases, no merge keys,
// no duplicate keys) and remembers which source every node came from, so that
// later errors can name the file and line after several sources were merged.
type tree struct {
	src   map[*yaml.Node]string
	p     *problems
	nodes int
	// copying holds the nodes being copied (the path from the root): an alias
	// to one of them is a recursive alias, which would expand forever.
	copying map[*yaml.Node]bool
}

func newTree(p *problems) *tree {
	return &tree{src: map[*yaml.Node]string{}, p: p, copying: map[*yaml.Node]bool{}}
}

// at is the position of n: its source and line (line 0 for environment values).
func (t *tree) at(n *yaml.Node) Position {
	if n == nil {
		return Position{}
	}
	return Position{File: t.src[n], Line: n.Line}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the messages of the YAML library's parser (as opposed to
// its scanner). For these it reports a 0-based line, one less than the line
// in an editor, so parse adds one.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// parse reads one YAML document whose top level must be a mapping (or empty).
// It returns nil after recording an error.
func (t *tree) parse(file string, data []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		at := Position{File: file}
		msg := err.Error()
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			at.Line, _ = strconv.Atoi(m[1])
			msg = m[2]
			if parserProblems[msg] {
				at.Line++
			}
			// An error at the end of the stream is on the last line, not after it.
			if last := bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n")) + 1; at.Line > last {
				at.Line = last
			}
		}
		t.p.errorf(at, "", "invalid YAML: %s", msg)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return t.emptyMapping(file)
		}
		root = root.Content[0]
	}
	if root.Kind == 0 || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		return t.emptyMapping(file)
	}
	if resolve(root).Kind != yaml.MappingNode {
		t.p.errorf(Position{File: file, Line: root.Line}, "", "the top level must be a mapping of keys, got %s", describe(root))
		return nil
	}
	return t.copy(root, file, "")
}

func (t *tree) emptyMapping(file string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	t.src[n] = file
	return n
}

// resolve follows alias nodes to their anchors.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// copy returns a deep copy of n with aliases expanded, merge keys (<<) applied
// and duplicate keys resolved (the last one wins, with a warning).
func (t *tree) copy(n *yaml.Node, file, path string) *yaml.Node {
	alias := n != nil && n.Kind == yaml.AliasNode
	n = resolve(n)
	if alias && t.copying[n] {
		t.p.errorf(Position{File: file, Line: n.Line}, path, "recursive YAML alias (an anchor used inside itself)")
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	if n != nil {
		t.copying[n] = true
		defer delete(t.copying, n)
	}
	t.nodes++
	if n == nil || t.nodes > maxNodes {
		if t.nodes == maxNodes+1 {
			t.p.errorf(Position{File: file}, "", "document too large after alias expansion")
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	c := *n
	c.Content = nil
	c.Anchor = ""
	switch n.Kind {
	case yaml.SequenceNode:
		for _, item := range n.Content {
			c.Content = append(c.Content, t.copy(item, file, path))
		}
	case yaml.MappingNode:
		c.Content = t.copyPairs(n, file, path)
	}
	t.src[&c] = file
	return &c
}

func (t *tree) copyPairs(n *yaml.Node, file, path string) []*yaml.Node {
	var out []*yaml.Node
	index := map[string]int{} // key -> index of its key node in out
	explicit := map[string]bool{}
	put := func(k, v *yaml.Node, fromMerge bool) {
		kc := t.copy(k, file, path)
		vc := t.copy(v, file, joinPath(path, kc.Value))
		i, seen := index[kc.Value]
		switch {
		case !seen:
			index[kc.Value] = len(out)
			out = append(out, kc, vc)
		case fromMerge:
			// explicit keys and earlier merges win over later merged mappings
		default:
			if explicit[kc.Value] {
				t.p.warnf(Position{File: file, Line: k.Line}, joinPath(path, kc.Value),
					"duplicate key (first at line %d); the last value wins", out[i].Line)
			}
			out[i], out[i+1] = kc, vc
		}
		if !fromMerge {
			explicit[kc.Value] = true
		}
	}
	// Explicit keys first so merged values never replace them.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !isMergeKey(n.Content[i]) {
			put(n.Content[i], n.Content[i+1], false)
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !isMergeKey(n.Content[i]) {
			continue
		}
		v := resolve(n.Content[i+1])
		sources := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			sources = v.Content
		}
		for _, s := range sources {
			s = resolve(s)
			if s.Kind != yaml.MappingNode {
				t.p.errorf(Position{File: file, Line: s.Line}, joinPath(path, "<<"), "merge key needs a mapping, got %s", describe(s))
				continue
			}
			for j := 0; j+1 < len(s.Content); j += 2 {
				put(s.Content[j], s.Content[j+1], true)
			}
		}
	}
	return out
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "!!merge" || k.Tag == "")
}

// merge lays src over dst: mappings merge key by key, anything else is replaced.
func merge(dst, src *yaml.Node) {
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		j := lookup(dst, k.Value)
		switch {
		case j < 0:
			dst.Content = append(dst.Content, k, v)
		case dst.Content[j+1].Kind == yaml.MappingNode && v.Kind == yaml.MappingNode:
			merge(dst.Content[j+1], v)
		default:
			dst.Content[j], dst.Content[j+1] = k, v
		}
	}
}

// lookup returns the index of key's key node in mapping m, or -1.
func lookup(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// set places value at the dotted path in root, creating mappings on the way
// and replacing non-mapping values in the way. New nodes are attributed to source.
func (t *tree) set(root *yaml.Node, path []string, value *yaml.Node, source string) {
	m := root
	for i, key := range path {
		j := lookup(m, key)
		if i == len(path)-1 {
			if j < 0 {
				k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
				t.src[k] = source
				m.Content = append(m.Content, k, value)
			} else {
				m.Content[j+1] = value
			}
			return
		}
		if j < 0 || m.Content[j+1].Kind != yaml.MappingNode {
			k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
			child := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			t.src[k], t.src[child] = source, source
			if j < 0 {
				m.Content = append(m.Content, k, child)
			} else {
				m.Content[j+1] = child
			}
		}
		m = m.Content[lookup(m, key)+1]
	}
}

// toAny converts a node to plain Go values: map[string]any, []any, string,
// int, float64, bool or nil.
func toAny(n *yaml.Node) any {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = toAny(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			s = append(s, toAny(item))
		}
		return s
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return n.Value
		}
		return v
	}
	return nil
}

// describe names a node's kind for error messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Tag == "!!null":
		return "null"
	default:
		return strconv.Quote(n.Value)
	}
}
