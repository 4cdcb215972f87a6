package ctl

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// usageError is a problem with the command line; it exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// flags wraps flag.FlagSet with what patronictl users expect from click:
// long and short names for one option, options after positional arguments,
// and "-w 5" for the watch interval.
type flags struct {
	fs       *flag.FlagSet
	synopsis string
	help     []optionHelp
	global   int // how many options are global (registered first)
}

// optionHelp documents one option under all its names.
type optionHelp struct {
	names []string
	arg   string // "" for switches
	usage string
}

func newFlags(name, synopsis string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flags{fs: fs, synopsis: synopsis}
}

// names strips leading dashes so "-c" and "--config" can be written as in the docs.
func names(ns []string) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strings.TrimLeft(n, "-")
	}
	return out
}

func (f *flags) boolVar(p *bool, usage string, ns ...string) {
	for _, n := range names(ns) {
		f.fs.BoolVar(p, n, *p, usage)
	}
	f.help = append(f.help, optionHelp{names: ns, usage: usage})
}

func (f *flags) stringVar(p *string, usage string, ns ...string) {
	for _, n := range names(ns) {
		f.fs.StringVar(p, n, *p, usage)
	}
	f.help = append(f.help, optionHelp{names: ns, arg: argName(usage), usage: usage})
}

func (f *flags) listVar(p *[]string, usage string, ns ...string) {
	for _, n := range names(ns) {
		f.fs.Var((*stringList)(p), n, usage)
	}
	f.help = append(f.help, optionHelp{names: ns, arg: argName(usage), usage: usage})
}

func (f *flags) value(v flag.Value, usage string, ns ...string) {
	for _, n := range names(ns) {
		f.fs.Var(v, n, usage)
	}
	f.help = append(f.help, optionHelp{names: ns, usage: usage})
}

// argName is the placeholder of an option's value: the first upper-case word of its usage, else VALUE.
func argName(usage string) string {
	for _, w := range strings.FieldsFunc(usage, func(r rune) bool { return r == ' ' || r == ',' || r == ':' || r == '(' || r == ')' }) {
		if len(w) > 1 && strings.ToUpper(w) == w && strings.ToLower(w) != w {
			return w
		}
	}
	return "VALUE"
}

// parse parses options anywhere among the arguments and returns the
// positional ones; everything after a literal "--" is positional.
func (f *flags) parse(args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	args = joinWatchValue(args)
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		if f.fs.NArg() == 0 {
			break
		}
		pos = append(pos, f.fs.Arg(0))
		args = f.fs.Args()[1:]
	}
	return append(pos, tail...), nil
}

// usage writes the synopsis and the options; withGlobal includes the global ones.
func (f *flags) usage(w io.Writer, withGlobal bool) {
	fmt.Fprintf(w, "usage: pgnodectl %s\n", f.synopsis)
	opts := f.help
	if !withGlobal {
		opts = opts[f.global:]
	}
	if len(opts) > 0 {
		fmt.Fprintln(w, "\noptions:")
	}
	for _, o := range opts {
		spec := strings.Join(o.names, ", ")
		if o.arg != "" {
			spec += " " + o.arg
		}
		fmt.Fprintf(w, "  %-28s %s\n", spec, o.usage)
	}
}

// joinWatchValue turns "-w 5" and "--watch 5" into "--watch=5", and a bare
// --watch (no number after it) into "--watch=true", meaning every second.
func joinWatchValue(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-w" || a == "--watch" || a == "-watch" {
			if i+1 < len(args) {
				if _, err := strconv.ParseFloat(args[i+1], 64); err == nil {
					out = append(out, a+"="+args[i+1])
					i++
					continue
				}
			}
			a += "=true"
		}
		out = append(out, a)
	}
	return out
}

// stringList collects a repeated option (-s a=1 -s b=2).
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// watchValue is the refresh interval of --watch; 0 means no watching.
type watchValue time.Duration

// defaultWatch is the refresh interval of a bare --watch.
const defaultWatch = time.Second

// patronictlWatch is the interval of -W (patronictl's fixed two seconds).
const patronictlWatch = 2 * time.Second

func (w *watchValue) String() string {
	if w == nil || *w == 0 {
		return ""
	}
	return time.Duration(*w).String()
}

func (w *watchValue) Set(s string) error {
	switch s {
	case "true":
		*w = watchValue(defaultWatch)
		return nil
	case "false":
		*w = 0
		return nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || secs <= 0 || secs > 86400 {
		return fmt.Errorf("watch interval must be a positive number of seconds, got %q", s)
	}
	*w = watchValue(time.Duration(secs * float64(time.Second)))
	return nil
}

// fixedWatch is -W: a flag that sets the watch interval to a constant.
type fixedWatch struct {
	w     *watchValue
	every time.Duration
}

func (f fixedWatch) IsBoolFlag() bool { return true }

func (f fixedWatch) String() string { return "" }

func (f fixedWatch) Set(s string) error {
	on, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	if on {
		*f.w = watchValue(f.every)
	}
	return nil
}
