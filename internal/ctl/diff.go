package ctl

import (
	"fmt"
	"strings"
)

// unifiedDiff renders the changes from before to after as difflib's
// unified_diff does with empty file names and three lines of context.
func unifiedDiff(before, after string) string {
	a, b := splitLines(before), splitLines(after)
	ops := diffOps(a, b)
	hunks := groupHunks(ops, 3)
	if len(hunks) == 0 {
		return ""
	}
	var out strings.Builder
	out.WriteString("--- \n+++ \n")
	for _, h := range hunks {
		first, last := h[0], h[len(h)-1]
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(first.i, last.iEnd()), hunkRange(first.j, last.jEnd()))
		for _, o := range h {
			for k := range o.n {
				switch o.kind {
				case ' ':
					out.WriteString(" " + a[o.i+k] + "\n")
				case '-':
					out.WriteString("-" + a[o.i+k] + "\n")
				case '+':
					out.WriteString("+" + b[o.j+k] + "\n")
				}
			}
		}
	}
	return out.String()
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	return strings.Split(s, "\n")
}

// diffOp is a run of n equal (' '), deleted ('-') or inserted ('+') lines
// starting at line i of the old text and line j of the new one.
type diffOp struct {
	kind byte
	i, j int
	n    int
}

func (o diffOp) iEnd() int {
	if o.kind == '+' {
		return o.i
	}
	return o.i + o.n
}

func (o diffOp) jEnd() int {
	if o.kind == '-' {
		return o.j
	}
	return o.j + o.n
}

// diffOps computes a shortest edit script through the longest common
// subsequence; within a change, deletions come before insertions.
func diffOps(a, b []string) []diffOp {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []diffOp
	add := func(kind byte, i, j int) {
		if l := len(ops) - 1; l >= 0 && ops[l].kind == kind {
			ops[l].n++
			return
		}
		ops = append(ops, diffOp{kind: kind, i: i, j: j, n: 1})
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			add(' ', i, j)
			i, j = i+1, j+1
		case j == m || (i < n && lcs[i+1][j] >= lcs[i][j+1]):
			add('-', i, j)
			i++
		default:
			add('+', i, j)
			j++
		}
	}
	// Rewrite each change as its deletions followed by its insertions.
	var out []diffOp
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			out = append(out, ops[k])
			k++
			continue
		}
		i0, j0, del, ins := ops[k].i, ops[k].j, 0, 0
		for ; k < len(ops) && ops[k].kind != ' '; k++ {
			if ops[k].kind == '-' {
				del += ops[k].n
			} else {
				ins += ops[k].n
			}
		}
		if del > 0 {
			out = append(out, diffOp{kind: '-', i: i0, j: j0, n: del})
		}
		if ins > 0 {
			out = append(out, diffOp{kind: '+', i: i0 + del, j: j0, n: ins})
		}
	}
	return out
}

// groupHunks cuts the script into hunks with ctx lines of context, as
// difflib's get_grouped_opcodes does.
func groupHunks(ops []diffOp, ctx int) [][]diffOp {
	changed := false
	for _, o := range ops {
		if o.kind != ' ' {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	ops = append([]diffOp(nil), ops...)
	if ops[0].kind == ' ' && ops[0].n > ctx {
		cut := ops[0].n - ctx
		ops[0] = diffOp{kind: ' ', i: ops[0].i + cut, j: ops[0].j + cut, n: ctx}
	}
	if l := len(ops) - 1; ops[l].kind == ' ' && ops[l].n > ctx {
		ops[l].n = ctx
	}
	var hunks [][]diffOp
	var cur []diffOp
	for k, o := range ops {
		if o.kind == ' ' && o.n > 2*ctx && k > 0 && k < len(ops)-1 {
			cur = append(cur, diffOp{kind: ' ', i: o.i, j: o.j, n: ctx})
			hunks = append(hunks, cur)
			cut := o.n - ctx
			cur = []diffOp{{kind: ' ', i: o.i + cut, j: o.j + cut, n: ctx}}
			continue
		}
		cur = append(cur, o)
	}
	if len(cur) > 0 && !(len(cur) == 1 && cur[0].kind == ' ') {
		hunks = append(hunks, cur)
	}
	return hunks
}

// hunkRange is difflib's _format_range_unified.
func hunkRange(start, stop int) string {
	begin, length := start+1, stop-start
	if length == 1 {
		return fmt.Sprint(begin)
	}
	if length == 0 {
		begin--
	}
	return fmt.Sprintf("%d,%d", begin, length)
}
