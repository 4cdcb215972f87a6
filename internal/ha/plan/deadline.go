package plan

import (
	"time"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// MinFenceMargin is the smallest gap kept between the demote deadline and the
// end of the lease, whatever the timing settings.
const MinFenceMargin = 500 * time.Millisecond

// FenceMargin is how long before its lease can expire a primary must already
// be read-only or stopped: max(500ms, min(retry_timeout, ttl/3)).
func FenceMargin(cfg cluster.DynamicConfig) time.Duration {
	return max(MinFenceMargin, min(cfg.RetryTimeoutDuration(), cfg.TTLDuration()/3))
}

// DemoteDeadline is the instant by which a primary holding the leader key until
// validUntil must be read-only or stopped; the fence guard is armed with it.
// A zero validUntil (no lease) gives the zero time, i.e. "already passed".
func DemoteDeadline(validUntil time.Time, cfg cluster.DynamicConfig) time.Time {
	if validUntil.IsZero() {
		return time.Time{}
	}
	return validUntil.Add(-FenceMargin(cfg))
}

// DemoteStart is when the loop begins a demotion so that a fast stop can finish
// by DemoteDeadline: half a margin before it.
func DemoteStart(validUntil time.Time, cfg cluster.DynamicConfig) time.Time {
	if validUntil.IsZero() {
		return time.Time{}
	}
	return DemoteDeadline(validUntil, cfg).Add(-FenceMargin(cfg) / 2)
}

// KeepAliveInterval is how often the Store should renew the lease so that one
// failed keepalive never reaches DemoteStart: a third of the time from a
// renewal to DemoteStart, (ttl - 1.5*FenceMargin)/3, at least 100ms.
// ttl 30/retry 10 gives 5s, ttl 10/retry 4 gives 1.67s, ttl 3/retry 1 gives 0.5s.
func KeepAliveInterval(cfg cluster.DynamicConfig) time.Duration {
	return max((cfg.TTLDuration()-FenceMargin(cfg)*3/2)/3, 100*time.Millisecond)
}
