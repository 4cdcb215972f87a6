package ctl

import (
	"context"
	"fmt"
	"net/http"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func flushCommand() command {
	return command{
		synopsis: "[CLUSTER] [MEMBER...] restart|switchover [-r ROLE] [--force]",
		help:     "Discard scheduled restarts or a scheduled switchover",
		setup: roleForceSetup("flush", func(ctx context.Context, a *app, pos []string, role string, force bool) error {
			if len(pos) == 0 || (pos[len(pos)-1] != "restart" && pos[len(pos)-1] != "switchover") {
				return usagef("say what to flush: restart or switchover")
			}
			target := pos[len(pos)-1]
			name, names, v, err := a.clusterAndMembers(ctx, pos[:len(pos)-1])
			if err != nil {
				return err
			}
			if target == "restart" {
				return a.flushRestarts(ctx, &v, name, memberQuery{names: names, role: role, force: force, action: "flush", ask: true})
			}
			return a.flushSwitchover(ctx, &v, name)
		}),
	}
}

func (a *app) flushRestarts(ctx context.Context, v *cluster.View, name string, q memberQuery) error {
	members, err := a.selectMembers(v, name, q)
	if err != nil {
		return err
	}
	failed := 0
	for _, m := range members {
		if len(m.ScheduledRestart) == 0 {
			a.printf("No scheduled restart for member %s\n", m.Name)
			continue
		}
		r, err := a.call(ctx, m.APIURL, http.MethodDelete, "restart", nil)
		if !a.checkResponse(r, err, m.Name, "flush scheduled restart", false) {
			failed++
		}
	}
	return failedOn("flush", failed, len(members))
}

// flushSwitchover sends DELETE /switchover to the members, leader first, and
// clears the failover key directly when none of them answers.
func (a *app) flushSwitchover(ctx context.Context, v *cluster.View, name string) error {
	if v.Failover == nil || v.Failover.ScheduledAt == "" {
		a.println("No pending scheduled switchover")
		return nil
	}
	for _, m := range membersLeaderFirst(v) {
		r, err := a.call(ctx, m.APIURL, http.MethodDelete, "switchover", nil)
		switch {
		case err != nil:
			fmt.Fprintf(a.env.Stderr, "pgnodectl: %s: member %s is not accessible: %v\n", a.cmd, m.Name, err)
			continue
		case r.status == http.StatusOK:
			a.printf("Success: %s\n", r.text)
			return nil
		case r.status == http.StatusNotFound:
			return fmt.Errorf("Failed: %s", r.text)
		}
		a.printf("Failed: member=%s, status_code=%d, (%s)\n", m.Name, r.status, r.text)
	}
	a.printf("%s Could not find any accessible member of cluster %s\n", stamp(a.now()), name)
	st, err := a.store()
	if err != nil {
		return err
	}
	return st.SetFailover(ctx, name, cluster.Failover{})
}
