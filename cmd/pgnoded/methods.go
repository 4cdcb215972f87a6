package main

import (
	"strings"

	"github.com/pgnoded/pgnoded/internal/config"
	"github.com/pgnoded/pgnoded/internal/proc"
	"github.com/pgnoded/pgnoded/internal/pyfmt"
	"github.com/pgnoded/pgnoded/internal/shlex"
)

// replicaMethods maps postgresql.create_replica_methods and the postgresql.<name>
// sections onto proc's methods; the flags are Python truthiness as in Patroni's
// Bootstrap.create_replica. Empty list: nil (pg_basebackup only).
func replicaMethods(pg config.PostgreSQL) []proc.ReplicaMethod {
	out := make([]proc.ReplicaMethod, 0, len(pg.CreateReplicaMethods))
	for _, name := range pg.CreateReplicaMethods {
		if name == proc.BasebackupMethod {
			out = append(out, proc.ReplicaMethod{Name: name})
			continue
		}
		section, _ := pg.ReplicaMethods[name].(map[string]any)
		out = append(out, replicaMethod(name, section))
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// replicaMethod is one postgresql.<name> section as proc's method.
func replicaMethod(name string, section map[string]any) proc.ReplicaMethod {
	m := proc.ReplicaMethod{Name: name, Command: splitCommand(section["command"]), Keys: map[string]any{},
		KeepData: pyfmt.Truthy(section["keep_data"]), NoParams: pyfmt.Truthy(section["no_params"]),
		NoLeader: pyfmt.Truthy(section["no_leader"]) || pyfmt.Truthy(section["no_master"])}
	for k, v := range section {
		m.Keys[k] = v
	}
	return m
}

// methodSections maps every postgresql.<name> section with a command (the
// methods a standby cluster's create_replica_methods may name), by name.
func methodSections(pg config.PostgreSQL) map[string]proc.ReplicaMethod {
	out := map[string]proc.ReplicaMethod{}
	for name, v := range pg.ReplicaMethods {
		if section, ok := v.(map[string]any); ok && section["command"] != nil && name != proc.BasebackupMethod {
			out[name] = replicaMethod(name, section)
		}
	}
	return out
}

// bootstrapMethod maps bootstrap.method and its bootstrap.<name> section; nil
// for initdb (or a method without a command, which Patroni also runs as initdb).
func bootstrapMethod(b config.Bootstrap) *proc.BootstrapMethod {
	if b.Method == "" || b.Method == "initdb" {
		return nil
	}
	section, _ := b.Methods[b.Method].(map[string]any)
	if _, ok := section["command"]; !ok {
		return nil
	}
	m := &proc.BootstrapMethod{Name: b.Method, Command: splitCommand(section["command"]), Keys: map[string]any{},
		NoParams:                 pyfmt.Truthy(section["no_params"]),
		KeepExistingRecoveryConf: pyfmt.Truthy(section["keep_existing_recovery_conf"])}
	if rc, ok := section["recovery_conf"].(map[string]any); ok {
		m.RecoveryConf = rc
	} else if _, set := section["recovery_conf"]; set {
		m.RecoveryConf = map[string]any{}
	}
	for k, v := range section {
		m.Keys[k] = v
	}
	return m
}

// splitCommand splits a command line as Patroni does (shlex); the config check
// has already refused one that does not split, so whitespace splitting is only a fallback.
func splitCommand(v any) []string {
	s, _ := v.(string)
	if s == "" {
		return nil
	}
	argv, err := shlex.Split(s)
	if err != nil {
		return strings.Fields(s)
	}
	return argv
}
