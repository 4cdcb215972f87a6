package ha

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Standby clusters on the simulated cluster: a remote primary outside the
// cluster (a fake postgres no pgnoded runs, not in w.names, so the
// one-writable invariant covers the standby cluster alone) and the config key
// written with standby_cluster before the nodes start.

// addRemote adds the remote primary "remote", running, with sysid and WAL position lsn.
func (w *world) addRemote(sysid string, lsn uint64) {
	sn := &simNode{name: "remote", pg: newFakePG(w, "remote"), fence: &fakeFence{w: w}, vip: &fakeVIP{w: w}}
	p := sn.pg
	p.empty, p.sysid, p.running, p.timeline, p.lsn, p.state, p.switches = false, sysid, true, 1, lsn, "in production", map[int]uint64{}
	w.mu.Lock()
	w.nodes["remote"] = sn
	w.mu.Unlock()
}

// addRemoteAhead adds the remote primary 1000 bytes ahead of member name, of
// its system (a promoted former standby cluster of ours), or of sysid when set.
func (w *world) addRemoteAhead(name, sysid string) {
	w.mu.Lock()
	own, lsn := w.nodes[name].pg.sysid, w.nodes[name].pg.lsn
	w.mu.Unlock()
	if sysid == "" {
		sysid = own
	}
	w.addRemote(sysid, lsn+1000)
}

// rewindsArchived are the successful pg_rewind runs and the segments archive_command got so far.
func (w *world) rewindsArchived() (int, []string) {
	defer w.lockFn()()
	return w.rewinds, slices.Clone(w.archived)
}

// setConfig writes the config key as an operator would (etcd put) and wakes every node.
func (w *world) setConfig(doc map[string]any) {
	raw, err := json.Marshal(doc)
	if err != nil {
		w.t.Fatal(err)
	}
	w.mu.Lock()
	w.configRaw = raw
	w.rev++
	w.configRev = w.rev
	w.changedLocked()
	w.mu.Unlock()
	w.busy.settle(w.t)
}

func simStandbyConfig(standby bool) map[string]any {
	doc := map[string]any{"ttl": 3, "loop_wait": 1, "retry_timeout": 1,
		"postgresql": map[string]any{"use_pg_rewind": true, "use_slots": true}}
	if standby {
		doc["standby_cluster"] = map[string]any{"host": "remote", "port": 5432}
	}
	return doc
}

func (w *world) upstreamOf(name string) string {
	defer w.lockFn()()
	return w.nodes[name].pg.upstream
}

func (w *world) memberRole(name string) string {
	defer w.lockFn()()
	return w.members[name].Role
}

// healthyStandbyCluster: a standby leader streaming from the remote primary,
// the two others streaming from it, nothing writable.
func (w *world) healthyStandbyCluster() bool {
	l := w.leaderName()
	return l != "" && len(w.writable()) == 0 && w.upstreamOf(l) == "remote" && w.memberRole(l) == "standby_leader" &&
		len(w.streamingReplicasOf("remote")) == 1 && len(w.streamingReplicasOf(l)) == 2
}

func TestSimStandbyClusterFailoverAndPromotion(t *testing.T) {
	w := newWorld(t, "pg1", "pg2", "pg3")
	w.addRemote("7300000000000000999", 1000)
	w.setConfig(simStandbyConfig(true))
	w.start(w.names...)
	if !w.run(30*time.Second, w.healthyStandbyCluster) {
		t.Fatalf("no healthy standby cluster: leader %q, writable %v", w.leaderName(), w.writable())
	}
	first := w.leaderName()
	// The VIP is on the standby leader, as vip-manager following the leader key puts it.
	if !w.run(5*time.Second, func() bool { return slices.Equal(w.vipHolders(), []string{first}) }) {
		t.Fatalf("VIP on %v, want the standby leader %s", w.vipHolders(), first)
	}

	// WAL of the remote site reaches every member through the standby leader.
	w.mu.Lock()
	w.nodes["remote"].pg.lsn = 5000
	w.mu.Unlock()
	if !w.run(5*time.Second, func() bool {
		defer w.lockFn()()
		for _, n := range w.names {
			if w.nodes[n].pg.lsn != 5000 {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the remote primary's WAL did not reach every member")
	}

	// kill -9 of the standby leader (pgnoded and postgres): another member takes over, following the remote site.
	w.stop(first)
	w.mu.Lock()
	w.nodes[first].pg.stopLocked("immediate")
	w.mu.Unlock()
	killed := w.clock.Now()
	if !w.run(30*time.Second, func() bool {
		l := w.leaderName()
		return l != "" && l != first && w.upstreamOf(l) == "remote" && w.memberRole(l) == "standby_leader" &&
			len(w.streamingReplicasOf("remote")) == 1
	}) {
		t.Fatalf("no new standby leader after the kill: leader %q", w.leaderName())
	}
	next := w.leaderName()
	t.Logf("simulated standby-cluster failover (ttl 3): %s follows the remote primary %s after the kill",
		next, w.clock.Now().Sub(killed))
	if !w.run(5*time.Second, func() bool { return slices.Equal(w.vipHolders(), []string{next}) }) {
		t.Fatalf("VIP on %v after the failover, want the new standby leader %s", w.vipHolders(), next)
	}
	if len(w.promotions) != 0 {
		t.Fatalf("a standby cluster promoted: %v", w.promotions)
	}

	// Removing standby_cluster promotes the standby leader in place.
	w.setConfig(simStandbyConfig(false))
	if !w.run(10*time.Second, func() bool { return slices.Equal(w.writable(), []string{next}) }) {
		t.Fatalf("the standby leader %s was not promoted: writable %v", next, w.writable())
	}
	w.mu.Lock()
	starts := w.nodes[next].pg.starts
	w.mu.Unlock()
	if starts != 1 {
		t.Errorf("%s was restarted for the promotion (%d starts)", next, starts)
	}
	if got := w.vipHolders(); !slices.Equal(got, []string{next}) {
		t.Errorf("VIP on %v after the promotion, want %s", got, next)
	}
	w.noViolations(t)
}

// demote-cluster without use_pg_rewind follows the remote primary at once
// (no pg_rewind); with pg_rewind failing (a remote of another system), the
// standby leader starts anyway, following the remote, and keeps the key.
func TestSimDemoteClusterRewindOffOrFailing(t *testing.T) {
	for _, c := range []struct {
		name      string
		rewind    bool
		sameSysID bool
	}{{"use_pg_rewind off", false, true}, {"pg_rewind fails", true, false}} {
		t.Run(c.name, func(t *testing.T) {
			w := bootstrapped(t)
			l := w.leaderName()
			sysid := "" // the leader's own
			if !c.sameSysID {
				sysid = "7300000000000000998"
			}
			w.addRemoteAhead(l, sysid)
			doc := simStandbyConfig(true)
			doc["postgresql"] = map[string]any{"use_pg_rewind": c.rewind, "use_slots": true}
			w.setConfig(doc)
			if !w.run(10*time.Second, func() bool {
				running, writable, _ := w.pgState(l)
				return running && !writable && w.upstreamOf(l) == "remote" && w.memberRole(l) == "standby_leader"
			}) {
				t.Fatalf("not demoted into the standby leader: writable %v upstream %q role %q",
					w.writable(), w.upstreamOf(l), w.memberRole(l))
			}
			if got := w.leaderName(); got != l {
				t.Errorf("leader changed from %s to %s; demote-cluster keeps the key", l, got)
			}
			if rewinds, _ := w.rewindsArchived(); rewinds != 0 {
				t.Errorf("%d successful pg_rewind runs, want 0", rewinds)
			}
			w.noViolations(t)
		})
	}
}

// vipHolders are the live members with the VIP bound.
func (w *world) vipHolders() []string {
	defer w.lockFn()()
	var on []string
	for _, n := range w.names {
		if sn := w.nodes[n]; sn.live && sn.vip.bound {
			on = append(on, n)
		}
	}
	return on
}

// Under compat 4.1.4 semantics the config key may gain standby_cluster while
// the cluster runs (the PATCH refusal for 3.0.2 is in ops_config.go): the
// leader demotes itself into the standby leader, keeping the key.
func TestSimPrimaryDemotesIntoStandbyLeader(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	w.addRemoteAhead(l, "")
	w.setConfig(simStandbyConfig(true))
	if !w.run(10*time.Second, w.healthyStandbyCluster) {
		t.Fatalf("not demoted into a standby cluster: leader %q writable %v upstream %q role %q",
			w.leaderName(), w.writable(), w.upstreamOf(l), w.memberRole(l))
	}
	if got := w.leaderName(); got != l {
		t.Errorf("leader changed from %s to %s; demote-cluster keeps the key", l, got)
	}
	// use_pg_rewind is on: the demoted leader ran pg_rewind from the remote
	// primary before following it (plan.Decision.RewindRemote).
	rewinds, archived := w.rewindsArchived()
	if rewinds != 1 {
		t.Errorf("%d pg_rewind runs, want 1 (from the remote primary, after demote-cluster)", rewinds)
	}
	// The shutdown checkpoint's segment went to archive_command, once, before the start.
	if len(archived) != 1 || !strings.HasPrefix(archived[0], l+":") {
		t.Errorf("archived %v, want the shutdown checkpoint of %s once", archived, l)
	}
	w.noViolations(t)
}

// A pgnoded restarted between demote-cluster's stop and its start finds the
// key, a standby_cluster config and a data directory a primary shut down
// cleanly: it still archives the shutdown checkpoint and rewinds from the
// remote primary before following it (plan.resumeDemoteCluster reads that from
// pg_control). Restarts after that repeat neither.
func TestSimDemoteClusterResumedAfterRestart(t *testing.T) {
	w := bootstrapped(t)
	l := w.leaderName()
	w.addRemoteAhead(l, "")
	// demote-cluster's stop happened, then pgnoded died: postgres is down after
	// a fast (clean) shutdown as a primary, the key still names us.
	w.stop(l)
	w.mu.Lock()
	w.nodes[l].pg.stopLocked(cluster.StopFast)
	state := w.nodes[l].pg.state
	w.mu.Unlock()
	if state != "shut down" {
		t.Fatalf("pg_control state %q after a fast stop of the primary", state)
	}
	w.setConfig(simStandbyConfig(true))
	w.start(l)
	if !w.run(15*time.Second, w.healthyStandbyCluster) {
		t.Fatalf("not a standby cluster after the restart: leader %q writable %v upstream %q role %q",
			w.leaderName(), w.writable(), w.upstreamOf(l), w.memberRole(l))
	}
	if got := w.leaderName(); got != l {
		t.Errorf("leader changed from %s to %s", l, got)
	}
	counts := func() (int, int) {
		r, a := w.rewindsArchived()
		return r, len(a)
	}
	if r, a := counts(); r != 1 || a != 1 {
		t.Errorf("after the restart: %d pg_rewind runs and %d archived segments, want 1 and 1", r, a)
	}
	if !strings.Contains(w.logs.String(), "the data directory was shut down as a primary") {
		t.Errorf("the resumed demote-cluster is not logged")
	}
	// Restart pgnoded again, once with postgres running and once with it
	// stopped (a replica's shutdown): neither archives nor rewinds again.
	w.stop(l)
	w.start(l)
	w.stop(l)
	w.mu.Lock()
	w.nodes[l].pg.stopLocked(cluster.StopFast)
	w.mu.Unlock()
	w.start(l)
	if !w.run(15*time.Second, w.healthyStandbyCluster) {
		t.Fatalf("not a standby cluster after the second restart: leader %q upstream %q", w.leaderName(), w.upstreamOf(l))
	}
	if r, a := counts(); r != 1 || a != 1 {
		t.Errorf("after restarts of a running standby leader: %d pg_rewind runs and %d archived segments, want 1 and 1", r, a)
	}
	w.noViolations(t)
}

// An unreachable remote primary at bootstrap: the clone fails, is undone
// (no key, no initialize, empty data directory) and retried; once the remote
// site answers, the standby cluster forms.
func TestSimStandbyBootstrapRetriesUnreachableRemote(t *testing.T) {
	w := newWorld(t, "pg1", "pg2", "pg3")
	w.addRemote("7300000000000000999", 1000)
	w.mu.Lock()
	w.nodes["remote"].pg.running = false
	w.mu.Unlock()
	w.setConfig(simStandbyConfig(true))
	w.start(w.names...)
	w.run(5*time.Second, func() bool { return false })
	w.mu.Lock()
	for _, n := range w.names {
		if pg := w.nodes[n].pg; pg.running || !pg.empty {
			t.Errorf("%s has data or runs while the remote primary is unreachable", n)
		}
	}
	if w.initialize != nil && *w.initialize != "" {
		t.Errorf("initialize = %q without a clone", *w.initialize)
	}
	w.nodes["remote"].pg.running = true
	w.mu.Unlock()
	if !strings.Contains(w.logs.String(), "standby leader bootstrap from the remote primary remote:5432: create replica") {
		t.Errorf("the failed clone is not logged with the remote address")
	}
	errs := w.upstreamErrors()
	found := false
	for _, e := range errs {
		found = found || strings.Contains(e, "standby leader bootstrap from the remote primary remote:5432: create replica")
	}
	if !found {
		t.Errorf("no snapshot publishes the failed clone's error: %v", errs)
	}
	if !w.run(30*time.Second, w.healthyStandbyCluster) {
		t.Fatalf("no standby cluster once the remote primary answers: leader %q", w.leaderName())
	}
	if !w.run(10*time.Second, func() bool { return len(w.upstreamErrors()) == 0 }) {
		t.Errorf("upstream errors published by a streaming standby cluster: %v", w.upstreamErrors())
	}
	w.noViolations(t)
}

// upstreamErrors maps each running node to the upstream error its snapshot
// publishes (/patroni's pgnoded_upstream_error), when it has one.
func (w *world) upstreamErrors() map[string]string {
	out := map[string]string{}
	for _, name := range w.names {
		w.mu.Lock()
		n := w.nodes[name].node
		w.mu.Unlock()
		if n == nil {
			continue
		}
		if s := n.Snapshot(); s != nil && s.UpstreamError != "" {
			out[name] = s.UpstreamError
		}
	}
	return out
}

// A standby leader that loses the remote primary publishes why (with
// host:port), and only it; the reason goes once streaming resumes.
func TestSimStandbyLeaderPublishesUpstreamError(t *testing.T) {
	w := newWorld(t, "pg1", "pg2", "pg3")
	w.addRemote("7300000000000000999", 1000)
	w.setConfig(simStandbyConfig(true))
	w.start(w.names...)
	if !w.run(30*time.Second, w.healthyStandbyCluster) {
		t.Fatalf("no healthy standby cluster: leader %q", w.leaderName())
	}
	if errs := w.upstreamErrors(); len(errs) != 0 {
		t.Fatalf("upstream errors while streaming: %v", errs)
	}
	l := w.leaderName()
	w.mu.Lock()
	w.nodes["remote"].pg.running = false
	w.mu.Unlock()
	if !w.run(60*time.Second, func() bool {
		errs := w.upstreamErrors()
		return len(errs) == 1 && strings.Contains(errs[l], "not streaming from the remote primary remote:5432")
	}) {
		t.Fatalf("the standby leader %s does not publish the lost remote primary: %v", l, w.upstreamErrors())
	}
	w.mu.Lock()
	w.nodes["remote"].pg.running = true
	w.mu.Unlock()
	if !w.run(60*time.Second, func() bool { return len(w.upstreamErrors()) == 0 && w.healthyStandbyCluster() }) {
		t.Fatalf("the upstream error stays once streaming resumes: %v", w.upstreamErrors())
	}
	w.noViolations(t)
}
