package ha

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// rolesPG records the role calls createRoles makes.
type rolesPG struct {
	Postgres
	calls []string
}

func (p *rolesPG) SetPassword(_ context.Context, role, password string) error {
	p.calls = append(p.calls, fmt.Sprintf("password %s=%s", role, password))
	return nil
}

func (p *rolesPG) EnsureRole(_ context.Context, r cluster.LoginRole) error {
	p.calls = append(p.calls, fmt.Sprintf("role %s=%s replication=%v", r.Name, r.Password, r.Replication))
	return nil
}

func (p *rolesPG) GrantRewind(_ context.Context, role string) error {
	p.calls = append(p.calls, "grant rewind "+role)
	return nil
}

func TestCreateRoles(t *testing.T) {
	su := Credential{Username: "postgres", Password: "su"}
	for _, tc := range []struct {
		name  string
		creds Credentials
		want  []string
	}{
		{"all three", Credentials{Superuser: su, Replication: Credential{"replicator", "r"}, Rewind: Credential{"rewind", "w"}},
			[]string{"password postgres=su", "role replicator=r replication=true", "role rewind=w replication=false", "grant rewind rewind"}},
		{"no superuser password, no rewind role", Credentials{Superuser: Credential{Username: "postgres"}, Replication: Credential{"replicator", ""}},
			[]string{"role replicator= replication=true"}},
		{"roles that are the superuser are left alone", Credentials{Superuser: su, Replication: su, Rewind: su},
			[]string{"password postgres=su"}},
	} {
		pg := &rolesPG{}
		if err := createRoles(context.Background(), pg, tc.creds); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(pg.calls, tc.want) {
			t.Errorf("%s: calls %q, want %q", tc.name, pg.calls, tc.want)
		}
	}
}
