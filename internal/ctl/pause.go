package ctl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func pauseCommand(pause bool) command {
	c := command{synopsis: "[CLUSTER] [--wait]", help: "Enter maintenance mode: no automatic failover, start or stop"}
	if !pause {
		c.help = "Leave maintenance mode"
	}
	c.setup = func(f *flags) runFunc {
		var wait bool
		f.boolVar(&wait, "wait until every member applied it", "--wait")
		return func(ctx context.Context, a *app, pos []string) error {
			name, err := a.clusterName(pos)
			if err != nil {
				return err
			}
			return a.togglePause(ctx, name, pause, wait)
		}
	}
	return c
}

// togglePause sends PATCH /config {"pause": true|null} to the first member
// that answers, leader first, as patronictl's toggle_pause does.
func (a *app) togglePause(ctx context.Context, name string, pause, wait bool) error {
	v, err := a.view(ctx, name)
	if err != nil {
		return err
	}
	if isPaused(&v) == pause {
		if pause {
			return errors.New("Cluster is already paused")
		}
		return errors.New("Cluster is not paused")
	}
	verb, done := "pause", "paused"
	var value any = true
	if !pause {
		verb, done, value = "resume", "resumed", nil
	}
	for _, m := range membersLeaderFirst(&v) {
		r, err := a.call(ctx, m.APIURL, http.MethodPatch, "config", map[string]any{"pause": value})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(a.env.Stderr, "pgnodectl: %s: member %s is not accessible: %v\n", a.cmd, m.Name, err)
			continue
		}
		if r.status != http.StatusOK {
			return fmt.Errorf("Failed: %s cluster management status code=%d, (%s)", verb, r.status, r.text)
		}
		if wait {
			return a.waitPause(ctx, name, &v, pause)
		}
		a.printf("Success: cluster management is %s\n", done)
		return nil
	}
	return errors.New("Can not find accessible cluster member")
}

// waitPause polls the member keys until every member that was there shows
// the new pause state, for at most loop_wait + 1 seconds.
func (a *app) waitPause(ctx context.Context, name string, old *cluster.View, pause bool) error {
	verb, done := "pause", "paused"
	if !pause {
		verb, done = "resume", "resumed"
	}
	a.printf("'%s' request sent, waiting until it is recognized by all nodes\n", verb)
	lw := loopWait(old)
	deadline := a.now().Add(time.Duration(lw+1) * time.Second)
	for {
		v, err := a.view(ctx, name)
		if err != nil {
			return err
		}
		var remaining []string
		for _, m := range sortedMembers(&v) {
			if prev, ok := old.Members[m.Name]; ok && prev.APIURL != "" && m.Pause != pause {
				remaining = append(remaining, m.Name)
			}
		}
		if len(remaining) == 0 {
			a.printf("Success: cluster management is %s\n", done)
			return nil
		}
		if !a.now().Before(deadline) {
			return fmt.Errorf("%s members didn't recognized pause state after %d seconds", strings.Join(remaining, ", "), lw)
		}
		if err := sleepCtx(ctx, min(time.Second, a.poll)); err != nil {
			return err
		}
	}
}
