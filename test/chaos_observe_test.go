//go:build integration

package test

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// obsState is what one observation says about a node.
type obsState int8

const (
	obsUnknown  obsState = iota // no answer, or an error that says nothing
	obsReadOnly                 // in recovery, a read-only error, a 503
	obsWritable                 // not in recovery, an acknowledged insert, a 200
)

// observation is one look at one node: the node was in State at some instant
// between Sent (the request left) and Recv (the answer arrived).
type observation struct {
	Node       string
	Sent, Recv time.Time
	State      obsState
	Source     string // "poll", "writer", "vip", "probe"
}

// ack is one acknowledged insert: the row Id committed on Node.
type ack struct {
	ID         int64
	Node       string
	Sent, Recv time.Time
	Source     string
}

// leaderSample is one read of the leader key (OK false: etcd did not answer).
type leaderSample struct {
	At    time.Time
	Value string
	OK    bool
}

// recorder collects everything the workload sees; safe for concurrent use.
type recorder struct {
	mu      sync.Mutex
	sql     []observation // pg_is_in_recovery() samples, inserts
	rest    []observation // OPTIONS /primary
	acks    []ack
	leaders []leaderSample
}

func (r *recorder) observeSQL(o observation) {
	r.mu.Lock()
	r.sql = append(r.sql, o)
	r.mu.Unlock()
}

func (r *recorder) observeREST(o observation) {
	r.mu.Lock()
	r.rest = append(r.rest, o)
	r.mu.Unlock()
}

func (r *recorder) ack(a ack) {
	r.mu.Lock()
	r.acks = append(r.acks, a)
	r.mu.Unlock()
}

func (r *recorder) leader(s leaderSample) {
	r.mu.Lock()
	r.leaders = append(r.leaders, s)
	r.mu.Unlock()
}

// snapshot copies what was recorded so far.
func (r *recorder) snapshot() (sql, rest []observation, acks []ack, leaders []leaderSample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]observation(nil), r.sql...), append([]observation(nil), r.rest...),
		append([]ack(nil), r.acks...), append([]leaderSample(nil), r.leaders...)
}

// writableRun is a maximal series of writable observations of one node with
// no other observation of that node (by arrival time) in between.
type writableRun struct {
	Node                string
	FirstSent, FirstRec time.Time
	LastSent, LastRecv  time.Time
	N                   int
}

// sure is the part of the run during which the node was certainly writable
// (assuming it did not flip and flip back between two looks): from the arrival
// of the first answer to the sending of the last request. ok is false when
// that span is empty (a single look, or looks that overlapped in flight).
func (r writableRun) sure() (from, to time.Time, ok bool) {
	if r.N < 2 || r.LastSent.Before(r.FirstRec) {
		return time.Time{}, time.Time{}, false
	}
	return r.FirstRec, r.LastSent, true
}

// loose is the widest span the run could cover.
func (r writableRun) loose() (from, to time.Time) { return r.FirstSent, r.LastRecv }

// writableRuns groups observations per node (ordered by arrival) into runs.
func writableRuns(obs []observation) map[string][]writableRun {
	byNode := map[string][]observation{}
	for _, o := range obs {
		byNode[o.Node] = append(byNode[o.Node], o)
	}
	out := map[string][]writableRun{}
	for node, list := range byNode {
		sort.SliceStable(list, func(i, j int) bool { return list[i].Recv.Before(list[j].Recv) })
		var cur *writableRun
		for _, o := range list {
			if o.State != obsWritable {
				if cur != nil {
					out[node] = append(out[node], *cur)
					cur = nil
				}
				continue
			}
			if cur == nil {
				cur = &writableRun{Node: node, FirstSent: o.Sent, FirstRec: o.Recv}
			}
			cur.LastSent, cur.LastRecv = o.Sent, o.Recv
			if o.Sent.Before(cur.FirstSent) {
				cur.FirstSent = o.Sent
			}
			cur.N++
		}
		if cur != nil {
			out[node] = append(out[node], *cur)
		}
	}
	return out
}

// dualPeriod is a time during which two nodes were both writable.
type dualPeriod struct {
	A, B     string
	From, To time.Time
}

func (d dualPeriod) String() string {
	return fmt.Sprintf("%s and %s both writable from %s for %v", d.A, d.B, d.From.Format("15:04:05.000"),
		d.To.Sub(d.From).Round(time.Millisecond))
}

// dualPeriods returns the overlaps between the runs of different nodes:
// certain ones (sure spans overlap) and possible ones (loose spans overlap,
// within the measurement's uncertainty, certain ones excluded).
func dualPeriods(runs map[string][]writableRun) (certain, possible []dualPeriod) {
	var nodes []string
	for n := range runs {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for i := range nodes {
		for j := i + 1; j < len(nodes); j++ {
			for _, a := range runs[nodes[i]] {
				for _, b := range runs[nodes[j]] {
					af, at, aok := a.sure()
					bf, bt, bok := b.sure()
					if aok && bok {
						if from, to := later(af, bf), earlier(at, bt); !to.Before(from) {
							certain = append(certain, dualPeriod{A: a.Node, B: b.Node, From: from, To: to})
							continue
						}
					}
					af, at = a.loose()
					bf, bt = b.loose()
					if from, to := later(af, bf), earlier(at, bt); !to.Before(from) {
						possible = append(possible, dualPeriod{A: a.Node, B: b.Node, From: from, To: to})
					}
				}
			}
		}
	}
	return certain, possible
}

// writableAfter returns the observations of node that show it writable in a
// request sent at or after t (certain evidence it was writable after t).
func writableAfter(obs []observation, node string, t time.Time) []observation {
	var out []observation
	for _, o := range obs {
		if o.Node == node && o.State == obsWritable && !o.Sent.Before(t) {
			out = append(out, o)
		}
	}
	return out
}

// gap is a period between two consecutive acknowledgements of one writer.
type gap struct{ From, To time.Time }

func (g gap) Len() time.Duration { return g.To.Sub(g.From) }

// ackGaps returns the gaps longer than min between consecutive acks of source
// (ordered by arrival), including the span from start to the first ack and
// from the last ack to end.
func ackGaps(acks []ack, source string, start, end time.Time, min time.Duration) []gap {
	var times []time.Time
	for _, a := range acks {
		if a.Source == source {
			times = append(times, a.Recv)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	prev := start
	var out []gap
	for _, at := range append(times, end) {
		if at.Before(prev) {
			continue
		}
		if at.Sub(prev) > min {
			out = append(out, gap{From: prev, To: at})
		}
		prev = at
	}
	return out
}

// longestGap is the longest of gaps (zero when none).
func longestGap(gaps []gap) gap {
	var g gap
	for _, x := range gaps {
		if x.Len() > g.Len() {
			g = x
		}
	}
	return g
}

// leaderChanges lists the leader key's distinct values in order, with "-" for
// no key and "?" for etcd not answering, each with when it was first seen.
func leaderChanges(samples []leaderSample) []string {
	var out []string
	last := "\x00"
	for _, s := range samples {
		v := s.Value
		switch {
		case !s.OK:
			v = "?"
		case v == "":
			v = "-"
		}
		if v != last {
			out = append(out, fmt.Sprintf("%s@%s", v, s.At.Format("15:04:05.0")))
			last = v
		}
	}
	return out
}

// noPrimaryGap is the longest period in [start, end] during which no node's
// latest OPTIONS /primary answer was 200 (HAProxy's view of the write outage).
func noPrimaryGap(rest []observation, start, end time.Time) gap {
	list := append([]observation(nil), rest...)
	sort.SliceStable(list, func(i, j int) bool { return list[i].Recv.Before(list[j].Recv) })
	state := map[string]obsState{}
	any200 := func() bool {
		for _, s := range state {
			if s == obsWritable {
				return true
			}
		}
		return false
	}
	var longest gap
	var since time.Time // start of the current period without a 200 (zero: there is a 200)
	for _, o := range list {
		if o.Recv.Before(start) || o.Recv.After(end) {
			continue
		}
		was := any200()
		state[o.Node] = o.State
		switch now := any200(); {
		case was && !now:
			since = o.Recv
		case !was && now && !since.IsZero():
			if g := (gap{From: since, To: o.Recv}); g.Len() > longest.Len() {
				longest = g
			}
			since = time.Time{}
		}
	}
	if !since.IsZero() {
		if g := (gap{From: since, To: end}); g.Len() > longest.Len() {
			longest = g
		}
	}
	return longest
}
