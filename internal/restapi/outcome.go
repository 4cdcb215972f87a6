package restapi

import (
	"errors"
	"net/http"

	"github.com/pgnoded/pgnoded/internal/cluster"
)

// The HA core reports an operator request's outcome as a cluster.OpResult or
// a *cluster.OpError (internal/cluster/op.go); this file alone turns them into
// Patroni's HTTP statuses. The reply text is the core's, unchanged.

// opErrorStatus is Patroni's status for a request that was not carried out,
// by kind. Two endpoints answer differently and override it: PUT /config
// (a failed write is 502, as Patroni's do_PUT_config) and POST /failsafe
// (anything but "Accepted" is 500, as Patroni's do_POST_failsafe).
var opErrorStatus = map[cluster.OpErrorKind]int{
	cluster.OpInternal:     http.StatusInternalServerError,
	cluster.OpBadRequest:   http.StatusBadRequest,
	cluster.OpNotFound:     http.StatusNotFound,
	cluster.OpConflict:     http.StatusConflict,
	cluster.OpInfeasible:   http.StatusPreconditionFailed,
	cluster.OpUnavailable:  http.StatusServiceUnavailable,
	cluster.OpFailed:       http.StatusServiceUnavailable,
	cluster.OpStoreFailed:  http.StatusServiceUnavailable,
	cluster.OpShuttingDown: http.StatusServiceUnavailable,
}

// resultStatus is the status of a request carried out (200) or accepted for later (202).
func resultStatus(res cluster.OpResult) int {
	if res.Scheduled {
		return http.StatusAccepted
	}
	return http.StatusOK
}

// errorStatus is the status and text for err: an *OpError by its kind, any
// other error (a fault of an Actions implementation) as 500 with its message.
func errorStatus(err error) (int, string) {
	var oe *cluster.OpError
	if !errors.As(err, &oe) {
		return http.StatusInternalServerError, err.Error()
	}
	code, ok := opErrorStatus[oe.Kind]
	if !ok {
		code = http.StatusInternalServerError
	}
	return code, oe.Text
}

// outcomeStatus is the status and reply text of an operator request's outcome.
func outcomeStatus(res cluster.OpResult, err error) (int, string) {
	if err != nil {
		return errorStatus(err)
	}
	return resultStatus(res), res.Text
}
