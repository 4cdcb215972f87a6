package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal (the live view redraws only there).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// ANSI sequences of the live view.
const (
	ansiHome  = "\033[H"
	ansiClear = "\033[2J"
	ansiEOL   = "\033[K"
	ansiEOS   = "\033[J"
	ansiBold  = "\033[1m"
	ansiGreen = "\033[32m"
	ansiRed   = "\033[31m"
	ansiReset = "\033[0m"
)

// viewer renders snapshots: a redrawn screen on a terminal, changed lines otherwise.
type viewer struct {
	w       io.Writer
	tty     bool
	s       *State
	started time.Time
	healthy time.Duration // time to the first healthy cluster; 0 until then
	cleared bool
	last    string    // plain mode: last status line printed
	lastAt  time.Time // plain mode: when it was printed
	seen    map[Event]bool
}

func newViewer(w io.Writer, tty bool, s *State, started time.Time) *viewer {
	return &viewer{w: w, tty: tty, s: s, started: started, seen: map[Event]bool{}}
}

// show draws one refresh.
func (v *viewer) show(snap Snapshot, events []Event) {
	if v.healthy == 0 && snap.Healthy(v.s.VIP != "") {
		v.healthy = snap.At.Sub(v.started)
		if !v.tty {
			fmt.Fprintf(v.w, "%s cluster healthy %s after the start\n", snap.At.Format("15:04:05"), v.healthy.Round(100*time.Millisecond))
		}
	}
	if v.tty {
		v.redraw(snap, events)
		return
	}
	v.plain(snap, events)
}

func (v *viewer) redraw(snap Snapshot, events []Event) {
	var b strings.Builder
	if !v.cleared {
		b.WriteString(ansiClear)
		v.cleared = true
	}
	b.WriteString(ansiHome)
	width, height := termSize(v.w)
	lines := strings.Split(strings.TrimRight(v.screen(snap, events, true), "\n"), "\n")
	if height > 1 && len(lines) > height-1 {
		lines = lines[:height-1] // a taller screen would scroll and break the redraw
	}
	for _, line := range lines {
		if width > 1 && visibleLen(line) > width-1 && !strings.Contains(line, "\033") {
			line = clip(line, width-1)
		}
		b.WriteString(line + ansiEOL + "\n")
	}
	b.WriteString(ansiEOS)
	io.WriteString(v.w, b.String())
}

// plain prints new events and the status line when it changes (or every 10 s).
func (v *viewer) plain(snap Snapshot, events []Event) {
	for _, e := range events {
		if !v.seen[e] {
			v.seen[e] = true
			fmt.Fprintf(v.w, "%s event %s: %s\n", e.At.Format("15:04:05"), e.Node, e.Text)
		}
	}
	line := v.statusLine(snap)
	if line != v.last || snap.At.Sub(v.lastAt) >= 10*time.Second {
		fmt.Fprintf(v.w, "%s %s\n", snap.At.Format("15:04:05"), line)
		v.last, v.lastAt = line, snap.At
	}
}

// statusLine is the compact one-line form of a snapshot.
func (v *viewer) statusLine(snap Snapshot) string {
	var parts []string
	for _, n := range snap.Nodes {
		p := n.Name + "=" + roleText(n) + "/" + stateText(n)
		if n.Timeline > 0 {
			p += fmt.Sprintf("/tl%d", n.Timeline)
		}
		if n.Lag != "" {
			p += "/lag " + n.Lag
		}
		parts = append(parts, p)
	}
	leader := snap.Leader
	if leader == "" {
		leader = "none"
	}
	line := strings.Join(parts, " ") + " leader=" + leader
	if v.s.VIP != "" {
		line += " vip=" + orNone(strings.Join(snap.VIPHolders(), ","))
	}
	return line + " | " + snap.Summary(v.s.VIP != "")
}

// screen is the full live view.
func (v *viewer) screen(snap Snapshot, events []Event, color bool) string {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + ansiReset
	}
	var b strings.Builder
	where := "loopback ports, no VIP"
	if v.s.Mode == ModeNetns {
		where = fmt.Sprintf("network namespaces %s*, subnet %s, VIP %s", nsPrefix, v.s.Subnet, v.s.VIP)
	}
	fmt.Fprintf(&b, "%s  %s  up %s\n", paint(ansiBold, "pgnoded demo — 3 nodes + etcd"), snap.At.Format("15:04:05"),
		snap.At.Sub(v.started).Truncate(time.Second))
	fmt.Fprintf(&b, "%s; work dir %s; Ctrl-C stops and removes everything\n\n", where, v.s.WorkDir)

	rows := [][]string{{"MEMBER", "HOST", "ROLE", "STATE", "TL", "LAG", "LEADER KEY", "VIP", "PGNODED", "POSTMASTER"}}
	for _, n := range snap.Nodes {
		info, _ := v.s.Node(n.Name)
		leader, vip, tl := "", "", ""
		if snap.Leader == n.Name {
			leader = "held"
		}
		if n.VIP {
			vip = v.s.VIP
		}
		if n.Timeline > 0 {
			tl = fmt.Sprint(n.Timeline)
		}
		rows = append(rows, []string{n.Name, fmt.Sprintf("%s:%d", info.IP, info.PGPort), roleText(n), stateText(n),
			tl, n.Lag, leader, vip, pidText(n.PgnodedPID), pidText(n.PostmasterPID)})
	}
	writeTable(&b, rows, func(row, col int, cell string) string {
		switch {
		case row == 0:
			return paint(ansiBold, cell)
		case col == 2 && isPrimaryRole(strings.TrimSpace(cell)):
			return paint(ansiGreen, cell)
		case strings.TrimSpace(cell) == "down" || strings.TrimSpace(cell) == "pgnoded down":
			return paint(ansiRed, cell)
		}
		return cell
	})
	verdict := snap.Summary(v.s.VIP != "")
	if snap.Healthy(v.s.VIP != "") {
		verdict = paint(ansiGreen, verdict)
	}
	fmt.Fprintf(&b, "\ncluster: %s\n", verdict)
	if v.healthy > 0 {
		fmt.Fprintf(&b, "first healthy after %s\n", v.healthy.Round(100*time.Millisecond))
	}
	b.WriteString("\nrecent HA events (pgnoded logs):\n")
	if len(events) == 0 {
		b.WriteString("  (none yet)\n")
	}
	for _, e := range events {
		fmt.Fprintf(&b, "  %s %s  %s\n", e.At.Format("15:04:05"), e.Node, clip(e.Text, 110))
	}
	b.WriteString("\n" + instructions(v.s, snap))
	return b.String()
}

func roleText(n NodeStatus) string {
	switch {
	case n.APIUp && n.Role == "master":
		return "primary" // Patroni 3.0's REST name for it
	case n.APIUp:
		return n.Role
	case n.PgnodedPID == 0:
		return "-"
	default:
		return "?"
	}
}

func stateText(n NodeStatus) string {
	switch {
	case n.APIUp && n.ReplState != "":
		return n.ReplState
	case n.APIUp:
		return n.State
	case n.PgnodedPID == 0:
		return "pgnoded down"
	default:
		return "api not answering"
	}
}

func pidText(pid int) string {
	if pid == 0 {
		return "down"
	}
	return fmt.Sprint(pid)
}

// writeTable pads the columns to their widest cell, then lets style decorate each padded cell.
func writeTable(b *strings.Builder, rows [][]string, style func(row, col int, cell string) string) {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for ri, r := range rows {
		var line strings.Builder
		for i, c := range r {
			cell := c
			if i < len(r)-1 {
				cell += strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)+2)
			}
			line.WriteString(style(ri, i, cell))
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// clip shortens s to n characters, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// ansiRe matches the escape sequences the view uses.
var ansiRe = regexp.MustCompile("\033\\[[0-9;]*[A-Za-z]")

// visibleLen is the on-screen width of a line (runes, escape sequences excluded).
func visibleLen(s string) int { return utf8.RuneCountInString(ansiRe.ReplaceAllString(s, "")) }

// termSize is the terminal's width and height; zeros when w is not a terminal.
func termSize(w io.Writer) (width, height int) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0
	}
	return int(ws.Col), int(ws.Row)
}

// rel shows path relative to the current directory when it lies below it.
func rel(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if r, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
