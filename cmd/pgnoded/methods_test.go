package main

import (
	"reflect"
	"testing"

	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/proc"
)

func TestReplicaMethodsFromConfig(t *testing.T) {
	pg := config.PostgreSQL{
		CreateReplicaMethods: []string{"basebackup", "pgbackrest"},
		ReplicaMethods: map[string]any{
			"pgbackrest": map[string]any{"command": "/usr/bin/pgbackrest --stanza='pg test' --delta restore",
				"keep_data": true, "no_params": "yes", "no_master": 1},
			"wal_e": map[string]any{"command": "wal-e-restore", "envdir": "/etc/wal-e"},
		},
	}
	got := replicaMethods(pg)
	if len(got) != 2 || got[0].Name != "basebackup" || got[1].Name != "pgbackrest" {
		t.Fatalf("methods = %+v", got)
	}
	m := got[1]
	if want := []string{"/usr/bin/pgbackrest", "--stanza=pg test", "--delta", "restore"}; !reflect.DeepEqual(m.Command, want) {
		t.Errorf("command = %q, want %q (split as shlex does)", m.Command, want)
	}
	if !m.KeepData || !m.NoParams || !m.NoLeader {
		t.Errorf("flags (Python truthiness; no_master means no_leader) = %+v", m)
	}
	if !proc.CanCloneWithoutLeader(got) {
		t.Error("a no_master method must allow a clone without a leader")
	}
	if s := methodSections(pg); len(s) != 2 || s["wal_e"].Command[0] != "wal-e-restore" {
		t.Errorf("sections = %+v, want pgbackrest and wal_e", s)
	}
	if replicaMethods(config.PostgreSQL{}) != nil {
		t.Error("no list: nil (pg_basebackup only)")
	}
}

func TestBootstrapMethodFromConfig(t *testing.T) {
	if bootstrapMethod(config.Bootstrap{Method: "initdb"}) != nil || bootstrapMethod(config.Bootstrap{}) != nil {
		t.Error("initdb is not a custom method")
	}
	b := config.Bootstrap{Method: "pgbackrest", Methods: map[string]any{"pgbackrest": map[string]any{
		"command": "pgbackrest restore", "keep_existing_recovery_conf": true, "type": "name",
		"recovery_conf": map[string]any{"recovery_target_action": "promote"}}}}
	m := bootstrapMethod(b)
	if m == nil || !reflect.DeepEqual(m.Command, []string{"pgbackrest", "restore"}) || !m.KeepExistingRecoveryConf ||
		m.RecoveryConf["recovery_target_action"] != "promote" || m.Keys["type"] != "name" {
		t.Errorf("method = %+v", m)
	}
	if bootstrapMethod(config.Bootstrap{Method: "x", Methods: map[string]any{"x": map[string]any{"keep_existing_recovery_conf": true}}}) != nil {
		t.Error("a method without a command is not run (the key table refuses it)")
	}
}
