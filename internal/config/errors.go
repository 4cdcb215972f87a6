package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Position is where a value was written: a file and line, or an environment
// variable ("env PATRONI_NAME", line 0).
type Position struct {
	File string
	Line int
}

// String renders "file:line", or just the file (or variable) when the line is unknown.
func (p Position) String() string {
	if p.Line > 0 {
		return p.File + ":" + strconv.Itoa(p.Line)
	}
	return p.File
}

// Error is one problem in the configuration, located by file, line and key path.
// Load and Validate return several of them joined with errors.Join.
type Error struct {
	File string
	Line int    // 0 when unknown (missing key, environment variable)
	Key  string // dotted key path, e.g. "postgresql.listen"
	Msg  string
}

// Error renders "file:line: key: message".
func (e *Error) Error() string { return render(e.File, e.Line, e.Key, e.Msg) }

// Warning is a problem that does not stop pgnoded (an unknown key, a missing file).
type Warning struct {
	File string
	Line int
	Key  string
	Msg  string
}

// String renders "file:line: key: message".
func (w Warning) String() string { return render(w.File, w.Line, w.Key, w.Msg) }

func render(file string, line int, key, msg string) string {
	s := Position{File: file, Line: line}.String()
	if key != "" {
		if s != "" {
			s += ": "
		}
		s += key
	}
	if s != "" {
		s += ": "
	}
	return s + msg
}

// Errors returns every *Error inside err (which may be an errors.Join of them).
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if ce, ok := e.(*Error); ok {
			out = append(out, ce)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// problems collects errors and warnings while a configuration is read.
type problems struct {
	errs  []*Error
	warns []Warning
}

func (p *problems) errorf(at Position, key, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: at.File, Line: at.Line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) warnf(at Position, key, format string, args ...any) {
	p.warns = append(p.warns, Warning{File: at.File, Line: at.Line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// refusalsToWarnings turns the key table's refusals into warnings.
func (p *problems) refusalsToWarnings() {
	kept := p.errs[:0]
	for _, e := range p.errs {
		if strings.HasPrefix(e.Msg, refusalPrefix) {
			p.warns = append(p.warns, Warning{File: e.File, Line: e.Line, Key: e.Key, Msg: e.Msg})
			continue
		}
		kept = append(kept, e)
	}
	p.errs = kept
}

// err joins the collected errors in file and line order, or returns nil.
func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	sorted := slices.Clone(p.errs)
	slices.SortStableFunc(sorted, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	out := make([]error, len(sorted))
	for i, e := range sorted {
		out[i] = e
	}
	return errors.Join(out...)
}

// warnings returns the collected warnings in file and line order.
func (p *problems) warnings() []Warning {
	w := slices.Clone(p.warns)
	slices.SortStableFunc(w, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return w
}
