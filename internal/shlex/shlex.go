// Package shlex splits command lines as Python's shlex.split does, the way
// Patroni turns configured scripts into argument vectors.
package shlex

import (
	"errors"
	"strings"
)

// Split splits a command line as Python's shlex.split (POSIX mode, no
// comments) does, which is how Patroni turns callbacks, pre_promote and
// before_stop into an argument vector: whitespace separates words; single
// quotes keep everything literally; inside double quotes a backslash escapes
// only `"` and `\`; outside quotes a backslash escapes any character.
func Split(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // a word is started (possibly empty: '' is a word)
	)
	const (
		plain = iota
		single
		double
	)
	state := plain
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch state {
		case single:
			if c == '\'' {
				state = plain
			} else {
				cur.WriteRune(c)
			}
		case double:
			switch c {
			case '"':
				state = plain
			case '\\':
				if i+1 >= len(rs) {
					return nil, errors.New("no closing quotation")
				}
				if n := rs[i+1]; n == '"' || n == '\\' {
					cur.WriteRune(n)
					i++
				} else {
					cur.WriteRune(c)
				}
			default:
				cur.WriteRune(c)
			}
		default:
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r':
				if in {
					words = append(words, cur.String())
					cur.Reset()
					in = false
				}
			case c == '\'':
				state, in = single, true
			case c == '"':
				state, in = double, true
			case c == '\\':
				if i+1 >= len(rs) {
					return nil, errors.New("no escaped character")
				}
				cur.WriteRune(rs[i+1])
				i++
				in = true
			default:
				cur.WriteRune(c)
				in = true
			}
		}
	}
	if state != plain {
		return nil, errors.New("no closing quotation")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
