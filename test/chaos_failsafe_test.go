//go:build integration

package test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// The DCS failsafe scenarios (failsafe_mode; Patroni's docs, dcs_failsafe_mode.rst),
// in the same namespace topology as the failure suite: three real etcd processes,
// so an outage can be a freeze (SIGSTOP: connections stay open and hang) as well
// as a kill.

// fsPermanentSlot is the permanent physical slot of the failsafe clusters:
// replicas keep a copy and follow the primary's position, from the status
// key and, while etcd is down, from the failsafe primary's POST /failsafe.
const fsPermanentSlot = "fs_perm"

// fsOutageDefault is how long etcd stays down in the failsafe scenarios
// (PGNODED_CHAOS_FS_OUTAGE overrides, in seconds).
const fsOutageDefault = 30

// etcdOutage takes every etcd member down, frozen (SIGSTOP) or killed, and
// returns the function that brings them back.
func (e *chaosEnv) etcdOutage(freeze bool) (restore func()) {
	for _, m := range e.etcd {
		if freeze {
			m.Proc.Pause()
		} else {
			m.Kill()
		}
	}
	return func() {
		for _, m := range e.etcd {
			if freeze {
				m.Proc.Resume()
			} else {
				m.Restart()
			}
		}
	}
}

// outageWord names an etcd outage for the fault's text.
func outageWord(freeze bool) string {
	if freeze {
		return "frozen (SIGSTOP)"
	}
	return "killed"
}

// waitFailsafeKey waits until the leader has written the failsafe key naming every node.
func (e *chaosEnv) waitFailsafeKey() {
	e.t.Helper()
	WaitFor(e.t, 30*time.Second, "the failsafe key naming every member", func() bool {
		raw, ok := e.c.EtcdKey(context.Background(), "failsafe")
		if !ok {
			return false
		}
		var m map[string]string
		if json.Unmarshal([]byte(raw), &m) != nil {
			return false
		}
		for _, n := range e.c.Nodes {
			if m[n.Name] == "" {
				return false
			}
		}
		return true
	})
}

// failsafeActive reads failsafe_mode_is_active from n's /patroni.
func failsafeActive(n *Node) bool { return failsafeActiveIn(n.Get("/patroni")) }

// failsafeActiveIn reads failsafe_mode_is_active from a /patroni answer (false when there was none).
func failsafeActiveIn(code int, doc []byte) bool {
	var d struct {
		Active bool `json:"failsafe_mode_is_active"`
	}
	return code != 0 && json.Unmarshal(doc, &d) == nil && d.Active
}

// readOnlyDuring lists the SQL observations that saw n read-only in a request sent in [from, to).
func (e *chaosEnv) readOnlyDuring(n *Node, from, to time.Time) []observation {
	sql, _, _, _ := e.w.rec.snapshot()
	var out []observation
	for _, o := range sql {
		if o.Node == n.Name && o.State == obsReadOnly && !o.Sent.Before(from) && o.Sent.Before(to) {
			out = append(out, o)
		}
	}
	return out
}

// writeGap is the longest pause between acknowledged writes through /primary
// within [from, to), however short.
func (e *chaosEnv) writeGap(from, to time.Time) time.Duration {
	_, _, acks, _ := e.w.rec.snapshot()
	return longestGap(ackGaps(acks, "writer", from, to, 0)).Len()
}

// scenarioFailsafeEtcdOutage: failsafe_mode on, every etcd member down for
// 30 s (frozen or killed). Every member confirms the primary, so it keeps
// taking writes all along: it is never seen read-only, no failover happens,
// and it holds the leader key again once etcd is back.
func scenarioFailsafeEtcdOutage(freeze bool) func(e *chaosEnv) {
	return func(e *chaosEnv) {
		p := e.waitPrimary(30*time.Second, nil)
		e.waitFailsafeKey()
		down := chaosEnvDuration("PGNODED_CHAOS_FS_OUTAGE", fsOutageDefault, time.Second)
		f := e.fault("every etcd member %s for %v, failsafe_mode on", outageWord(freeze), down)
		restore := e.etcdOutage(freeze)
		sawActive := false
		var slotTarget int64
		slotFollowed := map[string]bool{}
		for time.Since(f.At) < down {
			if !sawActive && failsafeActive(p) {
				sawActive = true
				e.note("%s reports failsafe_mode_is_active %.1fs after etcd went down", p.Name, time.Since(f.At).Seconds())
				// Move the permanent slot on the primary: the replicas can
				// only learn the new position from POST /failsafe now.
				slotTarget = e.advanceSlot(p, fsPermanentSlot)
			}
			if slotTarget > 0 {
				for _, r := range e.c.Others(p) {
					if pos, ok := e.slotPosition(r, fsPermanentSlot); ok && pos >= slotTarget && !slotFollowed[r.Name] {
						slotFollowed[r.Name] = true
						e.note("%s's copy of the permanent slot reached the primary's position %.1fs after etcd went down",
							r.Name, time.Since(f.At).Seconds())
					}
				}
			}
			time.Sleep(250 * time.Millisecond) // the fault's length, sampled
		}
		restore()
		e.heal(f)
		gap := e.writeGap(f.At, f.HealedAt)
		e.note("longest pause between acknowledged writes while etcd was down: %.3fs", gap.Seconds())
		if !sawActive {
			e.t.Errorf("%s never reported failsafe_mode_is_active during the outage", p.Name)
		}
		if slotTarget > 0 && len(slotFollowed) != len(e.c.Nodes)-1 {
			e.t.Errorf("the replicas' copies of the permanent slot %s did not follow the primary during the outage (followed: %v)",
				fsPermanentSlot, slotFollowed)
		}
		if ro := e.readOnlyDuring(p, f.At, f.HealedAt); len(ro) > 0 {
			e.t.Errorf("the primary %s was seen read-only %d times while etcd was down, the first %.2fs after the fault (failsafe should keep it primary)",
				p.Name, len(ro), ro[0].Sent.Sub(f.At).Seconds())
		}
		e.recovered(f, bootTimeout)
		WaitFor(e.t, 30*time.Second, "the leader key naming "+p.Name+" again", func() bool {
			l, ok := e.c.EtcdKey(context.Background(), "leader")
			return ok && l == p.Name
		})
		e.expectNoOtherLeader(p, f.At)
	}
}

// scenarioFailsafePrimaryCutFromEtcdAndReplica: failsafe_mode on, the primary
// loses etcd and one replica; the other replica still reaches both. The
// primary cannot gather every confirmation, so it must be read-only before
// its lease can end, and a replica that reaches etcd takes over.
func scenarioFailsafePrimaryCutFromEtcdAndReplica(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	e.waitFailsafeKey()
	r := e.pick(e.c.Others(p))
	_, expiry := e.leaseEndsNoEarlierThan()
	f := e.fault("the primary %s cut from every etcd member and from the replica %s, failsafe_mode on", p.Name, r.Name)
	e.tp.Partition(p.NS, append(append([]*NetNS(nil), e.tp.Etcd...), r.NS)...)
	e.failoverThenHeal(f, p, expiry)
}

// scenarioFailsafeReplicaCutFromEtcd: failsafe_mode on, one replica loses
// etcd for longer than the ttl. It keeps streaming from the primary it knows
// and never promotes; the primary is not affected.
func scenarioFailsafeReplicaCutFromEtcd(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	e.waitFailsafeKey()
	r := e.pick(e.c.Others(p))
	f := e.fault("the replica %s cut from every etcd member, failsafe_mode on", r.Name)
	e.tp.Partition(r.NS, e.tp.Etcd...)
	hold := e.opts.ttl() + 3*time.Second + time.Duration(e.rng.IntN(4))*time.Second
	streamed, looks := 0, 0
	for time.Since(f.At) < hold {
		if time.Since(f.At) > e.opts.ttl() {
			looks++
			if e.streamsFrom(p, r) {
				streamed++
			}
		}
		time.Sleep(500 * time.Millisecond) // the fault's length, sampled
	}
	e.tp.Heal(r.NS)
	e.heal(f)
	e.note("%s streamed from %s in %d of %d looks after the ttl had passed without etcd", r.Name, p.Name, streamed, looks)
	if looks > 0 && streamed == 0 {
		e.t.Errorf("the replica %s stopped streaming from %s while cut from etcd", r.Name, p.Name)
	}
	if code := r.Check("/primary"); code == http.StatusOK {
		e.t.Errorf("the replica %s answers 200 on /primary right after the cut healed", r.Name)
	}
	e.recovered(f, bootTimeout)
	e.expectNoStrayWrites(r, f.At, false, "while cut from etcd (a replica may never promote without the DCS)")
	e.expectLeaderKept(p, f.At)
}

// advanceSlot moves slot on n to its current WAL position and returns that
// position (0 when it could not).
func (e *chaosEnv) advanceSlot(n *Node, slot string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := n.Conn(ctx)
	if err != nil {
		e.t.Errorf("advance %s on %s: %v", slot, n.Name, err)
		return 0
	}
	defer conn.Close(context.Background())
	var pos int64
	err = conn.QueryRow(ctx, `select pg_wal_lsn_diff(end_lsn, '0/0')::bigint
  from pg_replication_slot_advance($1, pg_current_wal_lsn()) as a(slot_name, end_lsn)`, slot).Scan(&pos)
	if err != nil {
		e.t.Errorf("advance %s on %s: %v", slot, n.Name, err)
		return 0
	}
	return pos
}

// slotPosition is slot's restart_lsn on n as a byte offset (false when absent or unreadable).
func (e *chaosEnv) slotPosition(n *Node, slot string) (int64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := n.Conn(ctx)
	if err != nil {
		return 0, false
	}
	defer conn.Close(context.Background())
	var pos int64
	err = conn.QueryRow(ctx, `select pg_wal_lsn_diff(restart_lsn, '0/0')::bigint from pg_replication_slots
 where slot_name = $1 and restart_lsn is not null`, slot).Scan(&pos)
	return pos, err == nil
}

// expectNoOtherLeader fails the scenario if the leader key named anyone but
// p after `from`. Unlike expectLeaderKept it allows the key to be absent for
// a moment: a frozen etcd expires p's lease as it wakes, and p takes the key
// again (create-only) while the failsafe confirmations keep the others out.
func (e *chaosEnv) expectNoOtherLeader(p *Node, from time.Time) {
	_, _, _, leaders := e.w.rec.snapshot()
	var others []string
	absent := 0
	for _, s := range leaders {
		switch {
		case !s.At.After(from) || !s.OK:
		case s.Value == "":
			absent++
		case s.Value != p.Name:
			others = append(others, s.Value)
		}
	}
	if len(others) > 0 {
		e.t.Errorf("another leader after the fault: the leader key named %q in %d samples (leader %s)",
			strings.Join(dedup(others), ","), len(others), p.Name)
		return
	}
	e.note("no other leader: the key named %s throughout (absent in %d samples while %s took it again)", p.Name, absent, p.Name)
}

// streamsFrom reports whether r is a streaming replica of p (pg_stat_replication on p).
func (e *chaosEnv) streamsFrom(p, r *Node) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := e.c.ConnTo(ctx, p.NS.IP.String(), time.Second)
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, "select count(*) from pg_stat_replication where state = 'streaming' and client_addr = $1::inet",
		r.NS.IP.String()).Scan(&n)
	return err == nil && n > 0
}

// scenarioFailsafeZombie: failsafe_mode on, etcd frozen, and while the
// primary is kept by failsafe its pgnoded is frozen too. Its confirmations
// stop, so the fence guard must stop postgres within a ttl of the last one;
// once etcd is back a replica takes over; the old primary rejoins after waking.
func scenarioFailsafeZombie(e *chaosEnv) {
	p := e.waitPrimary(30*time.Second, nil)
	e.waitFailsafeKey()
	down := chaosEnvDuration("PGNODED_CHAOS_FS_OUTAGE", fsOutageDefault, time.Second)
	f := e.fault("every etcd member frozen for %v, then SIGSTOP of pgnoded on the failsafe primary %s", down, p.Name)
	restore := e.etcdOutage(true)
	WaitFor(e.t, 3*e.opts.ttl(), "failsafe active on "+p.Name, func() bool { return failsafeActive(p) })
	frozenAt := time.Now()
	p.Proc.Pause()
	// Its last confirmation started before the freeze: nothing may be written
	// on it a ttl after the freeze.
	fenced := frozenAt.Add(e.opts.ttl())
	if left := down - time.Since(f.At); left > 0 {
		time.Sleep(left) // the fault's length, not a synchronisation
	}
	resumeAt := time.Now()
	restore()
	np := e.waitPrimary(failoverTimeout, p)
	e.noteReadOnly(p, frozenAt, fenced)
	e.hold(time.Second, 3*time.Second)
	wakeAt := time.Now()
	p.Proc.Resume()
	e.heal(f)
	e.note("new primary %s %.1fs after etcd was resumed; %s frozen %.1fs", np.Name, time.Since(resumeAt).Seconds(), p.Name, wakeAt.Sub(frozenAt).Seconds())
	e.recovered(f, bootTimeout)
	e.expectNoStrayWritesUntil(p, fenced, wakeAt, false, "a ttl after its pgnoded froze in failsafe mode (the fence guard's job)")
	e.expectNoStrayWrites(p, wakeAt, true, "after waking")
}
