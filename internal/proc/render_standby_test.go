package proc

import (
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// TestRecoveryParamsStandbyLeader: the standby leader streams from the remote
// primary with the standby_cluster settings; several hosts ask for the
// writable one; a standalone replica of a standby cluster keeps its
// restore_command (archive recovery) without streaming.
func TestRecoveryParamsStandbyLeader(t *testing.T) {
	c := renderConfig()
	rc := cluster.RecoveryConfig{
		Upstream:        cluster.ConnInfo{Host: "10.10.10.21,10.10.10.22", Port: 5432, DBName: "postgres"},
		SlotName:        "standby_site",
		ApplicationName: "pg-test-2",
		RestoreCommand:  "cp /arch/%f %p", ArchiveCleanupCommand: "pg_archivecleanup /arch %r",
		MinApplyDelay: "5min", ReadWriteOnly: true,
	}
	m := recoveryParams(c, rc, 150000)
	for k, want := range map[string]string{
		"restore_command": "cp /arch/%f %p", "archive_cleanup_command": "pg_archivecleanup /arch %r",
		"recovery_min_apply_delay": "5min", "primary_slot_name": "standby_site", "recovery_target_timeline": "latest",
	} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q", k, m[k], want)
		}
	}
	ci := m["primary_conninfo"]
	for _, part := range []string{"host=10.10.10.21,10.10.10.22", "port=5432", "user=replicator", "target_session_attrs=read-write"} {
		if !strings.Contains(ci, part) {
			t.Errorf("primary_conninfo %q lacks %q", ci, part)
		}
	}

	cascade := recoveryParams(c, cluster.RecoveryConfig{Upstream: cluster.ConnInfo{Host: "10.10.10.11", Port: 5432},
		RestoreCommand: "cp /arch/%f %p"}, 150000)
	if strings.Contains(cascade["primary_conninfo"], "target_session_attrs") {
		t.Errorf("a cascading replica asks for target_session_attrs: %q", cascade["primary_conninfo"])
	}
	if _, ok := cascade["recovery_min_apply_delay"]; ok {
		t.Errorf("recovery_min_apply_delay set without a value")
	}
	alone := recoveryParams(c, cluster.RecoveryConfig{RestoreCommand: "cp /arch/%f %p"}, 150000)
	if alone["primary_conninfo"] != "" || alone["restore_command"] != "cp /arch/%f %p" {
		t.Errorf("standalone standby-cluster replica: %v", alone)
	}
}
