package ctl

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// roleChoices are the values of -r/--role (patronictl 3.0.2's).
var roleChoices = []string{"leader", "primary", "standby-leader", "replica", "standby", "any", "master"}

func checkRole(role string) error {
	if !slices.Contains(roleChoices, role) {
		return usagef("invalid --role %q: expected one of %s", role, strings.Join(roleChoices, ", "))
	}
	return nil
}

// roleForceSetup is the setup of a command that acts on members chosen by
// -r ROLE ("<verb> only members with this ROLE") and asks unless --force;
// run gets the checked role.
func roleForceSetup(verb string, run func(ctx context.Context, a *app, pos []string, role string, force bool) error) func(f *flags) runFunc {
	return func(f *flags) runFunc {
		role, force := "any", false
		f.stringVar(&role, verb+" only members with this ROLE: "+strings.Join(roleChoices, ", "), "-r", "--role")
		f.boolVar(&force, "ask no questions", "--force")
		return func(ctx context.Context, a *app, pos []string) error {
			if err := checkRole(role); err != nil {
				return err
			}
			return run(ctx, a, pos, role, force)
		}
	}
}

// membersWithRole lists the members a --role selects, ordered by name.
func membersWithRole(v *cluster.View, role string) []cluster.Member {
	leader := leaderName(v)
	switch role {
	case "leader", "master", "primary", "standby-leader":
		m, ok := v.Members[leader]
		if leader == "" || !ok {
			return nil
		}
		m.Name = leader
		isPrimary := m.Role == "master" || m.Role == "primary"
		if role == "leader" || (role == "standby-leader" && !isPrimary) || (role != "standby-leader" && m.Role != "standby_leader") {
			return []cluster.Member{m}
		}
		return nil
	}
	var out []cluster.Member
	for _, m := range sortedMembers(v) {
		if role == "any" || m.Name != leader {
			out = append(out, m)
		}
	}
	return out
}

// membersLeaderFirst are the members with an api_url, the leader first.
func membersLeaderFirst(v *cluster.View) []cluster.Member {
	var out []cluster.Member
	leader := leaderName(v)
	if m, ok := v.Members[leader]; ok && leader != "" && m.APIURL != "" {
		m.Name = leader
		out = append(out, m)
	}
	for _, m := range sortedMembers(v) {
		if m.APIURL != "" && m.Name != leader {
			out = append(out, m)
		}
	}
	return out
}

// clusterAndMembers splits "CLUSTER [MEMBER...]" and reads the cluster.
// patronictl wants the cluster first; pgnodectl also accepts member names
// alone when the first one is a member of the configured scope's cluster.
func (a *app) clusterAndMembers(ctx context.Context, pos []string) (string, []string, cluster.View, error) {
	cfg, err := a.config()
	if err != nil {
		return "", nil, cluster.View{}, err
	}
	scope := cfg.Scope
	switch {
	case len(pos) == 0 && scope == "":
		return "", nil, cluster.View{}, usagef("no cluster name given and no scope in the configuration")
	case len(pos) == 0:
		v, err := a.view(ctx, scope)
		return scope, nil, v, err
	case scope == "" || pos[0] == scope:
		v, err := a.view(ctx, pos[0])
		return pos[0], pos[1:], v, err
	}
	v, err := a.view(ctx, scope)
	if err != nil {
		return "", nil, cluster.View{}, err
	}
	if _, isMember := v.Members[pos[0]]; isMember {
		return scope, pos, v, nil
	}
	v, err = a.view(ctx, pos[0])
	return pos[0], pos[1:], v, err
}

// memberQuery is what get_members needs to pick the members of an action.
type memberQuery struct {
	names  []string
	role   string
	force  bool
	action string // restart, reload, reinitialize, flush
	ask    bool   // confirm before returning
}

// selectMembers is patronictl's get_members: it prints the cluster, keeps the
// named members that have the role (all of them when none is named), asks
// for a member when there is none and --force is not given, and confirms.
func (a *app) selectMembers(v *cluster.View, name string, q memberQuery) ([]cluster.Member, error) {
	withRole := membersWithRole(v, q.role)
	cands := make([]string, 0, len(withRole))
	for _, m := range withRole {
		cands = append(cands, m.Name)
	}
	if len(q.names) == 0 && len(cands) == 0 {
		return nil, fmt.Errorf("%s cluster doesn't have any members", name)
	}
	if err := renderMembers(a.env.Stdout, v, name, listOpts{}); err != nil {
		return nil, err
	}
	names := q.names
	if len(names) > 0 {
		for _, n := range names {
			if _, ok := v.Members[n]; !ok {
				return nil, fmt.Errorf("%s is not a member of cluster %s", n, name)
			}
		}
		names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !slices.Contains(cands, n) })
		if len(names) == 0 {
			return nil, fmt.Errorf("No %s among provided members", q.role)
		}
	} else if q.action != "reinitialize" {
		names = cands
	}
	if len(names) == 0 && !q.force {
		n, err := a.prompt(fmt.Sprintf("Which member do you want to %s [%s]?", q.action, strings.Join(cands, ", ")), "")
		if err != nil {
			return nil, err
		}
		if !slices.Contains(cands, n) {
			return nil, fmt.Errorf("%s is not a member of cluster %s", n, name)
		}
		names = []string{n}
	}
	if len(names) == 0 {
		return nil, usagef("name the member to %s", q.action)
	}
	var out []cluster.Member
	for _, m := range withRole {
		if slices.Contains(names, m.Name) {
			out = append(out, m)
		}
	}
	if q.ask {
		if err := a.confirmMembers(out, q.force, q.action, ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// confirmMembers is patronictl's confirm_members_action.
func (a *app) confirmMembers(members []cluster.Member, force bool, action, scheduledAt string) error {
	if force {
		return nil
	}
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = m.Name
	}
	if scheduledAt != "" {
		return a.confirmOrAbort(fmt.Sprintf("Are you sure you want to schedule %s of members %s at %s?",
			action, strings.Join(names, ", "), scheduledAt), "Aborted scheduled "+action)
	}
	return a.confirmOrAbort(fmt.Sprintf("Are you sure you want to %s members %s?", action, strings.Join(names, ", ")),
		"Aborted "+action)
}

// checkResponse prints patronictl's Failed/Success line and reports success.
func (a *app) checkResponse(r response, err error, member, action string, silentSuccess bool) bool {
	switch {
	case err != nil:
		a.printf("Failed: %s for member %s, (%v)\n", action, member, err)
		return false
	case r.status >= 400:
		a.printf("Failed: %s for member %s, status code=%d, (%s)\n", action, member, r.status, r.text)
		return false
	case !silentSuccess:
		a.printf("Success: %s for member %s\n", action, member)
	}
	return true
}

// failedOn is the error of an action that failed on some members.
func failedOn(action string, failed, total int) error {
	if failed == 0 {
		return nil
	}
	return fmt.Errorf("%s failed on %d of %d members", action, failed, total)
}
