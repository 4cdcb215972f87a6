package exporter

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

//go:embed default_collectors.yml
var defaultCollectorsYAML []byte

// defaultCollectorsFile names the embedded set in error messages.
const defaultCollectorsFile = "default_collectors.yml (embedded)"

// DefaultCollectors returns pgnoded's built-in collector set.
func DefaultCollectors() ([]*Collector, error) {
	return ParseCollectors(defaultCollectorsYAML, defaultCollectorsFile)
}

// LoadCollectors reads a collector file, or every *.yml / *.yaml file of a directory
// merged in file-name order, as pg_exporter does. Branch names must be unique overall.
func LoadCollectors(path string) ([]*Collector, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("collector config dir: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			if !e.IsDir() && (ext == ".yml" || ext == ".yaml") {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		sort.Strings(files)
	}
	var all []*Collector
	seen := map[string]*Collector{}
	var errs []error
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("collector config: %w", err))
			continue
		}
		cs, err := ParseCollectors(data, f)
		if err != nil {
			errs = append(errs, err)
		}
		for _, c := range cs {
			if prev, dup := seen[c.Branch]; dup {
				errs = append(errs, &ConfigError{File: f, Line: c.Line, Collector: c.Branch,
					Msg: fmt.Sprintf("duplicate collector, first defined at %s:%d", prev.File, prev.Line)})
				continue
			}
			seen[c.Branch] = c
			all = append(all, c)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sortCollectors(all)
	return all, nil
}

// ConfigError is a problem in a collector file, located by file, line and collector.
type ConfigError struct {
	File      string
	Line      int
	Collector string // branch name; "" when the problem is outside any collector
	Msg       string
}

func (e *ConfigError) Error() string {
	loc := fmt.Sprintf("%s:%d", e.File, e.Line)
	if e.Collector == "" {
		return loc + ": " + e.Msg
	}
	return fmt.Sprintf("%s: collector %q: %s", loc, e.Collector, e.Msg)
}

// ParseCollectors parses one YAML document of collectors; file names it in errors.
// All problems are reported together, each with file, line and collector name.
func ParseCollectors(data []byte, file string) ([]*Collector, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(data, file, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, nil // empty or comment-only file
	}
	doc := resolve(root.Content[0])
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return nil, nil
	}
	if doc.Kind != yaml.MappingNode {
		return nil, &ConfigError{File: file, Line: doc.Line, Msg: "top level must be a map of collector name to collector"}
	}
	p := &parser{file: file}
	var out []*Collector
	seen := map[string]int{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], resolve(doc.Content[i+1])
		if first, dup := seen[k.Value]; dup {
			p.errf(k, k.Value, "duplicate collector, first defined at line %d", first)
			continue
		}
		seen[k.Value] = k.Line
		if c := p.collector(k, v); c != nil {
			out = append(out, c)
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	sortCollectors(out)
	return out, nil
}

func sortCollectors(cs []*Collector) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Priority < cs[j].Priority })
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)
var topKeyRE = regexp.MustCompile(`^([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*:`)

// syntaxError locates a YAML syntax error and names the collector it falls in:
// the nearest unindented key at or above the reported line.
func syntaxError(data []byte, file string, err error) error {
	ce := &ConfigError{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return ce
	}
	ce.Line, _ = strconv.Atoi(m[1])
	ce.Msg = strings.Replace(ce.Msg, m[0]+": ", "", 1)
	lines := strings.Split(string(data), "\n")
	for i := min(ce.Line, len(lines)) - 1; i >= 0; i-- {
		if k := topKeyRE.FindStringSubmatch(lines[i]); k != nil {
			ce.Collector = k[1]
			break
		}
	}
	return ce
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

type parser struct {
	file string
	errs []error
}

func (p *parser) errf(n *yaml.Node, branch, format string, args ...any) {
	p.errs = append(p.errs, &ConfigError{File: p.file, Line: n.Line, Collector: branch, Msg: fmt.Sprintf(format, args...)})
}

var collectorKeys = []string{"name", "desc", "query", "ttl", "timeout", "priority", "min_version",
	"max_version", "fatal", "skip", "tags", "predicate_queries", "metrics"}

// collector parses one branch; it returns nil when the branch has errors.
func (p *parser) collector(key, v *yaml.Node) *Collector {
	b := key.Value
	nerr := len(p.errs)
	c := &Collector{Branch: b, File: p.file, Line: key.Line}
	if v.Kind != yaml.MappingNode {
		p.errf(key, b, "collector must be a map")
		return nil
	}
	var queryNode, metricsNode *yaml.Node
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], resolve(v.Content[i+1])
		switch k.Value {
		case "name":
			c.Name = p.str(val, b, "name")
		case "desc":
			c.Desc = p.str(val, b, "desc")
		case "query":
			queryNode = val
			c.Query = strings.TrimSpace(p.str(val, b, "query"))
		case "ttl":
			c.TTL = p.seconds(val, b, "ttl")
		case "timeout":
			c.Timeout = p.seconds(val, b, "timeout")
		case "priority":
			c.Priority = p.int(val, b, "priority")
		case "min_version":
			c.MinVersion = p.int(val, b, "min_version")
		case "max_version":
			c.MaxVersion = p.int(val, b, "max_version")
		case "fatal":
			c.Fatal = p.bool(val, b, "fatal")
		case "skip":
			c.Skip = p.bool(val, b, "skip")
		case "tags":
			c.Tags = p.strings(val, b, "tags")
		case "predicate_queries":
			c.Predicates = p.predicates(val, b)
		case "metrics":
			metricsNode = k // errors about the column set point at the "metrics:" line
			c.Columns = p.columns(val, b)
		default:
			p.errf(k, b, "unknown field %q (known: %s)", k.Value, strings.Join(collectorKeys, ", "))
		}
	}
	if c.Name == "" {
		c.Name = b
	}
	switch {
	case queryNode == nil:
		p.errf(key, b, "missing query")
	case c.Query == "":
		p.errf(queryNode, b, "empty query")
	}
	if c.TTL < 0 {
		p.errf(key, b, "ttl must not be negative")
	}
	if c.MinVersion != 0 && c.MaxVersion != 0 && c.MinVersion >= c.MaxVersion {
		p.errf(key, b, "min_version %d must be below max_version %d", c.MinVersion, c.MaxVersion)
	}
	if metricsNode == nil {
		p.errf(key, b, "missing metrics")
	} else {
		p.checkColumns(c, metricsNode)
	}
	if len(p.errs) > nerr {
		return nil
	}
	return c
}

// checkColumns validates names and usages across the columns of c.
func (p *parser) checkColumns(c *Collector, metricsNode *yaml.Node) {
	b := c.Branch
	if !model.IsValidLegacyMetricName(c.Name) {
		p.errf(metricsNode, b, "name %q is not a valid metric name prefix", c.Name)
		return
	}
	values := 0
	cols := map[string]bool{}
	names := map[string]bool{}
	for _, col := range c.Columns {
		cn := &yaml.Node{Line: col.Line}
		if cols[col.Name] {
			p.errf(cn, b, "column %q listed twice", col.Name)
		}
		cols[col.Name] = true
		switch {
		case col.Usage == UsageLabel:
			if ln := model.LabelName(col.Name); !ln.IsValidLegacy() || strings.HasPrefix(col.Name, "__") {
				p.errf(cn, b, "column %q: not a valid label name", col.Name)
			}
		case col.Usage.isValue():
			values++
			full := c.Name + "_" + col.MetricSuffix()
			if !model.IsValidLegacyMetricName(full) {
				p.errf(cn, b, "column %q: %q is not a valid metric name", col.Name, full)
			}
			if names[full] {
				p.errf(cn, b, "column %q: metric %q produced twice", col.Name, full)
			}
			names[full] = true
		}
		if col.Usage == UsageHistogram && len(col.Buckets) == 0 {
			p.errf(cn, b, "column %q: HISTOGRAM needs a bucket list", col.Name)
		}
		if col.Usage != UsageHistogram && len(col.Buckets) > 0 {
			p.errf(cn, b, "column %q: bucket is only for HISTOGRAM columns", col.Name)
		}
	}
	if values == 0 && len(c.Columns) > 0 {
		p.errf(metricsNode, b, "no COUNTER, GAUGE or HISTOGRAM column")
	}
}

var predicateKeys = []string{"name", "predicate_query", "query", "ttl"}

func (p *parser) predicates(n *yaml.Node, b string) []Predicate {
	if n.Kind != yaml.SequenceNode {
		p.errf(n, b, "predicate_queries must be a list")
		return nil
	}
	var out []Predicate
	for i, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			p.errf(item, b, "predicate_queries[%d] must be a map", i)
			continue
		}
		pr := Predicate{Line: item.Line}
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], resolve(item.Content[j+1])
			switch k.Value {
			case "name":
				pr.Name = p.str(v, b, "predicate name")
			case "predicate_query", "query":
				pr.Query = strings.TrimSpace(p.str(v, b, "predicate_query"))
			case "ttl":
				pr.TTL = p.seconds(v, b, "predicate ttl")
			default:
				p.errf(k, b, "predicate_queries[%d]: unknown field %q (known: %s)", i, k.Value, strings.Join(predicateKeys, ", "))
			}
		}
		if pr.Query == "" {
			p.errf(item, b, "predicate_queries[%d]: missing predicate_query", i)
		}
		if pr.Name == "" {
			pr.Name = fmt.Sprintf("%s#%d", b, i)
		}
		out = append(out, pr)
	}
	return out
}

var columnKeys = []string{"usage", "rename", "description", "default", "scale", "bucket"}

func (p *parser) columns(n *yaml.Node, b string) []Column {
	if n.Kind != yaml.SequenceNode {
		p.errf(n, b, "metrics must be a list of one-key maps (column: {usage: ...})")
		return nil
	}
	var out []Column
	for i, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode || len(item.Content) != 2 {
			p.errf(item, b, "metrics[%d] must be a map with exactly one column name", i)
			continue
		}
		name, spec := item.Content[0], resolve(item.Content[1])
		col := Column{Name: name.Value, Line: name.Line}
		if spec.Kind != yaml.MappingNode {
			p.errf(name, b, "column %q: want a map with usage", col.Name)
			continue
		}
		var usageSeen bool
		for j := 0; j+1 < len(spec.Content); j += 2 {
			k, v := spec.Content[j], resolve(spec.Content[j+1])
			field := fmt.Sprintf("column %q %s", col.Name, k.Value)
			switch k.Value {
			case "usage":
				usageSeen = true
				u := Usage(strings.ToUpper(strings.TrimSpace(p.str(v, b, field))))
				switch u {
				case UsageDiscard, UsageLabel, UsageCounter, UsageGauge, UsageHistogram:
					col.Usage = u
				default:
					p.errf(v, b, "column %q: invalid usage %q (want DISCARD, LABEL, COUNTER, GAUGE or HISTOGRAM)", col.Name, v.Value)
				}
			case "rename":
				col.Rename = p.str(v, b, field)
			case "description":
				col.Description = p.str(v, b, field)
			case "default":
				if v.Tag != "!!null" {
					f := p.float(v, b, field)
					col.Default = &f
				}
			case "scale":
				col.Scale = p.float(v, b, field)
			case "bucket":
				col.Buckets = p.buckets(v, b, col.Name)
			default:
				p.errf(k, b, "column %q: unknown field %q (known: %s)", col.Name, k.Value, strings.Join(columnKeys, ", "))
			}
		}
		if !usageSeen {
			p.errf(name, b, "column %q: missing usage", col.Name)
		}
		out = append(out, col)
	}
	return out
}

func (p *parser) buckets(n *yaml.Node, b, col string) []float64 {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errf(n, b, "column %q: bucket must be a non-empty list of numbers", col)
		return nil
	}
	var out []float64
	for _, e := range n.Content {
		f := p.float(resolve(e), b, fmt.Sprintf("column %q bucket", col))
		if math.IsInf(f, 0) || math.IsNaN(f) {
			p.errf(e, b, "column %q: bucket bounds must be finite (+Inf is implicit)", col)
		}
		if len(out) > 0 && f <= out[len(out)-1] {
			p.errf(e, b, "column %q: bucket bounds must increase", col)
		}
		out = append(out, f)
	}
	return out
}

func (p *parser) scalar(n *yaml.Node, b, field string) bool {
	if n.Kind != yaml.ScalarNode {
		p.errf(n, b, "%s: want a scalar value", field)
		return false
	}
	return true
}

func (p *parser) str(n *yaml.Node, b, field string) string {
	if !p.scalar(n, b, field) || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

func (p *parser) float(n *yaml.Node, b, field string) float64 {
	if !p.scalar(n, b, field) {
		return 0
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64)
	if err != nil {
		p.errf(n, b, "%s: %q is not a number", field, n.Value)
	}
	return f
}

// int parses a decimal integer; leading zeros are decimal, so pg_exporter's
// "090400" means 90400 (9.4), never octal.
func (p *parser) int(n *yaml.Node, b, field string) int {
	if !p.scalar(n, b, field) || n.Tag == "!!null" {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64)
	if err != nil {
		p.errf(n, b, "%s: %q is not an integer", field, n.Value)
	}
	return int(v)
}

func (p *parser) bool(n *yaml.Node, b, field string) bool {
	if !p.scalar(n, b, field) {
		return false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		p.errf(n, b, "%s: %q is not a boolean", field, n.Value)
	}
	return v
}

// seconds parses a number of seconds (fractions allowed).
func (p *parser) seconds(n *yaml.Node, b, field string) time.Duration {
	if !p.scalar(n, b, field) || n.Tag == "!!null" {
		return 0
	}
	f := p.float(n, b, field)
	return time.Duration(f * float64(time.Second))
}

func (p *parser) strings(n *yaml.Node, b, field string) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" || n.Value == "" {
			return nil
		}
		return []string{n.Value}
	case yaml.SequenceNode:
		var out []string
		for _, e := range n.Content {
			if s := p.str(resolve(e), b, field); s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return out
	}
	p.errf(n, b, "%s: want a list of strings", field)
	return nil
}
