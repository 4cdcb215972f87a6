package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

type runFunc = func(ctx context.Context, a *app, pos []string) error

func listCommand(topology bool) command {
	c := command{
		synopsis: "[CLUSTER...] [-e] [-t] [-W | -w SECONDS] [-f pretty|tsv|json|yaml]",
		help:     "List the members of a cluster",
	}
	if topology {
		c.help = "List the members as a replication tree (replicatefrom tags)"
	}
	c.setup = func(f *flags) runFunc {
		var extended, ts bool
		var watch watchValue
		f.boolVar(&extended, "show the Pending restart, Scheduled restart and Tags columns", "-e", "--extended")
		f.boolVar(&ts, "print a timestamp before each table", "-t", "--timestamp")
		f.value(&watch, "redraw every SECONDS until interrupted (a bare --watch: every second)", "-w", "--watch")
		f.value(fixedWatch{w: &watch, every: patronictlWatch}, "redraw every 2 seconds", "-W")
		return func(ctx context.Context, a *app, pos []string) error {
			opts := listOpts{extended: extended, topology: topology, format: a.g.format}
			return a.list(ctx, pos, opts, time.Duration(watch), ts)
		}
	}
	return c
}

// listOpts selects what list prints.
type listOpts struct {
	extended bool
	topology bool
	format   string
}

func (a *app) list(ctx context.Context, names []string, opts listOpts, every time.Duration, ts bool) error {
	if len(names) == 0 {
		name, err := a.clusterName(nil)
		if err != nil {
			return err
		}
		names = []string{name}
	}
	for {
		if every > 0 && ctx.Err() != nil {
			return nil // interrupted (Ctrl-C): the normal end of --watch
		}
		if every > 0 && a.env.Terminal {
			io.WriteString(a.env.Stdout, "\033[H\033[2J")
		}
		if ts || every > 0 {
			a.println(stampSeconds(a.now()))
		}
		for _, name := range names {
			v, err := a.view(ctx, name)
			if err != nil {
				if every == 0 {
					return err
				}
				if ctx.Err() != nil {
					return nil
				}
				fmt.Fprintf(a.env.Stderr, "pgnodectl: %s: %v\n", a.cmd, err)
				continue
			}
			if err := renderMembers(a.env.Stdout, &v, name, opts); err != nil {
				return err
			}
		}
		if every == 0 {
			return nil
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// renderMembers writes the member table of one cluster and, in pretty
// output, the maintenance-mode and scheduled-switchover notes under it.
func renderMembers(w io.Writer, v *cluster.View, name string, opts listOpts) error {
	doc := clusterAsJSON(v)
	t := memberTable(v, doc, name, opts)
	if err := t.render(w, opts.format); err != nil {
		return err
	}
	if opts.format != "" && opts.format != "pretty" {
		return nil
	}
	if info := serviceInfo(doc); len(info) > 0 {
		_, err := fmt.Fprintln(w, " "+strings.Join(info, "\n "))
		return err
	}
	return nil
}

// memberTable is patronictl 3.0.2's output_members table, with the system
// identifier in the title as patronictl 2.x and 3.1+ print it.
func memberTable(v *cluster.View, doc cluster.Doc, name string, opts listOpts) *table {
	columns := []string{"Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"}
	var withHost []cluster.DocMember
	for _, m := range doc.Members {
		if m.Host != "" {
			withHost = append(withHost, m)
		}
	}
	anyOf := func(has func(m cluster.DocMember) bool) bool {
		for _, m := range withHost {
			if has(m) {
				return true
			}
		}
		return false
	}
	pending := opts.extended || anyOf(func(m cluster.DocMember) bool { return m.PendingRestart })
	scheduled := opts.extended || anyOf(func(m cluster.DocMember) bool { return len(m.ScheduledRestart) > 0 })
	tags := opts.extended || anyOf(func(m cluster.DocMember) bool { return len(m.Tags) > 0 })
	for _, c := range []struct {
		name string
		on   bool
	}{{"Pending restart", pending}, {"Scheduled restart", scheduled}, {"Tags", tags}} {
		if c.on {
			columns = append(columns, c.name)
		}
	}
	hosts := map[string]bool{}
	appendPort := false
	for _, m := range withHost {
		hosts[m.Host] = true
		if m.Port != 0 && m.Port != 5432 {
			appendPort = true
		}
	}
	appendPort = appendPort || len(hosts) < len(withHost)

	members := doc.Members
	if opts.topology {
		members = topologySort(members)
	}
	t := &table{title: clusterTitle(v, name), columns: columns,
		align: map[string]byte{"Lag in MB": 'r', "TL": 'r'}}
	for _, m := range members {
		host := m.Host
		if appendPort && host != "" && m.Port != 0 {
			host = fmt.Sprintf("%s:%d", host, m.Port)
		}
		row := []any{name, m.Name, host, titleCase(strings.ReplaceAll(m.Role, "_", " ")), m.State, timelineCell(m.Timeline), lagCell(m.Lag)}
		if pending {
			row = append(row, map[bool]string{true: "*", false: ""}[m.PendingRestart])
		}
		if scheduled {
			row = append(row, scheduledRestartCell(m.ScheduledRestart))
		}
		if tags {
			var cell any = ""
			if len(m.Tags) > 0 {
				cell = m.Tags
			}
			row = append(row, cell)
		}
		t.rows = append(t.rows, row)
	}
	return t
}

// clusterTitle is " Cluster: <name> (<sysid>|uninitialized|initializing) ".
func clusterTitle(v *cluster.View, name string) string {
	init := "uninitialized"
	if v.Initialize != nil {
		init = *v.Initialize
		if init == "" {
			init = "initializing"
		}
	}
	return fmt.Sprintf(" Cluster: %s (%s) ", name, init)
}

func timelineCell(tl int) any {
	if tl == 0 {
		return ""
	}
	return tl
}

// lagCell is the lag in MB rounded half to even as Python's round(), "unknown", or "" for the leader.
func lagCell(lag any) any {
	switch l := lag.(type) {
	case int64:
		return int64(math.RoundToEven(float64(l) / 1024 / 1024))
	case string:
		return l
	}
	return ""
}

func scheduledRestartCell(sr map[string]any) string {
	if len(sr) == 0 {
		return ""
	}
	s := fmt.Sprint(sr["schedule"])
	if v, ok := sr["postgres_version"]; ok {
		s += fmt.Sprintf(" if version < %v", v)
	}
	return s
}

// titleCase is Python's str.title for role names ("sync standby" -> "Sync Standby").
func titleCase(s string) string {
	words := strings.Split(s, " ")
	for i, w := range words {
		if w != "" {
			words[i] = strings.ToUpper(w[:1]) + strings.ToLower(w[1:])
		}
	}
	return strings.Join(words, " ")
}

// serviceInfo are the notes printed under the table.
func serviceInfo(doc cluster.Doc) []string {
	var out []string
	if doc.Pause {
		out = append(out, "Maintenance mode: on")
	}
	if s := doc.ScheduledSwitchover; s != nil {
		info := "Switchover scheduled at: " + s.At
		if s.From != "" {
			info += fmt.Sprintf("\n%24s: %s", "from", s.From)
		}
		if s.To != "" {
			info += fmt.Sprintf("\n%24s: %s", "to", s.To)
		}
		out = append(out, info)
	}
	return out
}

// topologySort orders members as a tree: the leader, then each member under
// the replica named by its replicatefrom tag (or under the leader), children
// indented with "+ ". Members unreachable from the leader (a replicatefrom
// cycle) are listed under the leader rather than dropped.
func topologySort(members []cluster.DocMember) []cluster.DocMember {
	leader := ""
	replicas := map[string]bool{}
	for _, m := range members {
		if strings.HasSuffix(m.Role, "leader") {
			if leader == "" {
				leader = m.Name
			}
		} else {
			replicas[m.Name] = true
		}
	}
	children := map[string][]cluster.DocMember{}
	var root *cluster.DocMember
	for i, m := range members {
		if m.Name == leader {
			root = &members[i]
			continue
		}
		parent, _ := m.Tags["replicatefrom"].(string)
		if parent == "" || parent == m.Name || !replicas[parent] {
			parent = leader
		}
		children[parent] = append(children[parent], m)
	}
	var out []cluster.DocMember
	seen := map[string]bool{}
	var walk func(m cluster.DocMember, level int)
	walk = func(m cluster.DocMember, level int) {
		if seen[m.Name] {
			return
		}
		seen[m.Name] = true
		kids := children[m.Name]
		if level > 0 {
			m.Name = strings.Repeat(" ", (level-1)*2) + "+ " + m.Name
		}
		out = append(out, m)
		for _, k := range kids {
			walk(k, level+1)
		}
	}
	if root != nil {
		walk(*root, 0)
	} else {
		for _, k := range children[""] {
			walk(k, 1)
		}
	}
	for _, m := range members {
		if !seen[m.Name] && m.Name != leader {
			walk(m, 1)
		}
	}
	return out
}

func historyCommand() command {
	return command{
		synopsis: "[CLUSTER] [-f pretty|tsv|json|yaml]",
		help:     "Show the timeline history (failovers and switchovers)",
		setup: func(f *flags) runFunc {
			return func(ctx context.Context, a *app, pos []string) error {
				_, v, err := a.clusterView(ctx, pos)
				if err != nil {
					return err
				}
				return historyTable(&v).render(a.env.Stdout, a.g.format)
			}
		},
	}
}

// historyTable has one row per timeline switch.
func historyTable(v *cluster.View) *table {
	t := &table{columns: []string{"TL", "LSN", "Reason", "Timestamp", "New Leader"},
		align: map[string]byte{"TL": 'r', "LSN": 'r'}, keepEmpty: true}
	for _, h := range v.History {
		t.rows = append(t.rows, []any{h.Timeline, h.LSN, h.Reason, h.Timestamp, h.NewLeader})
	}
	return t
}

func showConfigCommand() command {
	return command{
		synopsis: "[CLUSTER]",
		help:     "Show the cluster's dynamic configuration (the config key) as YAML",
		setup: func(f *flags) runFunc {
			return func(ctx context.Context, a *app, pos []string) error {
				name, v, err := a.clusterView(ctx, pos)
				if err != nil {
					return err
				}
				if len(v.ConfigRaw) == 0 {
					return fmt.Errorf("cluster %s has no config key in etcd", name)
				}
				data, err := decodeConfig(v.ConfigRaw)
				if err != nil {
					return err
				}
				s, err := toYAML(data, false)
				if err != nil {
					return err
				}
				_, err = io.WriteString(a.env.Stdout, s)
				return err
			}
		},
	}
}

// decodeConfig parses the config key into normalised values; an absent key is {}.
func decodeConfig(raw []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("the config key is not valid JSON: %w", err)
	}
	m, ok := normalize(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the config key is not a JSON object")
	}
	return m, nil
}

// clusterName is the single optional CLUSTER argument, defaulting to the configured scope.
func (a *app) clusterName(pos []string) (string, error) {
	if len(pos) > 1 {
		return "", usagef("too many arguments: %s", strings.Join(pos[1:], " "))
	}
	if len(pos) == 1 && pos[0] != "" {
		return pos[0], nil
	}
	cfg, err := a.config()
	if err != nil {
		return "", err
	}
	if cfg.Scope == "" {
		return "", usagef("no cluster name given and no scope in the configuration")
	}
	return cfg.Scope, nil
}

// clusterView reads the cluster named by the single optional CLUSTER argument (default: the configured scope).
func (a *app) clusterView(ctx context.Context, pos []string) (string, cluster.View, error) {
	name, err := a.clusterName(pos)
	if err != nil {
		return "", cluster.View{}, err
	}
	v, err := a.view(ctx, name)
	return name, v, err
}
