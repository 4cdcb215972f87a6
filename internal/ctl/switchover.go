package ctl

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

const (
	actionSwitchover = "switchover"
	actionFailover   = "failover"
)

func switchoverCommand(action string) command {
	c := command{
		synopsis: "[CLUSTER] [--leader NAME] [--candidate NAME] [--scheduled TIME|now] [--force]",
		help:     "Hand the leader role over to a replica (planned)",
	}
	if action == actionFailover {
		c.synopsis = "[CLUSTER] --candidate NAME [--force]"
		c.help = "Promote a replica, also when there is no leader"
	}
	c.setup = func(f *flags) runFunc {
		var r switchRequest
		f.stringVar(&r.leader, "NAME of the current leader (a failover naming it becomes a switchover, as in patronictl 3.0.2)",
			"--leader", "--primary", "--master")
		f.stringVar(&r.candidate, "NAME of the member to promote", "--candidate")
		if action == actionSwitchover {
			f.stringVar(&r.scheduled, "TIME of the switchover: ISO 8601 (local time when it has no zone) or now",
				"--scheduled")
		}
		f.boolVar(&r.force, "ask no questions", "--force")
		return func(ctx context.Context, a *app, pos []string) error {
			r.action = action
			if action == actionFailover && r.leader != "" {
				r.action = actionSwitchover
			}
			return a.switchover(ctx, pos, r)
		}
	}
	return c
}

// switchRequest is what the operator asked for.
type switchRequest struct {
	action    string
	leader    string
	candidate string
	scheduled string
	force     bool
}

// failoverBody is the JSON of POST /switchover and POST /failover.
type failoverBody struct {
	Leader      string `json:"leader,omitempty"`
	Candidate   string `json:"candidate,omitempty"`
	ScheduledAt string `json:"scheduled_at,omitempty"`
}

func (a *app) switchover(ctx context.Context, pos []string, r switchRequest) error {
	name, v, err := a.clusterView(ctx, pos)
	if err != nil {
		return err
	}
	a.println("Current cluster topology")
	if err := renderMembers(a.env.Stdout, &v, name, listOpts{}); err != nil {
		return err
	}
	body, err := a.resolveSwitch(&v, name, r)
	if err != nil {
		return err
	}
	// The leader runs the operation; without one (or without its member key),
	// the candidate promotes itself.
	via := ""
	if l := leaderName(&v); l != "" {
		via = v.Members[l].APIURL
	}
	if via == "" {
		via = v.Members[body.Candidate].APIURL
	}
	resp, err := a.call(ctx, via, http.MethodPost, r.action, body)
	if err == nil && resp.status == http.StatusNotImplemented && r.action == actionSwitchover &&
		strings.Contains(resp.text, "Server does not support this operation") {
		resp, err = a.call(ctx, via, http.MethodPost, actionFailover, body)
	}
	switch {
	case err != nil:
		a.printf("%s Could not %s using Patroni api, falling back to DCS\n", stamp(a.now()), r.action)
		st, serr := a.store()
		if serr != nil {
			return serr
		}
		f := cluster.Failover{Leader: body.Leader, Member: body.Candidate, ScheduledAt: body.ScheduledAt}
		if werr := st.SetFailover(ctx, name, f); werr != nil {
			return fmt.Errorf("REST API unreachable (%v) and writing the failover key failed: %w", err, werr)
		}
	case resp.ok():
		a.printf("%s %s\n", stamp(a.now()), resp.text)
	default:
		return fmt.Errorf("%s failed, details: %d, %s", titleCase(r.action), resp.status, resp.text)
	}
	after, err := a.view(ctx, name)
	if err != nil {
		return err
	}
	return renderMembers(a.env.Stdout, &after, name, listOpts{})
}

// resolveSwitch validates the request against the cluster as patronictl
// does, asking for what is missing unless --force, and builds the body.
func (a *app) resolveSwitch(v *cluster.View, name string, r switchRequest) (failoverBody, error) {
	var body failoverBody
	cur := leaderName(v)
	if r.action == actionSwitchover && cur == "" {
		return body, fmt.Errorf("This cluster has no leader")
	}
	leader := r.leader
	if leader == "" {
		if r.force || r.action == actionFailover {
			leader = cur
		} else {
			label := "Primary"
			if cluster.IsStandbyCluster(v.Config) {
				label = "Standby Leader"
			}
			var err error
			if leader, err = a.prompt(label, cur); err != nil {
				return body, err
			}
		}
	}
	if leader != "" && cur != "" && leader != cur {
		return body, fmt.Errorf("Member %s is not the leader of cluster %s", leader, name)
	}
	var candidates []string
	for _, m := range sortedMembers(v) {
		if m.Name != leader && !cluster.NoFailover(m.Tags) {
			candidates = append(candidates, m.Name)
		}
	}
	if len(candidates) == 0 {
		return body, fmt.Errorf("No candidates found to %s to", r.action)
	}
	candidate := r.candidate
	if candidate == "" && !r.force {
		var err error
		if candidate, err = a.prompt("Candidate "+pyList(candidates), ""); err != nil {
			return body, err
		}
	}
	if r.action == actionFailover && candidate == "" {
		return body, fmt.Errorf("Failover could be performed only to a specific candidate")
	}
	if candidate != "" && candidate == leader {
		return body, fmt.Errorf("%s target and source are the same.", titleCase(r.action))
	}
	if candidate != "" && !slices.Contains(candidates, candidate) {
		if _, ok := v.Members[candidate]; !ok {
			return body, fmt.Errorf("candidate %q does not exist in cluster %s", candidate, name)
		}
		return body, fmt.Errorf("candidate %q has the nofailover tag and cannot be promoted", candidate)
	}
	at, err := a.schedule(v, r, "switchover")
	if err != nil {
		return body, err
	}
	body = failoverBody{Leader: leader, Candidate: candidate}
	if !at.IsZero() {
		body.ScheduledAt = pyfmt.Isoformat(at, 'T')
	}
	if !r.force {
		demote := ""
		if leader != "" {
			demote = ", demoting current leader " + leader
		}
		if body.ScheduledAt != "" {
			err = a.confirmOrAbort(fmt.Sprintf("Are you sure you want to schedule %s of cluster %s at %s%s?",
				r.action, name, body.ScheduledAt, demote), "Aborting scheduled "+r.action)
		} else {
			err = a.confirmOrAbort(fmt.Sprintf("Are you sure you want to %s cluster %s%s?", r.action, name, demote),
				"Aborting "+r.action)
		}
	}
	return body, err
}

// schedule asks for (unless --force) and parses the time of a switchover; zero means now.
func (a *app) schedule(v *cluster.View, r switchRequest, what string) (time.Time, error) {
	if r.action != actionSwitchover {
		return time.Time{}, nil
	}
	s := r.scheduled
	if s == "" && !r.force {
		var err error
		if s, err = a.askWhen(what); err != nil {
			return time.Time{}, err
		}
	}
	at, err := parseScheduled(s, a.now().Location())
	if err != nil {
		return time.Time{}, err
	}
	if !at.IsZero() && isPaused(v) {
		return time.Time{}, fmt.Errorf("Can't schedule %s in the paused state", what)
	}
	return at, nil
}

// askWhen is patronictl's "When should the X take place" question.
func (a *app) askWhen(what string) (string, error) {
	next := a.now().Add(time.Hour).Format("2006-01-02T15:04")
	sep := " "
	if what == "restart" {
		sep = ""
	}
	return a.prompt(fmt.Sprintf("When should the %s take place (e.g. %s%s) ", what, next, sep), "now")
}

// pyList renders names as Python prints a list of strings: ['a', 'b'].
func pyList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + n + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}
