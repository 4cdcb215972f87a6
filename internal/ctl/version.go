package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/pgnoded/pgnoded/internal/buildinfo"
)

func versionCommand() command {
	return command{
		synopsis: "[CLUSTER [MEMBER...]]",
		help:     "Print pgnodectl's version, and the members' when a cluster is named",
		setup: func(f *flags) runFunc {
			return func(ctx context.Context, a *app, pos []string) error {
				a.printf("pgnodectl version %s\n", buildinfo.Version)
				if len(pos) == 0 {
					return nil
				}
				name, names := pos[0], pos[1:]
				v, err := a.view(ctx, name)
				if err != nil {
					return err
				}
				a.println("")
				for _, m := range sortedMembers(&v) {
					if m.APIURL == "" || (len(names) > 0 && !slices.Contains(names, m.Name)) {
						continue
					}
					a.println(m.Name + ": " + a.memberVersion(ctx, m.APIURL))
				}
				return nil
			}
		},
	}
}

// memberVersion asks GET /patroni for the Patroni and PostgreSQL versions.
func (a *app) memberVersion(ctx context.Context, apiURL string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := a.call(ctx, apiURL, http.MethodGet, "patroni", nil)
	if err != nil {
		return "failed to get version: " + err.Error()
	}
	var doc struct {
		Patroni struct {
			Version string `json:"version"`
		} `json:"patroni"`
		ServerVersion int `json:"server_version"`
	}
	if err := json.Unmarshal([]byte(r.text), &doc); err != nil {
		return fmt.Sprintf("failed to get version: %d, %s", r.status, r.text)
	}
	s := "Patroni " + doc.Patroni.Version
	if doc.ServerVersion > 0 {
		s += " PostgreSQL " + formatPGVersion(doc.ServerVersion)
	}
	return s
}

// formatPGVersion turns server_version_num into 15.4 (or 9.6.24 before 10).
func formatPGVersion(v int) string {
	if v < 100000 {
		return fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
	}
	return fmt.Sprintf("%d.%d", v/10000, v%100)
}
