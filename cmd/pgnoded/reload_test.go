package main

import (
	"slices"
	"testing"

	"github.com/pgnoded/pgnoded/internal/config"
)

func TestRestartKeysAndKeepRunning(t *testing.T) {
	old := &config.Config{Scope: "s", Name: "n1"}
	old.RESTAPI.Listen = "10.0.0.1:8008"
	old.PostgreSQL.DataDir = "/pg/data"
	old.Etcd3.Hosts = config.CommaList{"10.0.0.1:2379"}
	old.Log.Level = "INFO"

	next := *old
	next.RESTAPI.Listen = "10.0.0.1:8009" // reported by the REST API's own Reload
	next.PostgreSQL.DataDir = "/pg/data2"
	next.PostgreSQL.PgHBA = []string{"host all all 10.0.0.0/8 md5"}
	next.Etcd3.Hosts = config.CommaList{"10.0.0.2:2379"}
	next.Log.Level = "DEBUG"
	got := restartKeys(old, &next)
	if !slices.Equal(got, []string{"postgresql.data_dir"}) {
		t.Errorf("restartKeys = %v, want only postgresql.data_dir (hosts alone are applied)", got)
	}
	next.Etcd3.Password = "changed"
	if got := restartKeys(old, &next); !slices.Contains(got, "etcd3.username/password") ||
		!slices.Contains(got, "etcd3.hosts (changed with the credentials or TLS)") {
		t.Errorf("etcd credentials and hosts changed: restartKeys = %v", got)
	}
	kept := keepRunning(old, &next)
	if kept.PostgreSQL.DataDir != "/pg/data" || kept.RESTAPI.Listen != "10.0.0.1:8008" || kept.Etcd3.Password != "" {
		t.Errorf("restart-only settings not kept: data_dir %q listen %q etcd password %q",
			kept.PostgreSQL.DataDir, kept.RESTAPI.Listen, kept.Etcd3.Password)
	}
	if len(kept.PostgreSQL.PgHBA) != 1 || kept.Log.Level != "DEBUG" {
		t.Errorf("applied settings not taken: pg_hba %v level %q", kept.PostgreSQL.PgHBA, kept.Log.Level)
	}
}
