package ctl

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// table is the output of list and history: named columns of cells (string,
// int, int64, or a tags map), printed the way patronictl's print_output does.
type table struct {
	title   string          // injected into the top border (pretty only)
	columns []string        // the first may be "Cluster", dropped in pretty output
	align   map[string]byte // 'r' for right-aligned columns, default left
	rows    [][]any
	// keepEmpty keeps empty cells in json/yaml (history); list drops them.
	keepEmpty bool
}

// render writes t in format: pretty (also topology), tsv, json or yaml.
func (t *table) render(w io.Writer, format string) error {
	switch format {
	case "json":
		_, err := fmt.Fprintln(w, pyJSON(t.elements()))
		return err
	case "yaml", "yml":
		s, err := toYAML(t.elements(), false)
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, s)
		return err
	case "tsv":
		return t.tsv(w)
	default:
		_, err := io.WriteString(w, t.pretty())
		return err
	}
}

// elements are the rows as ordered objects; list omits empty cells.
func (t *table) elements() []any {
	out := make([]any, 0, len(t.rows))
	for _, r := range t.rows {
		obj := orderedMap{}
		for i, c := range t.columns {
			if !t.keepEmpty && cellString(r[i], false) == "" {
				continue
			}
			obj = append(obj, kv{c, r[i]})
		}
		out = append(out, obj)
	}
	return out
}

func (t *table) tsv(w io.Writer) error {
	lines := [][]string{t.columns}
	for _, r := range t.rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = cellString(c, true)
		}
		lines = append(lines, cells)
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(w, strings.Join(l, "\t")); err != nil {
			return err
		}
	}
	return nil
}

// cellString renders a cell; tags maps become YAML (flow style in tsv).
func cellString(c any, flow bool) string {
	switch v := c.(type) {
	case nil:
		return ""
	case string:
		return v
	case map[string]any:
		if len(v) == 0 {
			return ""
		}
		s, err := toYAML(v, flow)
		if err != nil {
			return fmt.Sprint(v)
		}
		return strings.TrimSpace(s)
	}
	return fmt.Sprint(c)
}

// pretty draws the table like PrettyTable with patronictl's title in the top
// border; rows are separated by rules only when a cell spans several lines.
func (t *table) pretty() string {
	cols, rows := t.columns, t.rows
	if len(cols) > 0 && cols[0] == "Cluster" {
		cols = cols[1:]
		trimmed := make([][]any, len(rows))
		for i, r := range rows {
			trimmed[i] = r[1:]
		}
		rows = trimmed
	}
	cells := make([][][]string, len(rows)) // row -> column -> lines
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = utf8.RuneCountInString(c)
	}
	multiline := false
	for ri, r := range rows {
		cells[ri] = make([][]string, len(cols))
		for ci := range cols {
			lines := strings.Split(cellString(r[ci], false), "\n")
			if len(lines) > 1 {
				multiline = true
			}
			for _, l := range lines {
				widths[ci] = max(widths[ci], utf8.RuneCountInString(l))
			}
			cells[ri][ci] = lines
		}
	}
	var rule strings.Builder
	rule.WriteByte('+')
	for _, w := range widths {
		rule.WriteString(strings.Repeat("-", w+2))
		rule.WriteByte('+')
	}
	hr := rule.String()
	var b strings.Builder
	b.WriteString(withTitle(hr, t.title) + "\n")
	header := make([][]string, len(cols))
	for i, c := range cols {
		header[i] = []string{c}
	}
	b.WriteString(t.line(cols, widths, header))
	b.WriteString(hr + "\n")
	for i, r := range cells {
		b.WriteString(t.line(cols, widths, r))
		if multiline || i == len(cells)-1 {
			b.WriteString(hr + "\n")
		}
	}
	if len(cells) == 0 {
		b.WriteString(hr + "\n")
	}
	return b.String()
}

// line renders one table row, several text lines high if a cell needs it.
func (t *table) line(cols []string, widths []int, cells [][]string) string {
	height := 1
	for _, c := range cells {
		height = max(height, len(c))
	}
	var b strings.Builder
	for l := range height {
		b.WriteByte('|')
		for ci, c := range cells {
			text := ""
			if l < len(c) {
				text = c[l]
			}
			pad := strings.Repeat(" ", widths[ci]-utf8.RuneCountInString(text))
			if t.align[cols[ci]] == 'r' {
				b.WriteString(" " + pad + text + " |")
			} else {
				b.WriteString(" " + text + pad + " |")
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// withTitle writes title over the top border after its first character,
// cut to fit, as patronictl's table header does.
func withTitle(rule, title string) string {
	if title == "" {
		return rule
	}
	r := []rune(rule)
	tt := []rune(title)
	if len(tt) > len(r)-2 {
		tt = tt[:max(len(r)-2, 0)]
	}
	return string(r[:1]) + string(tt) + string(r[1+len(tt):])
}
