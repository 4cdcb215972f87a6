package proc

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/<name>.golden (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file %s:\n--- got ---\n%s\n--- want ---\n%s", name, path, got, want)
	}
}

// renderConfig is a Pigsty-like node: the values a real patroni.yml carries.
func renderConfig() Config {
	return Config{
		Name:            "pg-test-2",
		Scope:           "pg-test",
		DataDir:         "/pg/data",
		ConfigDir:       "/pg/data",
		ListenAddresses: "10.10.10.12,127.0.0.1",
		Port:            5432,
		SocketDir:       "/var/run/postgresql",
		Database:        "postgres",
		Superuser:       Credentials{Username: "dbuser_dba", Password: "DBUser.DBA"},
		Replication:     Credentials{Username: "replicator", Password: "DBUser.Replicator"},
		Rewind:          Credentials{Username: "dbuser_dba", Password: "DBUser.DBA"},
		PgPass:          "/var/lib/pgsql/.pgpass",
		Parameters: map[string]any{
			"unix_socket_directories": "/var/run/postgresql, /tmp",
			"work_mem":                "64MB",
			"max_connections":         50, // managed: ignored locally
		},
	}
}

// renderDynamic is a bootstrap.dcs.postgresql.parameters as decoded from JSON.
func renderDynamic() map[string]any {
	return map[string]any{
		"max_connections":          float64(500),
		"max_wal_senders":          float64(1), // below the minimum: default 10
		"wal_keep_size":            "20GB",
		"shared_buffers":           "4GB",
		"hot_standby":              "off", // forced on
		"wal_level":                "hot_standby",
		"track_commit_timestamp":   true,
		"log_line_prefix":          `%m [%p] 'q' \x `,
		"synchronous_commit":       "off",
		"archive_command":          "pgbackrest --stanza=pg-test archive-push %p",
		"password_encryption":      "scram-sha-256",
		"shared_preload_libraries": "pg_stat_statements, auto_explain",
	}
}

func TestPostgresqlConfPrimaryGolden(t *testing.T) {
	c := renderConfig()
	params, cmdline, warnings := effectiveParams(c, renderDynamic(), nil)
	f := confFile{Include: baseConfName, Params: params, HBAFile: "/pg/data/pg_hba.conf", IdentFile: "/pg/data/pg_ident.conf"}
	golden(t, "postgresql.conf.primary", renderPostgresqlConf(f))
	wantCmd := []string{"--listen_addresses=10.10.10.12,127.0.0.1", "--port=5432", "--cluster_name=pg-test",
		"--wal_level=replica", "--hot_standby=on", "--max_connections=500", "--max_wal_senders=10",
		"--max_prepared_transactions=0", "--max_locks_per_transaction=64", "--track_commit_timestamp=on",
		"--max_replication_slots=10", "--max_worker_processes=8", "--wal_log_hints=on"}
	if len(cmdline) != len(wantCmd) {
		t.Fatalf("cmdline = %q, want %q", cmdline, wantCmd)
	}
	for i := range wantCmd {
		if cmdline[i] != wantCmd[i] {
			t.Errorf("cmdline[%d] = %q, want %q", i, cmdline[i], wantCmd[i])
		}
	}
	if len(warnings) != 2 { // local max_connections, invalid max_wal_senders
		t.Errorf("warnings = %q, want 2", warnings)
	}
}

func TestPostgresqlConfReplicaGolden(t *testing.T) {
	c := renderConfig()
	control := map[string]string{"max_connections setting": "600", "max_worker_processes setting": "4"}
	params, cmdline, _ := effectiveParams(c, renderDynamic(), control)
	if params["max_connections"] != "600" || params["max_worker_processes"] != "8" {
		t.Errorf("controldata bump: max_connections=%s max_worker_processes=%s", params["max_connections"], params["max_worker_processes"])
	}
	if cmdlineParams(cmdline)["max_connections"] != "600" {
		t.Errorf("cmdline not bumped: %q", cmdline)
	}
	rc := cluster.RecoveryConfig{
		Upstream: cluster.ConnInfo{Host: "10.10.10.11", Port: 5432},
		SlotName: cluster.SlotName(c.Name),
	}
	f := confFile{Include: baseConfName, Params: params, HBAFile: "/pg/data/pg_hba.conf", IdentFile: "/pg/data/pg_ident.conf",
		Recovery: recoveryParams(c, rc, 150000)}
	golden(t, "postgresql.conf.replica", renderPostgresqlConf(f))
}

func TestPostgresqlConfStandaloneGolden(t *testing.T) {
	c := renderConfig()
	params, _, _ := effectiveParams(c, nil, nil)
	f := confFile{Include: baseConfName, Params: params, HBAFile: "/pg/data/pg_hba.conf", IdentFile: "/pg/data/pg_ident.conf",
		Recovery: recoveryParams(c, cluster.RecoveryConfig{SlotName: "ignored"}, 150000)}
	golden(t, "postgresql.conf.standalone", renderPostgresqlConf(f))
}

func TestPrimaryConninfoQuoting(t *testing.T) {
	c := renderConfig()
	c.PgPass = "/var/lib/my pgpass"
	cases := []struct {
		name  string
		rc    cluster.RecoveryConfig
		major int
		want  string
	}{
		{"plain", cluster.RecoveryConfig{Upstream: cluster.ConnInfo{Host: "10.0.0.1", Port: 5433}, ApplicationName: "pg-1"}, 150000,
			`dbname=postgres user=replicator passfile='/var/lib/my pgpass' host=10.0.0.1 port=5433 sslmode=prefer application_name=pg-1 gssencmode=prefer channel_binding=prefer`},
		{"own user, quotes, pg17", cluster.RecoveryConfig{Upstream: cluster.ConnInfo{Host: "db.example", User: `it's me`, DBName: `a\b`, SSLMode: "require"}}, 170000,
			`dbname='a\\b' user='it\'s me' host=db.example sslmode=require application_name=pg-test-2 gssencmode=prefer channel_binding=prefer sslnegotiation=postgres`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := primaryConninfo(c, tc.rc, tc.major); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// The conninfo goes into postgresql.conf with quotes doubled.
	rp := recoveryParams(c, cases[1].rc, 170000)
	var b bytes.Buffer
	writeParam(&b, "primary_conninfo", rp["primary_conninfo"])
	if want := `primary_conninfo = 'dbname=''a\\\\b'' user=''it\\''s me'' host=db.example sslmode=require application_name=pg-test-2 gssencmode=prefer channel_binding=prefer sslnegotiation=postgres'` + "\n"; b.String() != want {
		t.Errorf("conf line:\n got %s\nwant %s", b.String(), want)
	}
	if got := formatDSN([][2]string{{"host", ""}, {"", "x"}, {"port", "1"}}); got != `host='' port=1` {
		t.Errorf("empty value: %s", got)
	}
}

func TestPgHBAGolden(t *testing.T) {
	golden(t, "pg_hba.conf", renderLines([]string{
		"local all postgres peer",
		"local all all trust",
		"host replication replicator 127.0.0.1/32 scram-sha-256",
		"host all all 10.0.0.0/8 scram-sha-256\n",
	}))
}

func TestPgpassGolden(t *testing.T) {
	c := renderConfig()
	c.Replication.Password = `p:a\ss`
	up := cluster.ConnInfo{Host: "10.10.10.11", Port: 5432, User: "rewinder", Password: "secret"}
	golden(t, "pgpass", renderPgpass(pgpassEntries(c, &up)))
	// Same user and password for superuser and rewind: one line.
	if n := bytes.Count(renderPgpass(pgpassEntries(c, nil)), []byte("\n")); n != 2 {
		t.Errorf("pgpass without upstream has %d lines, want 2", n)
	}
}
