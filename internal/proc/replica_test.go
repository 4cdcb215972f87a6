package proc

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

func TestMethodArgs(t *testing.T) {
	cases := []struct {
		name       string
		m          ReplicaMethod
		connstring string
		want       []string
	}{
		{"Patroni's parameters after the section's keys, specials dropped",
			ReplicaMethod{Name: "wal_e", Command: []string{"patroni_wale_restore"},
				Keys:     map[string]any{"command": "patroni_wale_restore", "envdir": "/etc/wal-e", "use_iam": 1.0, "no_leader": true, "keep_data": true, "no_master": 1.0},
				NoLeader: true, KeepData: true},
			"dbname=postgres user=replicator host=10.0.0.1 port=5432",
			[]string{"patroni_wale_restore", "--envdir=/etc/wal-e", "--use_iam=1",
				"--scope=pg-test", "--role=replica", "--datadir=/pg/data", "--connstring=dbname=postgres user=replicator host=10.0.0.1 port=5432"}},
		{"no_params: the command and its own keys only (Pigsty's pgbackrest)",
			ReplicaMethod{Name: "pgbackrest", Command: []string{"/usr/bin/pgbackrest", "--stanza=pg-test", "--delta", "restore"},
				Keys:     map[string]any{"command": "/usr/bin/pgbackrest --stanza=pg-test --delta restore", "keep_data": true, "no_params": true, "no_leader": true},
				NoParams: true, KeepData: true, NoLeader: true},
			"host=x", []string{"/usr/bin/pgbackrest", "--stanza=pg-test", "--delta", "restore"}},
		{"no command: the method's name is run; no source gives an empty connstring",
			ReplicaMethod{Name: "myrestore", Keys: map[string]any{"flag": true, "target": "latest"}},
			"", []string{"myrestore", "--flag=True", "--target=latest", "--scope=pg-test", "--role=replica", "--datadir=/pg/data", "--connstring="}},
		{"keys that would duplicate Patroni's parameters are not passed twice",
			ReplicaMethod{Name: "x", Command: []string{"x"}, Keys: map[string]any{"scope": "other", "datadir": "/elsewhere"}},
			"c", []string{"x", "--scope=pg-test", "--role=replica", "--datadir=/pg/data", "--connstring=c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := methodArgs(c.m, "pg-test", "/pg/data", c.connstring)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("methodArgs:\n got  %q\n want %q", got, c.want)
			}
		})
	}
}

func TestCloneMethodsOrder(t *testing.T) {
	bb := ReplicaMethod{Name: BasebackupMethod}
	pgbr := ReplicaMethod{Name: "pgbackrest", Command: []string{"pgbackrest"}, NoLeader: true, KeepData: true}
	wale := ReplicaMethod{Name: "wal_e", Command: []string{"wale"}}
	barman := ReplicaMethod{Name: "barman", Command: []string{"barman-restore"}}
	names := func(ms []ReplicaMethod) string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return strings.Join(out, ",")
	}
	cases := []struct {
		name       string
		configured []ReplicaMethod
		opts       cluster.CloneOptions
		haveSource bool
		want, err  string
	}{
		{"nothing configured: basebackup", nil, cluster.CloneOptions{}, true, "basebackup", ""},
		{"configured order is kept", []ReplicaMethod{pgbr, wale, bb}, cluster.CloneOptions{}, true, "pgbackrest,wal_e,basebackup", ""},
		{"basebackup first (Pigsty's order)", []ReplicaMethod{bb, pgbr}, cluster.CloneOptions{}, true, "basebackup,pgbackrest", ""},
		{"from_leader: basebackup only", []ReplicaMethod{pgbr, bb}, cluster.CloneOptions{BasebackupOnly: true}, true, "basebackup", ""},
		{"no source: only no_leader methods", []ReplicaMethod{bb, wale, pgbr}, cluster.CloneOptions{}, false, "pgbackrest", ""},
		{"no source and no no_leader method: an error", []ReplicaMethod{bb, wale}, cluster.CloneOptions{}, false, "", "no_leader"},
		{"no source, nothing configured: an error", nil, cluster.CloneOptions{}, false, "", "no_leader"},
		{"explicit names pick from the sections", []ReplicaMethod{bb, pgbr, wale}, cluster.CloneOptions{Methods: []string{"wal_e", "basebackup"}}, true, "wal_e,basebackup", ""},
		{"explicit basebackup needs no section", []ReplicaMethod{pgbr}, cluster.CloneOptions{Methods: []string{"basebackup"}}, true, "basebackup", ""},
		{"explicit name from a section not in the configured list", []ReplicaMethod{bb}, cluster.CloneOptions{Methods: []string{"barman", "basebackup"}}, true, "barman,basebackup", ""},
		{"explicit name without a section: an error", []ReplicaMethod{bb}, cluster.CloneOptions{Methods: []string{"wal_g"}}, true, "", "postgresql.wal_g"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := cloneMethods(c.configured, map[string]ReplicaMethod{"barman": barman}, c.opts, c.haveSource)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != c.want {
				t.Errorf("methods = %s, want %s", names(got), c.want)
			}
		})
	}
	if !CanCloneWithoutLeader([]ReplicaMethod{bb, pgbr}) || CanCloneWithoutLeader([]ReplicaMethod{bb, wale}) ||
		CanCloneWithoutLeader([]ReplicaMethod{{Name: BasebackupMethod, NoLeader: true}}) {
		t.Error("CanCloneWithoutLeader: only a non-basebackup method with no_leader counts")
	}
}

func TestBootstrapArgs(t *testing.T) {
	m := BootstrapMethod{Name: "pgbackrest", Command: []string{"pgbackrest", "restore"},
		Keys: map[string]any{"command": "pgbackrest restore", "stanza": "pg-test", "keep_existing_recovery_conf": true,
			"recovery_conf": map[string]any{"a": 1}, "no_params": false, "type": "name"}}
	want := []string{"pgbackrest", "restore", "--scope=pg-test", "--datadir=/pg/data", "--stanza=pg-test", "--type=name"}
	if got := bootstrapArgs(m, "pg-test", "/pg/data"); !reflect.DeepEqual(got, want) {
		t.Errorf("bootstrapArgs:\n got  %q\n want %q", got, want)
	}
	m.NoParams = true
	want = []string{"pgbackrest", "restore", "--stanza=pg-test", "--type=name"}
	if got := bootstrapArgs(m, "pg-test", "/pg/data"); !reflect.DeepEqual(got, want) {
		t.Errorf("bootstrapArgs no_params:\n got  %q\n want %q", got, want)
	}
}

func TestRestorePlan(t *testing.T) {
	cases := []struct {
		name string
		m    BootstrapMethod
		want restoreSettings
	}{
		{"recovery_conf promoting: recovery.signal, hot_standby off",
			BootstrapMethod{RecoveryConf: map[string]any{"restore_command": "cp /a/%f %p", "recovery_target_name": "rp1", "recovery_target_action": "promote"}},
			restoreSettings{recovery: map[string]string{"restore_command": "cp /a/%f %p", "recovery_target_name": "rp1", "recovery_target_action": "promote"},
				recoverySignal: true, hotStandbyOff: true}},
		{"recovery_conf pausing (PostgreSQL's default action): hot_standby stays on",
			BootstrapMethod{RecoveryConf: map[string]any{"recovery_target_time": "2026-01-01"}},
			restoreSettings{recovery: map[string]string{"recovery_target_time": "2026-01-01"}, recoverySignal: true}},
		{"pause_at_recovery_target false means promote",
			BootstrapMethod{RecoveryConf: map[string]any{"pause_at_recovery_target": false}},
			restoreSettings{recovery: map[string]string{"pause_at_recovery_target": "off"}, recoverySignal: true, hotStandbyOff: true}},
		{"keep_existing_recovery_conf: the tool's own settings, hot_standby off",
			BootstrapMethod{KeepExistingRecoveryConf: true}, restoreSettings{keepExisting: true, hotStandbyOff: true}},
		{"recovery_conf and keep_existing_recovery_conf: both, hot_standby off",
			BootstrapMethod{KeepExistingRecoveryConf: true, RecoveryConf: map[string]any{}},
			restoreSettings{recovery: map[string]string{}, recoverySignal: true, keepExisting: true, hotStandbyOff: true}},
		{"neither: no recovery settings", BootstrapMethod{}, restoreSettings{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := restorePlan(c.m); !reflect.DeepEqual(got, c.want) {
				t.Errorf("restorePlan = %+v, want %+v", got, c.want)
			}
		})
	}
}
