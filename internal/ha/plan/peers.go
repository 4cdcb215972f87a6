package plan

import "github.com/pgnoded/pgnoded/internal/cluster"

// PeerStatus is what a peer's GET /patroni told us during a leader race.
type PeerStatus struct {
	Name             string
	Reachable        bool
	Role             string // "master"/"primary" means "primary still alive"
	WALPosition      cluster.LSN
	Timeline         int
	NoFailover       bool
	FailoverPriority int
	WatchdogFailed   bool
}
