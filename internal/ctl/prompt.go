package ctl

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// errNoAnswer is returned when a question cannot be answered (stdin closed).
var errNoAnswer = errors.New("no answer on standard input (use --force to skip questions)")

// prompt asks a question like click.prompt: "text [default]: ", and returns
// the answer, or def for an empty one.
func (a *app) prompt(text, def string) (string, error) {
	a.printf("%s [%s]: ", text, def)
	line, err := a.in.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		a.println("")
		return "", errNoAnswer
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return def, nil
	}
	return line, nil
}

// confirm asks a yes/no question like click.confirm, defaulting to no.
func (a *app) confirm(text string) (bool, error) {
	for {
		a.printf("%s [y/N]: ", text)
		line, err := a.in.ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			a.println("")
			return false, errNoAnswer
		}
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return true, nil
		case "", "n", "no":
			return false, nil
		}
		a.println("Error: invalid input")
	}
}

// confirmOrAbort asks and turns "no" into an error naming what was aborted.
func (a *app) confirmOrAbort(text, aborted string) error {
	ok, err := a.confirm(text)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s", aborted)
	}
	return nil
}
