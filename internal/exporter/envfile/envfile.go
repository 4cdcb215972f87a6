// Package envfile reads pg_exporter's settings as a Pigsty node leaves them:
// the systemd environment file /etc/default/pg_exporter and the flags in its
// PG_EXPORTER_OPTS variable, with pg_exporter's precedence (a flag wins over
// its environment variable). The names are pg_exporter v1.4.1's flags and
// environment variables, the version Pigsty ships.
package envfile

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Origin is where a setting or a problem was written.
type Origin struct {
	File string
	Line int
	Name string // the variable, or "PG_EXPORTER_OPTS --flag"
}

func (o Origin) String() string {
	if o.Name == "" {
		return fmt.Sprintf("%s:%d", o.File, o.Line)
	}
	return fmt.Sprintf("%s:%d: %s", o.File, o.Line, o.Name)
}

// Setting is one value and where it was written.
type Setting struct {
	Value  string
	Origin Origin
}

// Problem is a line that cannot be read, or a name pg_exporter does not know.
type Problem struct {
	Origin Origin
	Msg    string
}

func (p Problem) String() string { return p.Origin.String() + ": " + p.Msg }

// Settings are pg_exporter's settings by flag name ("config", "label",
// "exclude-database", "web.listen-address", "log.level", ...).
type Settings struct {
	File     string
	values   map[string]Setting
	Problems []Problem
}

// Get returns the setting of flag name, if written.
func (s *Settings) Get(name string) (Setting, bool) {
	if s == nil {
		return Setting{}, false
	}
	v, ok := s.values[name]
	return v, ok
}

// Names are the flag names written, sorted.
func (s *Settings) Names() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.values))
	for n := range s.values {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Bool reads a boolean setting as kingpin does ("true", "false", "1", "0", ...).
func (s *Settings) Bool(name string) (value, set bool, err error) {
	v, ok := s.Get(name)
	if !ok {
		return false, false, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v.Value))
	if err != nil {
		return false, true, fmt.Errorf("%s: %q is not a boolean", v.Origin, v.Value)
	}
	return b, true, nil
}

// flagDef is one of pg_exporter's command-line flags.
type flagDef struct {
	name  string // long name
	short string // one letter, or ""
	env   string // environment variable, or ""
	bool  bool
}

// flags are pg_exporter v1.4.1's flags, with its web flags. --config and --url
// are read from PG_EXPORTER_CONFIG and PG_EXPORTER_URL when the flag is absent.
var flags = []flagDef{
	{"url", "u", "PG_EXPORTER_URL", false},
	{"config", "c", "PG_EXPORTER_CONFIG", false},
	{"label", "l", "PG_EXPORTER_LABEL", false},
	{"tag", "t", "PG_EXPORTER_TAG", false},
	{"disable-cache", "C", "PG_EXPORTER_DISABLE_CACHE", true},
	{"disable-intro", "m", "PG_EXPORTER_DISABLE_INTRO", true},
	{"auto-discovery", "a", "PG_EXPORTER_AUTO_DISCOVERY", true},
	{"exclude-database", "x", "PG_EXPORTER_EXCLUDE_DATABASE", false},
	{"include-database", "i", "PG_EXPORTER_INCLUDE_DATABASE", false},
	{"namespace", "n", "PG_EXPORTER_NAMESPACE", false},
	{"fail-fast", "f", "PG_EXPORTER_FAIL_FAST", true},
	{"connect-timeout", "T", "PG_EXPORTER_CONNECT_TIMEOUT", false},
	{"web.telemetry-path", "P", "PG_EXPORTER_TELEMETRY_PATH", false},
	{"web.listen-address", "", "", false},
	{"web.config.file", "", "", false},
	{"web.systemd-socket", "", "", true},
	{"dry-run", "D", "", true},
	{"explain", "E", "", true},
	{"log.level", "", "", false},
	{"log.format", "", "", false},
	{"version", "", "", true},
	{"help", "h", "", true},
}

// Variables read by pg_exporter besides the flags' own.
const (
	envOpts    = "PG_EXPORTER_OPTS"     // the unit's ExecStart=/usr/bin/pg_exporter $PG_EXPORTER_OPTS
	envPGURL   = "PGURL"                // a second name for the URL
	envURLFile = "PG_EXPORTER_URL_FILE" // a file holding the URL
)

// Extra setting names for the variables above (not flags of pg_exporter).
const (
	NamePGURL   = "pgurl"
	NameURLFile = "url-file"
)

func flagByLong(name string) (flagDef, bool) {
	for _, f := range flags {
		if f.name == name {
			return f, true
		}
	}
	return flagDef{}, false
}

func flagByShort(s string) (flagDef, bool) {
	for _, f := range flags {
		if f.short != "" && f.short == s {
			return f, true
		}
	}
	return flagDef{}, false
}

func flagByEnv(name string) (flagDef, bool) {
	for _, f := range flags {
		if f.env != "" && f.env == name {
			return f, true
		}
	}
	return flagDef{}, false
}

// Read parses the environment file at path. A missing file is an error
// satisfying errors.Is(err, fs.ErrNotExist).
func Read(path string) (*Settings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data), nil
}

// Parse reads data, the text of file, in systemd's EnvironmentFile syntax
// (also valid shell): KEY=VALUE lines, values single- or double-quoted or bare,
// lines starting with # or ; are comments, an unquoted # after whitespace
// starts a comment, a trailing backslash continues the line, an
// "export " prefix is allowed. Lines that cannot be read and names pg_exporter
// does not know are reported in Problems, never dropped silently.
func Parse(file string, data []byte) *Settings {
	s := &Settings{File: file, values: map[string]Setting{}}
	type opts struct {
		value string
		line  int
	}
	var optsLine *opts
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		line := lines[i]
		// A trailing backslash (outside single quotes) joins the next line.
		for strings.HasSuffix(line, `\`) && !strings.HasSuffix(line, `\\`) && i+1 < len(lines) {
			i++
			line = line[:len(line)-1] + lines[i]
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' {
			continue
		}
		trimmed = strings.TrimPrefix(trimmed, "export ")
		key, raw, ok := strings.Cut(trimmed, "=")
		key = strings.TrimSpace(key)
		at := Origin{File: file, Line: lineNo, Name: key}
		if !ok {
			at.Name = ""
			s.Problems = append(s.Problems, Problem{at, fmt.Sprintf("not a KEY=VALUE line: %q", trimmed)})
			continue
		}
		if !validName.MatchString(key) {
			at.Name = ""
			s.Problems = append(s.Problems, Problem{at, fmt.Sprintf("invalid variable name %q", key)})
			continue
		}
		value, err := unquote(raw)
		if err != nil {
			s.Problems = append(s.Problems, Problem{at, err.Error()})
			continue
		}
		switch key {
		case envOpts:
			optsLine = &opts{value: value, line: lineNo}
			continue
		case envPGURL:
			s.set(NamePGURL, value, at)
			continue
		case envURLFile:
			s.set(NameURLFile, value, at)
			continue
		}
		f, known := flagByEnv(key)
		if !known {
			s.Problems = append(s.Problems, Problem{at, "not a pg_exporter variable; not acted on"})
			continue
		}
		s.set(f.name, value, at)
	}
	// Flags win over variables, as in pg_exporter (kingpin reads the variable
	// only when the flag is absent), whatever the order of the lines.
	if optsLine != nil {
		s.parseFlags(optsLine.value, Origin{File: file, Line: optsLine.line})
	}
	return s
}

var validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (s *Settings) set(name, value string, at Origin) {
	s.values[name] = Setting{Value: value, Origin: at}
}

// parseFlags reads PG_EXPORTER_OPTS as systemd passes an unbraced $VAR: split
// at whitespace. Long flags take "--name=value" or "--name value", booleans
// "--name", "--no-name" or "--name=true|false"; short ones "-x value" or "-xvalue".
func (s *Settings) parseFlags(value string, line Origin) {
	args := strings.Fields(value)
	for i := 0; i < len(args); i++ {
		arg := args[i]
		at := line
		at.Name = envOpts + " " + arg
		var (
			f        flagDef
			ok       bool
			val      string
			hasValue bool
		)
		switch {
		case strings.HasPrefix(arg, "--"):
			name, v, eq := strings.Cut(arg[2:], "=")
			at.Name = envOpts + " --" + name
			f, ok = flagByLong(name)
			if !ok {
				if neg, isNeg := strings.CutPrefix(name, "no-"); isNeg && !eq {
					if nf, nok := flagByLong(neg); nok && nf.bool {
						s.set(nf.name, "false", at)
						continue
					}
				}
			}
			val, hasValue = v, eq
		case strings.HasPrefix(arg, "-") && len(arg) >= 2:
			at.Name = envOpts + " -" + arg[1:2]
			f, ok = flagByShort(arg[1:2])
			if rest := arg[2:]; rest != "" {
				val, hasValue = strings.TrimPrefix(rest, "="), true
			}
		default:
			s.Problems = append(s.Problems, Problem{at, "unexpected argument; not acted on"})
			continue
		}
		if !ok {
			s.Problems = append(s.Problems, Problem{at, "not a pg_exporter flag; not acted on"})
			continue
		}
		if f.bool {
			if !hasValue {
				val = "true"
			}
			s.set(f.name, val, at)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				s.Problems = append(s.Problems, Problem{at, "flag needs a value"})
				continue
			}
			i++
			val = args[i]
		}
		if prev, dup := s.values[f.name]; dup && f.name == "web.listen-address" && strings.HasPrefix(prev.Origin.Name, envOpts) {
			// exporter-toolkit listens on every address given; pgnoded serves one.
			s.Problems = append(s.Problems, Problem{at, fmt.Sprintf("only the first address (%s) is served; %s is not", prev.Value, val)})
			continue
		}
		s.set(f.name, val, at)
	}
}

// errUnterminated reports a quote without its closing twin.
var errUnterminated = errors.New("unterminated quote")

// unquote turns the text after "=" into the value: quoted parts lose their
// quotes (double quotes keep backslash escapes of \ " $ `), bare parts run to
// the end of the line less trailing blanks, and an unquoted # after
// whitespace starts a comment.
func unquote(raw string) (string, error) {
	raw = strings.TrimLeft(raw, " \t")
	var b strings.Builder
	keep := 0 // bytes of b that trailing-blank trimming must not remove (quoted text)
	trimmed := func() string {
		v := b.String()
		return v[:keep] + strings.TrimRight(v[keep:], " \t")
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(raw[i+1:], '\'')
			if j < 0 {
				return "", errUnterminated
			}
			b.WriteString(raw[i+1 : i+1+j])
			i += j + 1
			keep = b.Len()
			continue
		case c == '"':
			closed := false
			for i++; i < len(raw); i++ {
				if raw[i] == '\\' && i+1 < len(raw) && strings.IndexByte("\\\"$`", raw[i+1]) >= 0 {
					i++
					b.WriteByte(raw[i])
					continue
				}
				if raw[i] == '"' {
					closed = true
					break
				}
				b.WriteByte(raw[i])
			}
			if !closed {
				return "", errUnterminated
			}
			keep = b.Len()
			continue
		case c == '#' && i > 0 && (raw[i-1] == ' ' || raw[i-1] == '\t'):
			return trimmed(), nil
		case c == '\\' && i+1 < len(raw):
			i++
			c = raw[i]
		}
		b.WriteByte(c)
	}
	return trimmed(), nil
}
