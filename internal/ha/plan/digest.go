package plan

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// ViewDigest summarises what in the view can change a decision. A Changed
// event whose view has the same digest as the last cycle's does not run a
// cycle: the leader's own status writes would otherwise wake it after every
// cycle (a busy loop under write load). Non-leaders still wake on status changes.
func ViewDigest(v cluster.View, me string, now time.Time, ttl time.Duration) string {
	var b strings.Builder
	leader := ""
	if v.Leader != nil {
		leader = v.Leader.Name
		fmt.Fprintf(&b, "L%s/%d|", v.Leader.Name, v.Leader.LeaseID)
	}
	if v.Initialize != nil {
		fmt.Fprintf(&b, "I%s|", *v.Initialize)
	}
	fmt.Fprintf(&b, "C%d|", v.ConfigRev)
	if f := v.Failover; !f.Empty() {
		fmt.Fprintf(&b, "F%s/%s/%s|", f.Leader, f.Member, f.ScheduledAt)
	}
	if s := v.Sync; s != nil {
		fmt.Fprintf(&b, "S%s/%v|", s.Leader, s.SyncStandby != nil && *s.SyncStandby != "")
		if s.SyncStandby != nil {
			b.WriteString(*s.SyncStandby)
		}
	}
	fmt.Fprintf(&b, "H%d|", v.Timeline())
	if v.Status != nil && leader != me {
		fmt.Fprintf(&b, "O%d|", v.Status.Optime)
	}
	names := make([]string, 0, len(v.Members))
	for name := range v.Members {
		names = append(names, name)
	}
	sort.Strings(names)
	b.WriteString("M")
	for _, name := range names {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(MemberWakeFields(v.Members[name]))
		b.WriteByte(',')
	}
	fmt.Fprintf(&b, "|FS%d|V%v", len(v.Failsafe), v.Valid(now, ttl))
	return b.String()
}

// MemberWakeFields is the part of a member key a waiting decision looks at:
// role, state, whether it can be cloned from (conn_url), timeline and tags.
// A member key change that keeps these (an xlog_location update on a busy
// cluster) wakes no one; one that changes them (the leader's postgres turned
// running, an old primary rejoined as a replica) wakes every waiting node at
// once instead of at its next loop_wait. The Store's watch uses it to decide
// which member changes fire Changed, and viewDigest to decide whether they
// run a cycle.
func MemberWakeFields(m cluster.Member) string {
	conn := "-"
	if m.ConnURL != "" {
		conn = "c"
	}
	tags := ""
	if len(m.Tags) > 0 {
		tags = fmt.Sprint(m.Tags) // fmt prints maps sorted by key
	}
	return fmt.Sprintf("%s/%s/%s/%d/%s", m.Role, m.State, conn, m.Timeline, tags)
}
