package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// patroniHandler writes Patroni's plain log format, which Pigsty's log
// collection parses: "2006-01-02 15:04:05 -0700 LEVEL: message key=value ...".
type patroniHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	attrs []slog.Attr
	group string
}

func newLogger(w io.Writer, level string, jsonFormat bool) *slog.Logger {
	lv := new(slog.LevelVar)
	lv.Set(parseLevel(level))
	return newLoggerVar(w, lv, jsonFormat)
}

// newLoggerVar logs at lv's level, which a reload may change.
func newLoggerVar(w io.Writer, lv *slog.LevelVar, jsonFormat bool) *slog.Logger {
	if jsonFormat {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv}))
	}
	return slog.New(&patroniHandler{mu: &sync.Mutex{}, w: w, level: lv})
}

func parseLevel(s string) slog.Level {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return slog.LevelDebug
	case "WARNING", "WARN":
		return slog.LevelWarn
	case "ERROR", "CRITICAL":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (h *patroniHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *patroniHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b.WriteString(t.Format("2006-01-02 15:04:05 -0700"))
	b.WriteByte(' ')
	lvl := r.Level.String()
	if r.Level == slog.LevelWarn {
		lvl = "WARNING"
	}
	b.WriteString(lvl)
	b.WriteString(": ")
	b.WriteString(r.Message)
	for _, a := range h.attrs {
		writeAttr(&b, h.group, a)
	}
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	key := a.Key
	if group != "" {
		key = group + "." + key
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, ga := range a.Value.Group() {
			writeAttr(b, key, ga)
		}
		return
	}
	v := a.Value.String()
	if strings.ContainsAny(v, " \t\n\"=") || v == "" {
		v = fmt.Sprintf("%q", v)
	}
	b.WriteByte(' ')
	b.WriteString(key)
	b.WriteByte('=')
	b.WriteString(v)
}

func (h *patroniHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &n
}

func (h *patroniHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}

// logOutput is where the daemon logs: like Patroni, `log.dir` switches from
// stderr (journald) to a size-rotated file. The file keeps Patroni's name,
// patroni.log, because Pigsty's log collection reads <log.dir>/patroni.log.
func logOutput(dir string, fileSize int64, fileNum int, stderr io.Writer) (io.Writer, func() error, error) {
	if dir == "" {
		return stderr, func() error { return nil }, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("log.dir: %w", err)
	}
	const mib = 1 << 20
	sizeMB := int((fileSize + mib - 1) / mib)
	if sizeMB <= 0 {
		sizeMB = 25 // Patroni's default file_size is 25 MB
	}
	if fileNum <= 0 {
		fileNum = 4
	}
	lj := &lumberjack.Logger{Filename: filepath.Join(dir, "patroni.log"), MaxSize: sizeMB, MaxBackups: fileNum}
	return lj, lj.Close, nil
}
