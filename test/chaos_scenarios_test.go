//go:build integration

package test

import (
	"strings"
	"time"
)

// failoverTimeout bounds the wait for a new primary after a fault (ttl + election on a loaded machine).
const failoverTimeout = 90 * time.Second

// scenarioNodeCrash: the primary's machine dies (every process SIGKILLed, link
// down), a replica takes over, the machine comes back and rejoins.
func scenarioNodeCrash(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	f := e.fault("kill -9 of every process on the primary %s, link down", p.Name)
	p.Crash()
	np := e.waitPrimary(failoverTimeout, p)
	back := e.w.WaitWrites(e.t, failoverTimeout, f.At)
	e.note("new primary %s; writes through /primary %.1fs after the crash", np.Name, back.Sub(f.At).Seconds())
	e.hold(time.Second, 4*time.Second)
	p.Revive()
	e.heal(f)
	e.recovered(f, bootTimeout)
}

// scenarioPostmasterCrash: the primary's postmaster is SIGKILLed; pgnoded
// brings it back (or fails over). Acknowledged commits are on disk: none may be lost.
func scenarioPostmasterCrash(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	pid := p.PostmasterPID()
	f := e.fault("SIGKILL of the postmaster (pid %d) on the primary %s", pid, p.Name)
	p.KillPostmaster()
	WaitFor(e.t, failoverTimeout, "a new postmaster on "+p.Name+" or another primary", func() bool {
		now := p.PostmasterPID()
		return (now > 0 && now != pid) || e.primary() != p
	})
	np := e.recovered(f, bootTimeout)
	how := "restarted in place"
	if np != p {
		how = "failed over to " + np.Name
	}
	e.note("postmaster crash on %s: %s", p.Name, how)
}

// scenarioPgnodedCrash: the primary's pgnoded is SIGKILLed and restarted
// within the ttl: postgres keeps running and no failover may happen.
func scenarioPgnodedCrash(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	f := e.fault("SIGKILL of pgnoded on the primary %s, restarted within the ttl", p.Name)
	p.KillPgnoded()
	d := e.hold(time.Second, 4*time.Second)
	p.Start()
	e.heal(f)
	e.recovered(f, bootTimeout)
	e.note("pgnoded on %s was down %.1fs", p.Name, d.Seconds())
	e.expectLeaderKept(p, f.At)
}

// scenarioPrimaryCutFromEtcd: the primary loses etcd but clients still reach
// it. It must stop taking writes before its lease can end; a replica takes over.
func scenarioPrimaryCutFromEtcd(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	_, expiry := e.leaseEndsNoEarlierThan()
	f := e.fault("the primary %s cut from every etcd member (clients and peers still reach it)", p.Name)
	e.tp.Partition(p.NS, e.tp.Etcd...)
	e.failoverThenHeal(f, p, expiry)
}

// scenarioPrimaryIsolated: the primary is cut from everything (etcd, peers, clients).
func scenarioPrimaryIsolated(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	_, expiry := e.leaseEndsNoEarlierThan()
	f := e.fault("the primary %s cut from everything", p.Name)
	e.tp.Partition(p.NS, e.everyoneBut(p)...)
	e.failoverThenHeal(f, p, expiry)
}

// failoverThenHeal waits for a new primary while p is cut off, heals, waits
// for the cluster to be whole, and checks that p took no write once its lease
// could have ended.
func (e *chaosEnv) failoverThenHeal(f *chaosFault, p *Node, expiry time.Time) {
	np := e.waitPrimary(failoverTimeout, p)
	back := e.w.WaitWrites(e.t, failoverTimeout, f.At)
	e.note("new primary %s; writes through /primary %.1fs after the cut; %s's lease ended no earlier than %.1fs after it",
		np.Name, back.Sub(f.At).Seconds(), p.Name, expiry.Sub(f.At).Seconds())
	e.noteReadOnly(p, f.At, expiry)
	e.hold(time.Second, 5*time.Second)
	e.tp.Heal(p.NS)
	e.heal(f)
	e.recovered(f, bootTimeout)
	e.expectNoStrayWrites(p, expiry, true, "after its lease could have ended")
}

// scenarioReplicaIsolated: a replica is cut from everything for longer than
// the ttl, then rejoins. The primary is not affected: no failover, nothing lost.
func scenarioReplicaIsolated(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	r := e.pick(e.c.Others(p))
	f := e.fault("the replica %s cut from everything", r.Name)
	e.tp.Partition(r.NS, e.everyoneBut(r)...)
	e.hold(e.opts.ttl()+2*time.Second, e.opts.ttl()+8*time.Second)
	e.tp.Heal(r.NS)
	e.heal(f)
	e.recovered(f, bootTimeout)
	e.expectLeaderKept(p, f.At)
}

// scenarioEtcdLeaderKilled: the raft leader among the three etcd members is
// killed and restarted later; the quorum remains, so no failover may happen.
func scenarioEtcdLeaderKilled(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	cli := e.tp.EtcdClient()
	var m *EtcdMember
	WaitFor(e.t, 10*time.Second, "an etcd leader", func() bool { m = e.tp.EtcdLeader(cli); return m != nil })
	f := e.fault("kill -9 of the etcd leader %s", m.Name)
	m.Kill()
	e.hold(3*time.Second, 8*time.Second)
	m.Restart()
	e.heal(f)
	e.recovered(f, bootTimeout)
	e.expectLeaderKept(p, f.At)
}

// scenarioEtcdDown: every etcd member is down (killed, or frozen with
// SIGSTOP) for a while, failsafe_mode off. The primary must go read-only
// before its lease can end, nobody may take writes while etcd is down, and
// writes must return once etcd is back. envVar (seconds) overrides the default length.
func scenarioEtcdDown(freeze bool, envVar string, def int) func(e *chaosEnv) {
	return func(e *chaosEnv) {
		p := e.waitPrimary(30*time.Second, nil)
		down := chaosEnvDuration(envVar, def, time.Second)
		_, expiry := e.leaseEndsNoEarlierThan()
		f := e.fault("every etcd member %s for %v, failsafe_mode off", outageWord(freeze), down)
		restore := e.etcdOutage(freeze)
		time.Sleep(down) // the fault's length, not a synchronisation
		e.noteReadOnly(p, f.At, expiry)
		backAt := time.Now()
		restore()
		e.heal(f)
		back := e.w.WaitWrites(e.t, failoverTimeout, backAt)
		e.note("writes through /primary %.1fs after etcd came back", back.Sub(backAt).Seconds())
		e.recovered(f, bootTimeout)
		for _, n := range e.c.Nodes {
			from := f.At
			if n == p {
				from = expiry
			}
			e.expectNoStrayWritesUntil(n, from, backAt, false, "while etcd was down")
		}
	}
}

// scenarioZombieLeader: the primary's pgnoded is frozen (SIGSTOP) for longer
// than the ttl, a replica takes over, then it wakes (SIGCONT). Its postgres
// must take no write once the lease could have ended (the fence guard), and
// none after it wakes.
func scenarioZombieLeader(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	_, expiry := e.leaseEndsNoEarlierThan()
	f := e.fault("SIGSTOP of pgnoded on the primary %s", p.Name)
	p.Proc.Pause()
	np := e.waitPrimary(failoverTimeout, p)
	e.noteReadOnly(p, f.At, expiry)
	// Stay frozen past the ttl (and a random while longer) before waking.
	min := e.opts.ttl() + time.Duration(1+e.rng.IntN(4))*time.Second
	if left := min - time.Since(f.At); left > 0 {
		time.Sleep(left)
	}
	wakeAt := time.Now()
	p.Proc.Resume()
	e.heal(f)
	e.note("new primary %s; %s frozen %.1fs", np.Name, p.Name, wakeAt.Sub(f.At).Seconds())
	e.recovered(f, bootTimeout)
	e.expectNoStrayWrites(p, expiry, true, "after its lease could have ended (frozen pgnoded: the fence guard's job)")
	e.expectNoStrayWrites(p, wakeAt, true, "after waking")
}

// everyoneBut lists every namespace of the topology except n's (the other
// nodes, etcd, the client).
func (e *chaosEnv) everyoneBut(n *Node) []*NetNS {
	var out []*NetNS
	for _, o := range e.c.Others(n) {
		out = append(out, o.NS)
	}
	out = append(out, e.tp.Etcd...)
	return append(out, e.tp.Client)
}

// expectLeaderKept fails the scenario if the leader key named anyone but p
// (or vanished) after `from`.
func (e *chaosEnv) expectLeaderKept(p *Node, from time.Time) {
	_, _, _, leaders := e.w.rec.snapshot()
	var seen []string
	for _, s := range leaders {
		if s.At.After(from) && s.OK && s.Value != p.Name {
			seen = append(seen, s.Value)
		}
	}
	if len(seen) > 0 {
		e.t.Errorf("failover where none was expected: after the fault the leader key was %q in %d samples (leader %s)",
			strings.Join(dedup(seen), ","), len(seen), p.Name)
	} else {
		e.note("no failover: the leader key named %s throughout", p.Name)
	}
}

// expectNoStrayWrites fails the scenario if node was seen writable in a
// request sent at or after `from` (while the leader key did not name it, if exceptLeader).
func (e *chaosEnv) expectNoStrayWrites(n *Node, from time.Time, exceptLeader bool, why string) {
	e.expectNoStrayWritesUntil(n, from, time.Time{}, exceptLeader, why)
}

func (e *chaosEnv) expectNoStrayWritesUntil(n *Node, from, until time.Time, exceptLeader bool, why string) {
	sql, _, _, leaders := e.w.rec.snapshot()
	var stray []observation
	for _, o := range writableAfter(sql, n.Name, from) {
		if !until.IsZero() && !o.Sent.Before(until) {
			continue
		}
		if exceptLeader && leaderAround(leaders, o.Sent, n.Name) {
			continue
		}
		stray = append(stray, o)
	}
	if len(stray) == 0 {
		return
	}
	o := stray[0]
	e.t.Errorf("%s was writable %s: %d observations, the first by %s sent %s (%.2fs after %s)",
		n.Name, why, len(stray), o.Source, o.Sent.Format("15:04:05.000"), o.Sent.Sub(from).Seconds(), from.Format("15:04:05.000"))
}

// noteReadOnly notes when node p was last seen writable after `from`, against its lease end.
func (e *chaosEnv) noteReadOnly(p *Node, from, expiry time.Time) {
	sql, _, _, _ := e.w.rec.snapshot()
	last := time.Time{}
	for _, o := range writableAfter(sql, p.Name, from) {
		if o.Recv.After(last) {
			last = o.Recv
		}
	}
	if last.IsZero() {
		e.note("%s: not seen writable after the fault (lease ended no earlier than +%.1fs)", p.Name, expiry.Sub(from).Seconds())
		return
	}
	e.note("%s: last seen writable +%.2fs after the fault; its lease ended no earlier than +%.2fs",
		p.Name, last.Sub(from).Seconds(), expiry.Sub(from).Seconds())
}

// leaderAround reports whether the leader key named node in the last
// answered sample before t or the first one after it (the key is taken
// before promotion, and the samples are 100 ms apart).
func leaderAround(samples []leaderSample, t time.Time, node string) bool {
	before := ""
	for _, s := range samples {
		if !s.OK {
			continue
		}
		if s.At.After(t) {
			return before == node || s.Value == node
		}
		before = s.Value
	}
	return before == node
}

func dedup(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
