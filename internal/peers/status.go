package peers

import (
	"encoding/json"
	"fmt"

	"github.com/pgnoded/pgnoded/internal/cluster"
	"github.com/pgnoded/pgnoded/internal/ha/plan"
)

// statusDoc is the part of Patroni's /patroni document the leader race reads.
type statusDoc struct {
	Role     string `json:"role"`
	Timeline int    `json:"timeline"`
	XLog     *struct {
		Location *int64 `json:"location"`
		Received *int64 `json:"received_location"`
		Replayed *int64 `json:"replayed_location"`
	} `json:"xlog"`
	Tags           map[string]any `json:"tags"`
	WatchdogFailed bool           `json:"watchdog_failed"`
}

// ParseStatus reads a /patroni document (Patroni's field names): a primary
// reports xlog.location, a replica received/replayed_location; a node that
// reports only xlog.location counts as a primary whatever its role says. A
// document without xlog (postgres not answering) tells nothing about the
// node's data: like Patroni, the race counts it as unreachable, so an old
// primary whose postgres is down never holds a failover back by its role.
func ParseStatus(name string, body []byte) (plan.PeerStatus, error) {
	var d statusDoc
	if err := json.Unmarshal(body, &d); err != nil {
		return plan.PeerStatus{Name: name}, fmt.Errorf("peer %s: bad status document: %w", name, err)
	}
	if d.XLog == nil {
		return plan.PeerStatus{Name: name, Role: d.Role}, nil
	}
	tags := plan.ParseTags(d.Tags)
	st := plan.PeerStatus{Name: name, Reachable: true, Role: d.Role, Timeline: d.Timeline,
		NoFailover: !tags.CanFailover(), FailoverPriority: tags.FailoverPriority, WatchdogFailed: d.WatchdogFailed}
	pos := func(p *int64) cluster.LSN {
		if p == nil || *p < 0 {
			return 0
		}
		return cluster.LSN(*p)
	}
	if d.XLog.Received != nil || d.XLog.Replayed != nil {
		st.WALPosition = max(pos(d.XLog.Received), pos(d.XLog.Replayed))
	} else {
		st.WALPosition = pos(d.XLog.Location)
		if st.WALPosition > 0 && !plan.IsPrimaryRole(st.Role) {
			st.Role = "primary"
		}
	}
	return st, nil
}
