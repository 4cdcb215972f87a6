//go:build integration

package test

import (
	"time"
)

// randomFault injects one fault into the healthy cluster whose primary is p,
// removes it, and returns once the fault is over (the caller waits for the
// cluster to be whole). The checks it needs afterwards go in check.
type randomFault struct {
	Name string
	Do   func(e *chaosEnv, p *Node) (f *chaosFault, check func())
}

// randomFaults is the menu the random scenario draws from.
var randomFaults = []randomFault{
	{"crash primary", func(e *chaosEnv, p *Node) (*chaosFault, func()) {
		f := e.fault("crash of the primary %s", p.Name)
		p.Crash()
		e.waitPrimary(failoverTimeout, p)
		e.hold(0, 3*time.Second)
		p.Revive()
		e.heal(f)
		return f, nil
	}},
	{"crash replica", func(e *chaosEnv, p *Node) (*chaosFault, func()) {
		r := e.pick(e.c.Others(p))
		f := e.fault("crash of the replica %s", r.Name)
		r.Crash()
		e.hold(time.Second, 8*time.Second)
		r.Revive()
		e.heal(f)
		return f, nil
	}},
	{"postmaster crash", func(e *chaosEnv, p *Node) (*chaosFault, func()) {
		f := e.fault("SIGKILL of the postmaster on the primary %s", p.Name)
		pid := p.PostmasterPID()
		p.KillPostmaster()
		WaitFor(e.t, failoverTimeout, "a new postmaster on "+p.Name+" or another primary", func() bool {
			now := p.PostmasterPID()
			return (now > 0 && now != pid) || e.primary() != p
		})
		e.heal(f)
		return f, nil
	}},
	{"pgnoded crash", func(e *chaosEnv, p *Node) (*chaosFault, func()) {
		n := e.pick(e.c.Nodes)
		f := e.fault("SIGKILL of pgnoded on %s, restarted within the ttl", n.Name)
		n.KillPgnoded()
		e.hold(0, 4*time.Second)
		n.Start()
		e.heal(f)
		return f, nil
	}},
	{"primary cut from etcd", func(e *chaosEnv, p *Node) (*chaosFault, func()) {
		_, expiry := e.leaseEndsNoEarlierThan()
		f := e.fault("the primary %s cut from etcd", p.Name)
		e.tp.Partition(p.NS, e.tp.Etcd...)
		e.waitPrimary(failoverTimeout, p)
		e.hold(0, 3*time.Second)
		e.tp.Heal(p.NS)
		e.heal(f)
		return f, func() {
			e.expectNoStrayWritesUntil(p, expiry, f.Healthy, true, "after its lease could have ended ("+f.What+")")
		}
	}},
	{"primary etcd blip", func(e *chaosEnv, p *Node) (*chaosFault, func()) {
		_, expiry := e.leaseEndsNoEarlierThan()
		f := e.fault("the primary %s cut from etcd briefly", p.Name)
		e.tp.Partition(p.NS, e.tp.Etcd...)
		e.hold(time.Second, e.opts.ttl()-time.Second) // around retry_timeout, under the ttl
		e.tp.Heal(p.NS)
		e.heal(f)
		return f, func() {
			e.expectNoStrayWritesUntil(p, expiry, f.Healthy, true, "after its lease could have ended ("+f.What+")")
		}
	}},
	{"etcd down briefly", func(e *chaosEnv, p *Node) (*chaosFault, func()) {
		_, expiry := e.leaseEndsNoEarlierThan()
		f := e.fault("every etcd member killed briefly")
		for _, m := range e.etcd {
			m.Kill()
		}
		e.hold(2*time.Second, 20*time.Second)
		restart := time.Now()
		for _, m := range e.etcd {
			m.Restart()
		}
		e.heal(f)
		return f, func() {
			e.expectNoStrayWritesUntil(p, expiry, restart, false, "while etcd was down ("+f.What+")")
			for _, o := range e.c.Others(p) {
				e.expectNoStrayWritesUntil(o, f.At, restart, false, "while etcd was down ("+f.What+")")
			}
		}
	}},
	{"replica isolated", func(e *chaosEnv, p *Node) (*chaosFault, func()) {
		r := e.pick(e.c.Others(p))
		f := e.fault("the replica %s cut from everything", r.Name)
		e.tp.Partition(r.NS, e.everyoneBut(r)...)
		e.hold(2*time.Second, 15*time.Second)
		e.tp.Heal(r.NS)
		e.heal(f)
		return f, nil
	}},
	{"etcd member killed", func(e *chaosEnv, p *Node) (*chaosFault, func()) {
		m := e.etcd[e.rng.IntN(len(e.etcd))]
		f := e.fault("kill -9 of the etcd member %s", m.Name)
		m.Kill()
		e.hold(2*time.Second, 8*time.Second)
		m.Restart()
		e.heal(f)
		return f, nil
	}},
	{"zombie primary", func(e *chaosEnv, p *Node) (*chaosFault, func()) {
		_, expiry := e.leaseEndsNoEarlierThan()
		f := e.fault("SIGSTOP of pgnoded on the primary %s", p.Name)
		p.Proc.Pause()
		e.waitPrimary(failoverTimeout, p)
		if left := e.opts.ttl() + time.Duration(1+e.rng.IntN(3))*time.Second - time.Since(f.At); left > 0 {
			time.Sleep(left) // the fault's length
		}
		wake := time.Now()
		p.Proc.Resume()
		e.heal(f)
		return f, func() {
			e.expectNoStrayWritesUntil(p, expiry, f.Healthy, true, "after its lease could have ended ("+f.What+")")
			e.expectNoStrayWritesUntil(p, wake, f.Healthy, true, "after waking ("+f.What+")")
		}
	}},
}

// scenarioRandomFaults draws faults from randomFaults (seeded) for
// PGNODED_CHAOS_MINUTES (default 2), waiting after each for the cluster to be
// whole and writes to flow.
func scenarioRandomFaults(e *chaosEnv) {
	d := chaosEnvDuration("PGNODED_CHAOS_MINUTES", 2, time.Minute)
	deadline := time.Now().Add(d)
	var checks []func()
	for time.Now().Before(deadline) {
		p := e.waitHealthy(bootTimeout)
		rf := randomFaults[e.rng.IntN(len(randomFaults))]
		f, check := rf.Do(e, p)
		e.recovered(f, bootTimeout)
		if check != nil {
			checks = append(checks, check)
		}
		e.hold(time.Second, 3*time.Second)
	}
	e.note("%d random faults in %v", len(e.faults), d)
	for _, c := range checks {
		c()
	}
}
