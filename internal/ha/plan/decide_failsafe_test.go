package plan

import (
	"testing"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// dcsDown is pg1 as primary after the DCS went away: the lease ran out (t0+30s)
// and the view is stale.
func dcsDown(o *Observation) {
	o.Now = t0.Add(40 * time.Second)
	o.DCSOK = false
	o.Config.FailsafeMode = true
}

func TestDecideFailsafe(t *testing.T) {
	confirmed := func(until time.Duration) fx {
		return func(o *Observation) { o.FailsafeConfirmed, o.FailsafeUntil = true, t0.Add(until) }
	}
	runDecideCases(t, []decideCase{
		{"DCS lost, every member confirmed: the primary keeps running", newObs(iLead, dcsDown, confirmed(60*time.Second)),
			want{action: ActionNone, reason: "failsafe", msg: "failsafe mode is enabled"}},
		{"DCS lost, a confirmation missing: demote offline", newObs(iLead, dcsDown),
			want{action: ActionDemote, demote: DemoteOffline, reason: "lease_deadline"}},
		{"DCS lost, confirmation too old: fenced before it could expire",
			newObs(iLead, dcsDown, confirmed(45*time.Second)),
			want{action: ActionDemote, demote: DemoteOffline, stop: cluster.StopImmediate, reason: "lease_deadline"}},
		{"DCS lost, confirmation nearing its end: fast demote at DemoteStart",
			newObs(iLead, dcsDown, confirmed(55*time.Second)),
			want{action: ActionDemote, demote: DemoteOffline, stop: cluster.StopFast, reason: "lease_deadline"}},
		{"DCS lost on a replica: it never promotes, even asked by a failsafe primary",
			newObs(leader(""), dcsDown, func(o *Observation) { o.FailsafeLeader = "pg2" }),
			want{action: ActionNone, reason: "dcs_error"}},
		{"no leader key but a failsafe primary asked us: no race",
			newObs(leader(""), func(o *Observation) { o.FailsafeLeader = "pg2" }),
			want{action: ActionNone, reason: "failsafe_leader"}},
		{"paused primary without DCS does nothing", newObs(iLead, dcsDown, paused),
			want{action: ActionNone, reason: "dcs_error"}},
	})
}
