package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Quorum commit (Patroni 4.x synchronous_mode: quorum; docs/replication_modes.rst,
// QuorumStateResolver in quorum.py; docs/synchronous-replication.md "Quorum").
//
// Two "ANY n of a set" statements are kept in step:
//
//   - synchronous_standby_names = ANY n (S): a commit is acknowledged once n
//     of the standbys S (and the primary) flushed it;
//   - the sync key {"leader": L, "sync_standby": V, "quorum": q}: a candidate
//     may be promoted only when q+1 members of V ∪ {L} (itself included when
//     it is one of them) report a WAL position at or below its own.
//
// Invariant (quorum.py's: any set of nodes that can acknowledge a commit
// overlaps any set that can elect a new leader): for the newest acknowledged
// commit, at most q members of V lack it. Then any q+1 voters include one that
// has it, and the candidate, at or past that voter, has it too. For commits
// acknowledged under ANY n (S) the worst case is the n holders chosen outside
// V, so V is safe with quorum q when
//
//	q >= |V| - max(0, n - |S \ V|)        (quorumNeed)
//
// which for V = S is q >= |S| - n: the optimal state is V = S = the eligible
// standbys, n = min(synchronous_node_count, |S|), q = |S| - n.
//
// The order of changes keeps the invariant after every single step (one GUC
// change or one key write, as the effects are applied):
//
//   - a GUC change is made only while the key in DCS is safe for the new GUC
//     (every commit acknowledged under it will be held as the key needs);
//     when it is not, the key is first rewritten (quorum raised, voters leaving
//     the GUC dropped, or, when nothing else is safe, no voters at all: only
//     the leader may be promoted) — so n is lowered after q is raised, and q
//     is lowered only after n was raised and confirmed;
//   - a key write must be safe for every commit acknowledged so far: those
//     under the GUC in effect and the one asked for but maybe not yet in
//     effect, and the older ones — held either by the standbys that replayed
//     past the primary's flush position recorded once the GUC in effect was
//     seen (confirmed), or by any voters of a key that is a subset of the
//     current key with a quorum no lower (the current key is safe by
//     induction).

// quorumKey is the sync key's voters and quorum.
type quorumKey struct {
	voters []string
	quorum int
}

// valid: a non-empty voter set needs a quorum below its size (quorum.py's
// QuorumError otherwise); an empty set has quorum 0.
func (k quorumKey) valid() bool {
	if len(k.voters) == 0 {
		return k.quorum == 0
	}
	return k.quorum >= 0 && k.quorum < len(k.voters)
}

func (k quorumKey) equal(o quorumKey) bool {
	return k.quorum == o.quorum && sameFold(k.voters, o.voters)
}

// ssnRule is a parsed synchronous_standby_names: a commit waits for Num of Names.
type ssnRule struct {
	Num   int
	Names []string
	Any   bool // the ANY (quorum) form
	// Unknown: '*' or an unparsable value; nothing can be derived about who holds a commit.
	Unknown bool
}

// parseSSN reads a synchronous_standby_names value: "" (nobody), "a" or
// "a, b" (FIRST 1), "n (…)" and "FIRST n (…)", "ANY n (…)".
func parseSSN(v string) ssnRule {
	if strings.TrimSpace(v) == "" {
		return ssnRule{}
	}
	r := splitSSN(v)
	if len(r.Names) == 0 || slices.Contains(r.Names, "*") {
		return ssnRule{Unknown: true}
	}
	return r
}

// quorumNeed is the smallest quorum with which voters are safe for commits
// acknowledged under r (the invariant above). Holders are assumed to be the
// worst possible n names of r.Names (a placeholder included, which only makes
// it stricter); Num above the listed names acknowledges nothing.
func quorumNeed(voters []string, r ssnRule) int {
	if r.Unknown {
		return len(voters)
	}
	outside := 0
	for _, n := range r.Names {
		if !containsFold(voters, n) {
			outside++
		}
	}
	if r.Num > len(r.Names) {
		return 0
	}
	return max(0, len(voters)-max(0, r.Num-outside))
}

// missing counts the voters not in held.
func missing(voters, held []string) int {
	n := 0
	for _, v := range voters {
		if !containsFold(held, v) {
			n++
		}
	}
	return n
}

// FormatQuorumSSN is synchronous_standby_names in quorum mode: `ANY n (a,b)`,
// names sorted and quoted only when needed; "" with nobody or n = 0.
func FormatQuorumSSN(names []string, n int) string {
	if n <= 0 || len(names) == 0 {
		return ""
	}
	q := slices.Clone(names)
	slices.Sort(q)
	for i, s := range q {
		q[i] = quoteSSNName(s)
	}
	return fmt.Sprintf("ANY %d (%s)", n, strings.Join(q, ","))
}

// QuorumKey is the sync key of leader with voters and quorum (4.x layout).
func QuorumKey(leader string, voters []string, quorum int) cluster.SyncState {
	s := cluster.SyncState{Leader: leader, Quorum: &quorum}
	if len(voters) > 0 {
		v := slices.Clone(voters)
		slices.SortFunc(v, strings.Compare)
		j := strings.Join(v, ",")
		s.SyncStandby = &j
	}
	return s
}

// nextQuorum is NextSync under synchronous_mode: quorum (the caller checked
// the mode, the leader key and that postgres runs as primary): the
// synchronous_standby_names to run with and the sync key to write first.
func nextQuorum(o Observation, f SyncFacts) SyncStep {
	mine := o.View.Sync != nil && o.View.Sync.Leader != "" && strings.EqualFold(o.View.Sync.Leader, o.Name)
	cur := quorumKey{}
	if mine {
		cur.voters = o.View.Sync.Standbys()
		if o.View.Sync.Quorum != nil {
			cur.quorum = *o.View.Sync.Quorum
		}
		if !cur.valid() { // a key we did not write: only the empty key is known safe
			cur, mine = quorumKey{}, false
		}
	}
	ssn := o.PG.SyncStandbyNames
	note, record, recorded := f.stage(ssn)
	eff := parseSSN(ssn)
	active := eligibleSync(o, cur.voters, true)
	st := SyncStep{Manage: true, NoteGUC: note, RecordLSN: record, Picked: active}
	if recorded {
		for _, name := range eff.Names {
			if row, ok := replicationRow(o, name); ok && (row.SyncState == "quorum" || row.SyncState == "sync") &&
				row.ReplayLSN >= f.ConfirmLSN {
				st.Confirmed = append(st.Confirmed, name)
			}
		}
	}

	// The GUC wanted: every eligible standby, ANY min(node_count, |them|);
	// strict with too few: the voters (or the placeholder) with at least
	// node_count acknowledgements, so commits wait; the key is left alone then.
	wanted := max(o.Config.SynchronousNodeCount, 1)
	strictShort := o.Config.SynchronousModeStrict && len(active) < wanted
	var guc string
	switch {
	case strictShort:
		names := cur.voters
		if len(names) == 0 {
			names = []string{SyncPlaceholder}
		}
		guc = FormatQuorumSSN(names, max(wanted, len(cur.voters)-cur.quorum))
	default:
		guc = FormatQuorumSSN(active, min(wanted, len(active)))
	}
	target := parseSSN(guc)

	// Rules a new key must honour for commits acknowledged from now on.
	rules := []ssnRule{eff}
	if f.AskedSet && f.Asked != ssn {
		rules = append(rules, parseSSN(f.Asked))
	}
	// oldNeed is the quorum voters need for the commits acknowledged so far:
	// proven by the confirmed standbys, or by being a subset of the current key.
	oldNeed := func(voters []string) (int, bool) {
		need, ok := 0, false
		if recorded {
			need, ok = missing(voters, st.Confirmed), true
		}
		if missing(voters, cur.voters) == 0 && (!ok || cur.quorum < need) {
			need, ok = cur.quorum, true
		}
		return need, ok
	}
	needFor := func(voters []string, extra ...ssnRule) (int, bool) {
		need, ok := oldNeed(voters)
		if !ok {
			return 0, false
		}
		for _, r := range append(slices.Clone(rules), extra...) {
			need = max(need, quorumNeed(voters, r))
		}
		return need, true
	}

	next, write := cur, !mine
	pending := guc != ssn || f.AskedSet && f.Asked != ssn
	switch {
	case guc != ssn || f.AskedSet && f.Asked != guc:
		// Change the GUC; first make the key safe for it when it is not.
		if quorumNeed(cur.voters, target) > cur.quorum {
			var keep []string
			for _, v := range cur.voters {
				if containsFold(target.Names, v) {
					keep = append(keep, v)
				}
			}
			next = quorumKey{}
			if q, ok := needFor(keep, target); ok && (quorumKey{keep, q}).valid() {
				next = quorumKey{keep, q}
			}
			write = true
		}
	case !strictShort && recorded && !pending:
		// The GUC wanted is in effect: publish its standbys with the smallest
		// safe quorum once they confirmed (or the wait for them is over).
		voters := slices.DeleteFunc(slices.Clone(eff.Names), func(n string) bool { return n == SyncPlaceholder })
		if q, ok := needFor(voters); ok {
			want := quorumKey{voters, q}
			full := len(st.Confirmed) >= min(eff.Num, len(voters))
			if want.valid() && !want.equal(cur) && (full || !f.waitYoung(o)) {
				next, write = want, true
			}
		}
	}
	if !strictShort && len(active) > 0 {
		st.Unconfirmed = pending || !recorded || len(st.Confirmed) < min(eff.Num, len(eff.Names)) ||
			!next.equal(quorumKey{eff.Names, len(eff.Names) - eff.Num})
		st.Waiting = st.Unconfirmed && f.waitYoung(o)
	}
	if write {
		st.WriteSync = true
		st.Sync = QuorumKey(o.Name, next.voters, next.quorum)
	}
	st.GUC = guc
	return st
}
