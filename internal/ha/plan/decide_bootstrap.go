package plan

import (
	"fmt"
	"sort"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// decideEmptyDataDir is Patroni's Ha.bootstrap and Ha.clone: a node without data bootstraps a new
// cluster (it wins the initialize race) or clones from a clonefrom member or the leader.
func decideEmptyDataDir(o Observation) Decision {
	if o.LeaderIsMe() {
		return Decision{Action: ActionReleaseLock, Message: "data directory is empty; releasing the leader key",
			Reason: "empty_data_dir"}
	}
	if o.Paused() {
		return none("PAUSE: data directory is empty; not bootstrapping", "paused")
	}
	init := o.View.Initialize
	if init != nil && *init == "" {
		return wait("waiting for leader to bootstrap", "bootstrap_in_flight")
	}
	if o.View.Leader == nil {
		if init == nil {
			switch {
			case !o.HasBootstrapConfig:
				if o.CloneWithoutLeader {
					return cloneWithoutLeader()
				}
				return wait("waiting for leader to bootstrap (no bootstrap configuration here)", "no_bootstrap_config")
			case !o.Tags.CanFailover():
				if o.CloneWithoutLeader {
					return cloneWithoutLeader()
				}
				return wait("waiting for leader to bootstrap (nofailover)", "nofailover")
			}
			return Decision{Action: ActionBootstrap, Message: "trying to bootstrap a new cluster", Reason: "bootstrap"}
		}
		// The cluster exists but has no leader: a clonefrom member can serve as
		// source, else a create_replica_methods entry with no_leader (a backup).
		if src := CloneSource(o, false); src != "" {
			return Decision{Action: ActionClone, Member: src, Reason: "clone",
				Message: fmt.Sprintf("trying to bootstrap from replica '%s'", src)}
		}
		if o.CloneWithoutLeader {
			return cloneWithoutLeader()
		}
		return wait("waiting for leader to bootstrap", "no_clone_source")
	}
	src := CloneSource(o, true)
	if src == "" {
		return wait(fmt.Sprintf("waiting for leader (%s) to be running before cloning", o.LeaderName()),
			"no_clone_source")
	}
	kind := "replica"
	if src == o.LeaderName() {
		kind = "leader"
	}
	return Decision{Action: ActionClone, Member: src, Reason: "clone",
		Message: fmt.Sprintf("trying to bootstrap from %s '%s'", kind, src)}
}

// cloneWithoutLeader is Patroni's "bootstrap (without leader)": the replica is
// built by the create_replica_methods that have no_leader (Member "" = no source).
func cloneWithoutLeader() Decision {
	return Decision{Action: ActionClone, Reason: "clone_without_leader", Message: "trying to bootstrap (without leader)"}
}

// CloneSource picks a running member tagged clonefrom (not us, not the leader;
// the first by name, so the choice is stable), else the leader when allowed and running.
func CloneSource(o Observation, leaderAllowed bool) string {
	var names []string
	for name, m := range o.View.Members {
		if name == o.Name || name == o.LeaderName() || m.ConnURL == "" {
			continue
		}
		if m.State == string(cluster.StateRunning) && ParseTags(m.Tags).CloneFrom {
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		return names[0]
	}
	if !leaderAllowed {
		return ""
	}
	if lm, ok := o.Member(o.LeaderName()); ok && lm.ConnURL != "" && lm.State == string(cluster.StateRunning) {
		return lm.Name
	}
	return ""
}

// decideSystemID checks the data directory's system identifier against the
// initialize key (as Patroni's Ha._run_cycle checks it). A mismatch is fatal: the data is never overwritten.
func decideSystemID(o Observation) (Decision, bool) {
	sysid := o.PG.SystemID
	if sysid == "" && o.Data.Control != nil {
		sysid = o.Data.Control.SystemID
	}
	if sysid == "" {
		if !o.PG.Running {
			return wait("cannot read the system identifier of the data directory", "sysid_unknown"), true
		}
		return Decision{}, false
	}
	init := o.View.Initialize
	if init == nil {
		if o.View.Leader != nil || o.Paused() {
			return Decision{}, false // the leader writes it (housekeeping)
		}
		if o.PGReady() && o.PG.InRecovery {
			return Decision{Action: ActionFatal, Reason: "no_initialize_replica",
				Message: "the cluster has no initialize key and this node runs as a replica: start the primary first"}, true
		}
		return Decision{Action: ActionClaimInitialize, Reason: "adopt_data_dir",
			Message: fmt.Sprintf("adopting the existing data directory: initialize = %s", sysid)}, true
	}
	if !ValidSysID(*init) || *init == sysid {
		return Decision{}, false
	}
	msg := fmt.Sprintf("system identifier of the data directory (%s) does not match the cluster's initialize key (%s); "+
		"refusing to use or overwrite this data directory", sysid, *init)
	if o.Paused() {
		if o.LeaderIsMe() {
			return Decision{Action: ActionReleaseLock, Message: "PAUSE: " + msg, Reason: "sysid_mismatch"}, true
		}
		return none("PAUSE: "+msg, "sysid_mismatch"), true
	}
	return Decision{Action: ActionFatal, Message: msg, Reason: "sysid_mismatch"}, true
}

// ValidSysID reports a plausible system identifier: at least 10 digits.
func ValidSysID(s string) bool {
	if len(s) < 10 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
