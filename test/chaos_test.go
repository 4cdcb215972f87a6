//go:build integration

package test

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// chaosScenario is one fault (or series of faults) the suite injects.
type chaosScenario struct {
	Name  string
	Short bool // in the short selection `make test` runs
	Clean bool // nothing acknowledged may be lost
	Run   func(e *chaosEnv)
}

// TestChaos is the failure suite (issue 9). Each scenario boots three etcd
// members and three pgnoded nodes in network namespaces (ttl 10, loop_wait 2,
// retry_timeout 4, failsafe_mode off, the VIP on), runs the ChaosWorkload,
// injects its fault, heals, waits until the cluster is whole, and judges:
//   - never two writable nodes at once (asserted: a safety property);
//   - no acknowledged row lost for clean events (asserted); for unclean ones
//     the loss is reported against maximum_lag_on_failover;
//   - the longest write outage and the recovery times (reported).
//
// By default only the short selection runs (node crash, etcd leader killed,
// zombie leader: about a minute on this machine). PGNODED_CHAOS=full runs every scenario
// and prints the table; PGNODED_CHAOS_MINUTES sets the random-faults
// scenario's length (default 2), PGNODED_CHAOS_ETCD_DOWN the seconds etcd is
// down (default 60), PGNODED_CHAOS_SEED repeats a run's random choices, and
// PGNODED_CHAOS_VIP=0 runs without the VIP.
//
//	PGNODED_CHAOS=full go test -tags integration -count=1 -v -timeout 60m -run '^TestChaos$' ./test/
//	PGNODED_CHAOS=full PGNODED_CHAOS_SEED=42 go test -tags integration -count=1 -v -run 'TestChaos/zombie' ./test/
func TestChaos(t *testing.T) {
	requireChaos(t)
	mode := "short"
	if os.Getenv("PGNODED_CHAOS") == "full" {
		mode = "full"
	}
	seed := chaosSeed()
	vip := os.Getenv("PGNODED_CHAOS_VIP") != "0"
	t.Logf("chaos %s mode, seed %d (repeat with PGNODED_CHAOS_SEED=%d)", mode, seed, seed)
	var results []chaosResult
	for _, sc := range chaosScenarios() {
		if mode == "short" && !sc.Short {
			continue
		}
		var res *chaosResult
		ok := t.Run(sc.Name, func(t *testing.T) {
			e := newChaosEnv(t, sc.Name, seed, vip)
			sc.Run(e)
			r := e.finish(sc.Clean)
			res = &r
		})
		switch {
		case res == nil && ok:
			continue // not selected by -run
		case res == nil:
			res = &chaosResult{Name: sc.Name, Seed: seed, Clean: sc.Clean, Err: "did not finish (see the subtest's log)"}
		case !ok:
			res.Err = "a check failed (see the subtest's log)"
		}
		results = append(results, *res)
	}
	if len(results) > 0 {
		printChaosTable(t, results, mode, seed)
	}
}

// requireChaos skips the namespace failure suite unless PGNODED_CHAOS is set
// ("short" for the short selection, "full" for everything): `make chaos` runs
// it. It is not yet part of `make test` - it has not been through a clean CI
// run; see issue 9.
func requireChaos(t *testing.T) {
	t.Helper()
	if os.Getenv("PGNODED_CHAOS") == "" {
		t.Skip("failure suite: set PGNODED_CHAOS=short or full, or run make chaos")
	}
}

// chaosScenarios lists every scenario in the order the full suite runs them.
func chaosScenarios() []chaosScenario {
	return []chaosScenario{
		{Name: "node-crash", Short: true, Run: scenarioNodeCrash},
		{Name: "postmaster-crash", Clean: true, Run: scenarioPostmasterCrash},
		{Name: "pgnoded-crash", Clean: true, Run: scenarioPgnodedCrash},
		{Name: "primary-cut-from-etcd", Clean: true, Run: scenarioPrimaryCutFromEtcd},
		{Name: "primary-isolated", Run: scenarioPrimaryIsolated},
		{Name: "replica-isolated", Clean: true, Run: scenarioReplicaIsolated},
		{Name: "etcd-leader-killed", Short: true, Clean: true, Run: scenarioEtcdLeaderKilled},
		{Name: "etcd-down", Clean: true, Run: scenarioEtcdDown},
		{Name: "zombie-leader", Short: true, Run: scenarioZombieLeader},
		{Name: "random-faults", Run: scenarioRandomFaults},
	}
}

// chaosEnvDuration reads an env var in seconds (or minutes when unit is time.Minute).
func chaosEnvDuration(name string, def int, unit time.Duration) time.Duration {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return time.Duration(n) * unit
	}
	return time.Duration(def) * unit
}
