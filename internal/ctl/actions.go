package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
)

func restartCommand() command {
	return command{
		synopsis: "[CLUSTER] [MEMBER...] [-r ROLE] [--any] [--scheduled TIME|now] [--pg-version V] [--pending] [--timeout S] [--force]",
		help:     "Restart postgres on members (POST /restart)",
		setup: func(f *flags) runFunc {
			o := restartOpts{role: "any"}
			f.stringVar(&o.role, "restart only members with this ROLE: "+strings.Join(roleChoices, ", "), "-r", "--role")
			f.boolVar(&o.any, "restart one member chosen at random", "--any")
			f.stringVar(&o.scheduled, "TIME of the restart: ISO 8601 (local time when it has no zone) or now", "--scheduled")
			f.stringVar(&o.pgVersion, "restart only if the running PostgreSQL version is lower than VERSION (e.g. 15.4)", "--pg-version")
			f.boolVar(&o.pending, "restart only members with a pending restart", "--pending")
			f.stringVar(&o.timeout, "SECONDS after which the restart counts as failed (a leader may then fail over)", "--timeout")
			f.boolVar(&o.force, "ask no questions", "--force")
			return func(ctx context.Context, a *app, pos []string) error { return a.restart(ctx, pos, o) }
		},
	}
}

type restartOpts struct {
	role, scheduled, pgVersion, timeout string
	any, pending, force                 bool
}

func (a *app) restart(ctx context.Context, pos []string, o restartOpts) error {
	if err := checkRole(o.role); err != nil {
		return err
	}
	if o.pgVersion != "" {
		if err := checkPGVersion(o.pgVersion); err != nil {
			return err
		}
	}
	name, names, v, err := a.clusterAndMembers(ctx, pos)
	if err != nil {
		return err
	}
	members, err := a.selectMembers(&v, name, memberQuery{names: names, role: o.role, force: o.force, action: "restart"})
	if err != nil {
		return err
	}
	if o.scheduled == "" && !o.force {
		if o.scheduled, err = a.askWhen("restart"); err != nil {
			return err
		}
	}
	at, err := parseScheduled(o.scheduled, a.now().Location())
	if err != nil {
		return err
	}
	shown := ""
	if !at.IsZero() {
		shown = at.Format("2006-01-02 15:04:05-07:00")
	}
	if err := a.confirmMembers(members, o.force, "restart", shown); err != nil {
		return err
	}
	if o.any && len(members) > 1 {
		members = members[a.pick(len(members)):][:1]
	}
	if o.pgVersion == "" && !o.force {
		if o.pgVersion, err = a.prompt("Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ", ""); err != nil {
			return err
		}
		if o.pgVersion != "" {
			if err := checkPGVersion(o.pgVersion); err != nil {
				return err
			}
		}
	}
	body := map[string]any{}
	if o.pending {
		body["restart_pending"] = true
	}
	if o.pgVersion != "" {
		body["postgres_version"] = o.pgVersion
	}
	if !at.IsZero() {
		if isPaused(&v) {
			return errors.New("Can't schedule restart in the paused state")
		}
		body["schedule"] = pyfmt.Isoformat(at, 'T')
	}
	if o.timeout != "" {
		body["timeout"] = o.timeout
	}
	failed := 0
	for _, m := range members {
		if _, scheduled := body["schedule"]; scheduled && o.force && len(m.ScheduledRestart) > 0 {
			r, err := a.call(ctx, m.APIURL, http.MethodDelete, "restart", nil)
			a.checkResponse(r, err, m.Name, "flush scheduled restart", true)
		}
		r, err := a.call(ctx, m.APIURL, http.MethodPost, "restart", body)
		switch {
		case err != nil:
			a.printf("Failed: restart for member %s, (%v)\n", m.Name, err)
		case r.status == http.StatusOK:
			a.printf("Success: restart on member %s\n", m.Name)
		case r.status == http.StatusAccepted:
			a.printf("Success: restart scheduled on member %s\n", m.Name)
		case r.status == http.StatusConflict:
			a.printf("Failed: another restart is already scheduled on member %s\n", m.Name)
		default:
			a.printf("Failed: restart for member %s, status code=%d, (%s)\n", m.Name, r.status, r.text)
		}
		if err != nil || !r.ok() {
			failed++
		}
	}
	return failedOn("restart", failed, len(members))
}

// checkPGVersion is Patroni's postgres_version_to_int validation: X.Y (X >= 10) or X.Y.Z.
func checkPGVersion(s string) error {
	parts := strings.Split(s, ".")
	for _, p := range parts {
		if _, err := strconv.Atoi(strings.TrimSpace(p)); err != nil {
			return usagef("Invalid PostgreSQL version: %s", s)
		}
	}
	major, _ := strconv.Atoi(parts[0])
	if len(parts) < 2 || len(parts) > 3 || (len(parts) == 2 && major < 10) {
		return usagef("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: %s", s)
	}
	return nil
}

func reloadCommand() command {
	return command{
		synopsis: "[CLUSTER] [MEMBER...] [-r ROLE] [--force]",
		help:     "Make members re-read their configuration file (POST /reload)",
		setup: roleForceSetup("reload", func(ctx context.Context, a *app, pos []string, role string, force bool) error {
			name, names, v, err := a.clusterAndMembers(ctx, pos)
			if err != nil {
				return err
			}
			members, err := a.selectMembers(&v, name, memberQuery{names: names, role: role, force: force, action: "reload", ask: true})
			if err != nil {
				return err
			}
			failed := 0
			for _, m := range members {
				r, err := a.call(ctx, m.APIURL, http.MethodPost, "reload", nil)
				switch {
				case err != nil:
					a.printf("Failed: reload for member %s, (%v)\n", m.Name, err)
					failed++
				case r.status == http.StatusOK:
					a.printf("No changes to apply on member %s\n", m.Name)
				case r.status == http.StatusAccepted:
					a.printf("Reload request received for member %s and will be processed within %d seconds\n", m.Name, loopWait(&v))
				default:
					a.printf("Failed: reload for member %s, status code=%d, (%s)\n", m.Name, r.status, r.text)
					failed++
				}
			}
			return failedOn("reload", failed, len(members))
		}),
	}
}

func reinitCommand() command {
	return command{
		synopsis: "[CLUSTER] MEMBER... [--force] [--wait]",
		help:     "Rebuild replicas from the leader (POST /reinitialize)",
		setup: func(f *flags) runFunc {
			var force, wait bool
			f.boolVar(&force, "ask no questions and cancel a running action on the member", "--force")
			f.boolVar(&wait, "wait until the members finished creating the replica", "--wait")
			return func(ctx context.Context, a *app, pos []string) error {
				name, names, v, err := a.clusterAndMembers(ctx, pos)
				if err != nil {
					return err
				}
				members, err := a.selectMembers(&v, name, memberQuery{names: names, role: "replica", force: force, action: "reinitialize", ask: true})
				if err != nil {
					return err
				}
				var waitOn []cluster.Member
				failed := 0
				for _, m := range members {
					body := map[string]any{"force": force}
					for {
						r, err := a.call(ctx, m.APIURL, http.MethodPost, "reinitialize", body)
						started := a.checkResponse(r, err, m.Name, "reinitialize", false)
						if !started && err == nil && strings.HasSuffix(r.text, " already in progress") && !force {
							again, cerr := a.confirm("Do you want to cancel it and reinitialize anyway?")
							if cerr == nil && again {
								body["force"] = true
								continue
							}
						}
						if !started {
							failed++
						} else if wait {
							waitOn = append(waitOn, m)
						}
						break
					}
				}
				if err := a.waitReinit(ctx, waitOn); err != nil {
					return err
				}
				return failedOn("reinitialize", failed, len(members))
			}
		},
	}
}

// waitReinit polls GET /patroni until no member reports "creating replica".
func (a *app) waitReinit(ctx context.Context, members []cluster.Member) error {
	var shown []string
	for len(members) > 0 {
		names := make([]string, len(members))
		for i, m := range members {
			names[i] = m.Name
		}
		if !slices.Equal(names, shown) {
			a.printf("Waiting for reinitialize to complete on: %s\n", strings.Join(names, ", "))
			shown = names
		}
		if err := sleepCtx(ctx, a.poll); err != nil {
			return err
		}
		members = slices.DeleteFunc(members, func(m cluster.Member) bool {
			state, err := a.memberState(ctx, m)
			if err != nil {
				fmt.Fprintf(a.env.Stderr, "pgnodectl: %s: %s: %v\n", a.cmd, m.Name, err)
				return false
			}
			if state != "creating replica" {
				a.printf("Reinitialize is completed on: %s\n", m.Name)
				return true
			}
			return false
		})
	}
	return nil
}

// memberState reads the state field of a member's GET /patroni.
func (a *app) memberState(ctx context.Context, m cluster.Member) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := a.call(ctx, m.APIURL, http.MethodGet, "patroni", nil)
	if err != nil {
		return "", err
	}
	var doc struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(r.text), &doc); err != nil {
		return "", fmt.Errorf("GET /patroni: %d, %s", r.status, r.text)
	}
	return doc.State, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
