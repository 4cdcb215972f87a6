package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Event is one role-change line of a node's pgnoded log.
type Event struct {
	At   time.Time
	Node string
	Text string
}

// eventRe selects the log lines that tell the failover story.
var eventRe = regexp.MustCompile(`role changed|promoted|acquire|leader key|following a new leader|VIP changed|postmaster exited|lease (keepalive|lost)|demot|rewind|trying to bootstrap|long action failed|stopping|shutting down|pgnoded starting|removed .*VIP|crash`)

// noiseAttrs are log fields the view drops to keep lines short.
var noiseAttrs = regexp.MustCompile(` (member|component|version|scope|config|pid|action|lease_id|output)=("[^"]*"|\S*)`)

// tailBytes is how much of each log is read per refresh.
const tailBytes = 64 << 10

// recentEvents returns the last max role-change events of every node, oldest first.
func recentEvents(s *State, max int) []Event {
	var all []Event
	for _, n := range s.Nodes {
		all = append(all, parseEvents(n.Name, readTail(n.Log(), tailBytes))...)
		all = append(all, parseFenceEvents(n.Name, readTail(filepath.Join(n.Dir, "pgnoded-fence.log"), tailBytes))...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].At.Before(all[j].At) })
	if len(all) > max {
		all = all[len(all)-max:]
	}
	return all
}

// readTail returns up to n bytes from the end of a file, starting at a line boundary.
func readTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-n, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return ""
	}
	s := string(b)
	if off > 0 {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	return s
}

// parseEvents picks the role-change lines of pgnoded's plain log
// ("2006-01-02 15:04:05 -0700 LEVEL: message key=value ...").
func parseEvents(node, log string) []Event {
	var out []Event
	for _, line := range strings.Split(log, "\n") {
		if len(line) < 26 {
			continue
		}
		at, err := time.Parse("2006-01-02 15:04:05 -0700", line[:25])
		if err != nil {
			continue
		}
		rest := line[26:]
		_, msg, ok := strings.Cut(rest, ": ")
		if !ok || !eventRe.MatchString(msg) {
			continue
		}
		if lvl, _, _ := strings.Cut(rest, ":"); lvl != "INFO" {
			msg = lvl + ": " + msg
		}
		out = append(out, Event{At: at.Local(), Node: node, Text: noiseAttrs.ReplaceAllString(msg, "")})
	}
	return out
}

// fenceLineRe splits a line of the fence guard's log (slog's text format).
var fenceLineRe = regexp.MustCompile(`^time=(\S+) level=(\S+) msg=("(?:[^"\\]|\\.)*"|\S+)(.*)$`)

// fenceEventRe selects the guard's actions: fencing postgres and releasing the VIP.
var fenceEventRe = regexp.MustCompile(`deadline passed|VIP released|releasing the VIP|killed|stopped postgres`)

// fenceNoise are the guard's fields the view drops.
var fenceNoise = regexp.MustCompile(` (component|socket|data_dir|client)=("[^"]*"|\S*)`)

// parseFenceEvents picks the actions of a node's fence guard from its log.
func parseFenceEvents(node, log string) []Event {
	var out []Event
	for _, line := range strings.Split(log, "\n") {
		m := fenceLineRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		msg := m[3]
		if u, err := strconv.Unquote(msg); err == nil {
			msg = u
		}
		if !fenceEventRe.MatchString(msg) {
			continue
		}
		text := "fence guard: " + msg + fenceNoise.ReplaceAllString(m[4], "")
		if m[2] != "INFO" {
			text = m[2] + ": " + text
		}
		out = append(out, Event{At: at.Local(), Node: node, Text: text})
	}
	return out
}
