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
		b.WriteString(v.Members[name].WakeFields())
		b.WriteByte(',')
	}
	fmt.Fprintf(&b, "|FS%d|V%v", len(v.Failsafe), v.Valid(now, ttl))
	return b.String()
}
