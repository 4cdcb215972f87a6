package plan

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// Synchronous replication (Patroni's Ha.process_sync_replication in ha.py and
// SyncHandler in postgresql/sync.py; docs/replication_modes.rst). The primary
// keeps two things in step: synchronous_standby_names (what postgres waits
// for) and the sync key (who may be promoted). The order never over-promises:
// a standby is added to the GUC first and to the key only once
// pg_stat_replication reports it "sync" and it replayed up to the primary's
// flush position recorded when the GUC took effect; one is removed from the
// key first and from the GUC after.

// ReasonSyncConfirm is the short-poll reason of a primary waiting for a newly
// listed synchronous standby to confirm (ShortPolls).
const ReasonSyncConfirm = "sync_confirm"

// SyncPlaceholder is the name Patroni 4.x puts in synchronous_standby_names in
// strict mode when no standby is known: nobody can confirm, commits wait.
const SyncPlaceholder = "__patroni_strict_sync_replica_placeholder__"

// SyncFacts is what the loop remembers of synchronous replication between cycles.
type SyncFacts struct {
	Compat4 bool // Patroni 4.x spellings of synchronous_standby_names
	// SeenFor is the synchronous_standby_names the last observation had in effect
	// (SeenSet: noted). The flush position is recorded only once a value was seen
	// in effect in an earlier cycle: the observing session reloads before the
	// checkpointer tells committing backends to wait, and a cycle later it has.
	SeenFor string
	SeenSet bool
	// ConfirmFor is the synchronous_standby_names in effect when ConfirmLSN was
	// recorded, ConfirmLSN the primary's flush position then (ConfirmSet: recorded).
	ConfirmFor string
	ConfirmLSN cluster.LSN
	ConfirmSet bool
	// WaitingSince is when a picked standby started waiting for its confirmation (zero: none waits).
	WaitingSince time.Time
	// Asked is the synchronous_standby_names last asked for (AskedSet: one
	// was), which may not be in effect yet: quorum mode keeps the key safe for
	// commits acknowledged under it too.
	Asked    string
	AskedSet bool
}

// Advance is what the loop remembers after carrying out st, planned on an
// observation with ssn in effect and the primary's flush position flush.
func (f SyncFacts) Advance(st SyncStep, ssn string, flush cluster.LSN, now time.Time) SyncFacts {
	switch {
	case st.NoteGUC:
		f = SyncFacts{Compat4: f.Compat4, SeenSet: true, SeenFor: ssn, WaitingSince: f.WaitingSince,
			Asked: f.Asked, AskedSet: f.AskedSet}
	case st.RecordLSN:
		f.ConfirmSet, f.ConfirmFor, f.ConfirmLSN = true, ssn, flush
	}
	switch {
	case !st.Unconfirmed:
		f.WaitingSince = time.Time{}
	case f.WaitingSince.IsZero():
		f.WaitingSince = now
	}
	return f
}

// stage is where the confirmation of the GUC in effect (ssn) stands: note
// it (it changed since the last cycle), record the flush position (noted a
// cycle ago), or recorded in an earlier cycle.
func (f SyncFacts) stage(ssn string) (note, record, recorded bool) {
	note = !f.SeenSet || f.SeenFor != ssn
	record = !note && (!f.ConfirmSet || f.ConfirmFor != ssn)
	return note, record, !note && !record
}

// waitYoung: no standby waits for its confirmation yet, or it has waited less
// than syncPollFor (the cycle still polls for it).
func (f SyncFacts) waitYoung(o Observation) bool {
	return f.WaitingSince.IsZero() || o.Now.Sub(f.WaitingSince) < syncPollFor(o.Config)
}

// syncPollFor is how long a primary polls for a standby's confirmation before
// it falls back to the loop_wait tick: a standby whose replay is stuck (paused,
// a recovery conflict) must not keep the leader cycling every 200 ms.
func syncPollFor(cfg cluster.DynamicConfig) time.Duration {
	return max(2*cfg.LoopWaitDuration(), 10*time.Second)
}

// SyncStep is what the primary does about synchronous replication this cycle,
// applied after a successful leader-key update: the sync key first (narrowed,
// written or deleted, with a compare on its revision), then the GUC.
type SyncStep struct {
	// Manage: synchronous mode is on and this node is the primary holding the key.
	Manage bool
	// GUC is the synchronous_standby_names to run with ("" = none: asynchronous).
	GUC string
	// NoteGUC: the GUC in effect changed since the last cycle; note it (SeenFor)
	// and forget the recorded position.
	NoteGUC bool
	// RecordLSN: the GUC in effect was already seen a cycle ago and no position
	// is recorded for it; remember PG.FlushLSN as the position a newly listed
	// standby must replay before it counts as synchronous.
	RecordLSN bool
	// WriteSync: write Sync to the sync key, only if its revision is still View.Sync's (absent: create).
	WriteSync bool
	Sync      cluster.SyncState
	// DeleteSync: synchronous mode is off; delete the sync key (compare on its revision).
	DeleteSync bool
	// Picked are the standbys chosen for the GUC; Confirmed those that may be published in the key.
	Picked    []string
	Confirmed []string
	// Unconfirmed: a picked standby has not confirmed yet. Waiting: and the
	// wait is young enough to poll for it (syncPollFor): nothing announces a
	// standby's progress, so the cycle polls (ShortPolls[ReasonSyncConfirm]).
	Unconfirmed bool
	Waiting     bool
}

// Empty reports a step with nothing to do.
func (s SyncStep) Empty() bool { return !s.Manage && !s.DeleteSync }

// NextSync is the synchronous replication rule for a primary holding the key
// (the caller plans it only then): the standbys to list in
// synchronous_standby_names and the sync key to publish.
func NextSync(o Observation, f SyncFacts) SyncStep {
	mine := o.View.Sync != nil && o.View.Sync.Leader != "" && strings.EqualFold(o.View.Sync.Leader, o.Name)
	if !o.Config.SynchronousMode {
		return SyncStep{DeleteSync: o.View.Sync != nil}
	}
	if !o.LeaderIsMe() || !o.PGReady() || o.PG.InRecovery {
		return SyncStep{}
	}
	if o.Config.SynchronousQuorum && f.Compat4 {
		return nextQuorum(o, f)
	}
	var current []string
	if mine {
		current = o.View.Sync.Standbys()
	}
	effective := parseSSNMembers(o.PG.SyncStandbyNames)
	note, record, recorded := f.stage(o.PG.SyncStandbyNames)
	picked := pickSync(o, current, f.Compat4)
	st := SyncStep{Manage: true, NoteGUC: note, RecordLSN: record, Picked: picked}
	for _, name := range picked {
		row, _ := replicationRow(o, name)
		switch {
		case !containsFold(effective, name) || row.SyncState != "sync":
			st.Unconfirmed = true
		case containsFold(current, name) || recorded && row.ReplayLSN >= f.ConfirmLSN:
			st.Confirmed = append(st.Confirmed, name)
		default:
			st.Unconfirmed = true
		}
	}
	st.Waiting = st.Unconfirmed && f.waitYoung(o)
	want := slices.Clone(st.Confirmed)
	slices.SortFunc(want, func(a, b string) int { return strings.Compare(a, b) })
	if !mine || !sameFold(want, current) {
		st.WriteSync = true
		st.Sync = SyncKey(o.Name, f.Compat4)
		if len(want) > 0 {
			v := strings.Join(want, ",")
			st.Sync.SyncStandby = &v
		}
	}
	st.GUC = FormatSSN(picked, o.Config.SynchronousModeStrict, f.Compat4, current)
	return st
}

// SyncKey is the sync key naming leader with no standby: 4.x writes "quorum": 0 too.
func SyncKey(leader string, compat4 bool) cluster.SyncState {
	s := cluster.SyncState{Leader: leader}
	if compat4 {
		zero := 0
		s.Quorum = &zero
	}
	return s
}

// pickSync chooses up to synchronous_node_count standbys (Patroni's
// SyncHandler.current_state): the first of eligibleSync.
func pickSync(o Observation, current []string, compat4 bool) []string {
	out := eligibleSync(o, current, compat4)
	if n := max(o.Config.SynchronousNodeCount, 1); len(out) > n {
		out = out[:n]
	}
	return out
}

// eligibleSync lists, best first, the standbys that may be synchronous:
// members streaming from us, not nosync (4.x: nor sync_priority <= 0), not
// nostream, not cascading; preferring members that may fail over, then the
// current sync standbys, (4.x) higher sync_priority, state "sync", the
// furthest flushed; a member lagging more than maximum_lag_on_syncnode behind
// the best is skipped.
func eligibleSync(o Observation, current []string, compat4 bool) []string {
	type cand struct {
		name     string
		row      cluster.ReplicationRow
		noFail   bool
		inSync   bool
		priority int
	}
	var cands []cand
	for _, r := range o.PG.Replication {
		if r.State != "streaming" {
			continue
		}
		m, ok := memberFold(o, r.ApplicationName)
		if !ok || strings.EqualFold(m.Name, o.Name) || m.State != string(cluster.StateRunning) {
			continue
		}
		t := ParseTags(m.Tags)
		prio, hasPrio := cluster.TagInt(m.Tags, cluster.TagSyncPriority)
		if !hasPrio {
			prio = 1
		}
		if t.NoStream || (t.ReplicateFrom != "" && !strings.EqualFold(t.ReplicateFrom, o.Name)) {
			continue
		}
		if t.NoSync || compat4 && hasPrio && prio <= 0 {
			continue
		}
		cands = append(cands, cand{name: m.Name, row: r, noFail: !t.CanFailover(),
			inSync: containsFold(current, m.Name), priority: prio})
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		if c := cmpBool(a.noFail, b.noFail); c != 0 {
			return c
		}
		if c := cmpBool(b.inSync, a.inSync); c != 0 {
			return c
		}
		if compat4 {
			if c := cmp.Compare(b.priority, a.priority); c != 0 {
				return c
			}
		}
		if c := cmp.Compare(syncStateRank(b.row.SyncState), syncStateRank(a.row.SyncState)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.row.FlushLSN, a.row.FlushLSN); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	maxLSN := o.PG.WALPosition()
	if len(cands) > 1 {
		maxLSN = 0
		for _, c := range cands {
			maxLSN = max(maxLSN, c.row.FlushLSN)
		}
	}
	var out []string
	for _, c := range cands {
		if lag := o.Config.MaximumLagOnSyncnode; lag > 0 && maxLSN > c.row.FlushLSN && int64(maxLSN-c.row.FlushLSN) > lag {
			continue
		}
		out = append(out, c.name)
	}
	return out
}

// FormatSSN is the synchronous_standby_names value for the picked standbys.
// 3.0.2: names in the order picked, quoted only when not a plain identifier,
// several as `N (a,b)`; strict with none `*`. 4.x: the same, names sorted;
// strict with none the last published standbys, else SyncPlaceholder.
// Non-strict with none: "" (asynchronous).
func FormatSSN(picked []string, strict, compat4 bool, lastSync []string) string {
	names := slices.Clone(picked)
	if len(names) == 0 {
		switch {
		case !strict:
			return ""
		case !compat4:
			return "*"
		case len(lastSync) > 0:
			names = slices.Clone(lastSync)
		default:
			names = []string{SyncPlaceholder}
		}
	}
	if compat4 {
		slices.Sort(names)
	}
	for i, n := range names {
		names[i] = quoteSSNName(n)
	}
	if len(names) == 1 {
		return names[0]
	}
	return fmt.Sprintf("%d (%s)", len(names), strings.Join(names, ","))
}

var plainIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9$]*$`)

// quoteSSNName quotes a standby name unless it is a plain identifier (Patroni's sync.quote_ident).
func quoteSSNName(n string) string {
	if plainIdent.MatchString(n) {
		return n
	}
	return `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
}

// parseSSNMembers returns the standby names listed in a synchronous_standby_names
// value ("*" included as is); an unparsable value lists none.
func parseSSNMembers(v string) []string { return splitSSN(v).Names }

// splitSSN reads a synchronous_standby_names value as written: its names ("*"
// included as is; none when unparsable) and the header's number and form
// ("n (…)", "FIRST n (…)", "ANY n (…)"; a bare list is FIRST 1). Unknown is
// never set: parseSSN decides that.
func splitSSN(v string) ssnRule {
	toks, ok := ssnTokens(v)
	if !ok || len(toks) == 0 {
		return ssnRule{}
	}
	upper := func(i int) string {
		if i < len(toks) && !toks[i].quoted {
			return strings.ToUpper(toks[i].text)
		}
		return ""
	}
	num := func(i int) (int, bool) {
		if i >= len(toks) || toks[i].quoted {
			return 0, false
		}
		n, err := strconv.Atoi(toks[i].text)
		return n, err == nil
	}
	r := ssnRule{Num: 1}
	list := toks
	if n, ok := num(1); ok && (upper(0) == "FIRST" || upper(0) == "ANY") && upper(2) == "(" && upper(len(toks)-1) == ")" {
		list, r.Num, r.Any = toks[3:len(toks)-1], n, upper(0) == "ANY"
	} else if n, ok := num(0); ok && upper(1) == "(" && upper(len(toks)-1) == ")" {
		list, r.Num = toks[2:len(toks)-1], n
	}
	for i, t := range list {
		if i%2 == 1 {
			if t.quoted || t.text != "," || i == len(list)-1 {
				return ssnRule{}
			}
			continue
		}
		if !t.quoted && (t.text == "," || t.text == "(" || t.text == ")") {
			return ssnRule{}
		}
		r.Names = append(r.Names, t.text)
	}
	return r
}

type ssnToken struct {
	text   string
	quoted bool
}

// ssnTokens splits a synchronous_standby_names value into identifiers, quoted
// names, numbers, "*", commas and parentheses.
func ssnTokens(v string) ([]ssnToken, bool) {
	var toks []ssnToken
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == ',' || c == '(' || c == ')' || c == '*':
			toks = append(toks, ssnToken{text: string(c)})
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(v); j++ {
				if v[j] == '"' {
					if j+1 < len(v) && v[j+1] == '"' {
						b.WriteByte('"')
						j++
						continue
					}
					break
				}
				b.WriteByte(v[j])
			}
			if j >= len(v) {
				return nil, false
			}
			toks = append(toks, ssnToken{text: b.String(), quoted: true})
			i = j + 1
		default:
			j := i
			for j < len(v) && !strings.ContainsRune(" \t\n\r,()*\"", rune(v[j])) {
				j++
			}
			toks = append(toks, ssnToken{text: v[i:j]})
			i = j
		}
	}
	return toks, true
}

func syncStateRank(s string) int {
	switch s {
	case "sync":
		return 3
	case "quorum":
		return 2
	case "potential":
		return 1
	}
	return 0
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// memberFold finds the member whose name matches name case-insensitively (application_name).
func memberFold(o Observation, name string) (cluster.Member, bool) {
	if m, ok := o.Member(name); ok {
		return m, true
	}
	for n, m := range o.View.Members {
		if strings.EqualFold(n, name) {
			m.Name = n
			return m, true
		}
	}
	return cluster.Member{}, false
}

// replicationRow is name's streaming row of pg_stat_replication.
func replicationRow(o Observation, name string) (cluster.ReplicationRow, bool) {
	for _, r := range o.PG.Replication {
		if strings.EqualFold(r.ApplicationName, name) && r.State == "streaming" {
			return r, true
		}
	}
	return cluster.ReplicationRow{}, false
}

func containsFold(list []string, name string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.EqualFold(s, name) })
}

// sameFold reports equal sets of names, case-insensitively.
func sameFold(a, b []string) bool {
	for _, n := range a {
		if !containsFold(b, n) {
			return false
		}
	}
	for _, n := range b {
		if !containsFold(a, n) {
			return false
		}
	}
	return true
}
