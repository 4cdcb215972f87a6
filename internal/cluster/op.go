package cluster

import "fmt"

// The outcome of an operator request (switchover, failover, restart,
// reinitialize, a config change, a failsafe probe) as the HA core reports it:
// an OpResult when it was carried out or accepted, an *OpError when it was
// not. Both carry Patroni's reply text; the REST API alone turns them into
// HTTP statuses (internal/restapi/status.go), so the core speaks no transport.

// OpResult is a request that was carried out (Scheduled false) or accepted to
// be carried out later (Scheduled true).
type OpResult struct {
	Scheduled bool   // accepted for later (a scheduled switchover or restart)
	Text      string // Patroni's reply text
}

// Done is an OpResult for a request carried out now.
func Done(text string) OpResult { return OpResult{Text: text} }

// Scheduled is an OpResult for a request accepted to be carried out later.
func Scheduled(text string) OpResult { return OpResult{Scheduled: true, Text: text} }

// OpErrorKind says why an operator request was not carried out.
type OpErrorKind int

// Error kinds. The zero value is OpInternal, so an unset kind never passes for a refusal.
const (
	OpInternal     OpErrorKind = iota // a fault of pgnoded itself
	OpBadRequest                      // the request's content is refused (a refused config key, an unencodable document)
	OpNotFound                        // there is nothing to cancel
	OpConflict                        // a concurrent change won, one is already scheduled, or this node's role forbids it
	OpInfeasible                      // the cluster's state rules it out (no candidate for a switchover)
	OpUnavailable                     // it cannot be done now (no leader, another action runs, outcome unknown)
	OpFailed                          // it was attempted and failed
	OpStoreFailed                     // a DCS write it needs failed
	OpShuttingDown                    // pgnoded is stopping
)

var opErrorKindNames = [...]string{
	OpInternal: "internal", OpBadRequest: "bad request", OpNotFound: "not found", OpConflict: "conflict",
	OpInfeasible: "infeasible", OpUnavailable: "unavailable", OpFailed: "failed", OpStoreFailed: "store failed",
	OpShuttingDown: "shutting down",
}

// OpErrorKinds lists every kind, for tables that must cover them all.
var OpErrorKinds = []OpErrorKind{OpInternal, OpBadRequest, OpNotFound, OpConflict, OpInfeasible,
	OpUnavailable, OpFailed, OpStoreFailed, OpShuttingDown}

// String names the kind.
func (k OpErrorKind) String() string {
	if k >= 0 && int(k) < len(opErrorKindNames) {
		return opErrorKindNames[k]
	}
	return fmt.Sprintf("OpErrorKind(%d)", int(k))
}

// OpError is a request that was not carried out: why (Kind) and Patroni's reply text.
type OpError struct {
	Kind OpErrorKind
	Text string
}

// Error returns the reply text.
func (e *OpError) Error() string { return e.Text }

// Refuse returns an *OpError of kind k with Patroni's reply text.
func Refuse(k OpErrorKind, text string) error { return &OpError{Kind: k, Text: text} }

// Refusef is Refuse with the text formatted from format and args.
func Refusef(k OpErrorKind, format string, args ...any) error {
	return &OpError{Kind: k, Text: fmt.Sprintf(format, args...)}
}
