package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// Statuses the HTTP layer adds to the state machine's (fsm.Status*),
// declared in package wire. They appear as "status" in error bodies.
const (
	StatusUnauthorized     = wire.StatusUnauthorized
	StatusNotLeader        = wire.StatusNotLeader
	StatusNoLeader         = wire.StatusNoLeader
	StatusStaleRead        = wire.StatusStaleRead
	StatusUnknownOutcome   = wire.StatusUnknownOutcome
	StatusShuttingDown     = wire.StatusShuttingDown
	StatusInternalError    = wire.StatusInternalError
	StatusNotReady         = wire.StatusNotReady
	StatusNoCluster        = wire.StatusNoCluster
	StatusMethodNotAllowed = wire.StatusMethodNotAllowed
	StatusTimeout          = wire.StatusTimeout
)

// Locations of an ErrorDetail (the token server's vocabulary).
const (
	LocationBody        = wire.LocationBody
	LocationPath        = wire.LocationPath
	LocationQuerystring = wire.LocationQuerystring
	LocationHeader      = wire.LocationHeader
)

// ErrorDetail and ErrorBody are the error body of every non-2xx answer,
// declared in package wire.
type (
	ErrorDetail = wire.ErrorDetail
	ErrorBody   = wire.ErrorBody
)

// httpStatusForFSM maps a state-machine status to an HTTP code. The same
// status means different things on different routes: a rejected client
// state is an authentication failure on login (the token server's 401) but
// a conflict with stored state on PATCH user.
func httpStatusForFSM(status string, routeName string) (int, bool) {
	switch status {
	case fsm.StatusNotFound:
		return http.StatusNotFound, true
	case fsm.StatusConflict:
		return http.StatusConflict, true
	case fsm.StatusBadRequest:
		return http.StatusBadRequest, true
	case fsm.StatusNoNodeAvailable:
		return http.StatusServiceUnavailable, true
	case fsm.StatusInvalidClientState:
		if routeName == routeLogin || routeName == routeToken {
			return http.StatusUnauthorized, true
		}
		return http.StatusConflict, true
	case fsm.StatusInvalidGeneration, fsm.StatusInvalidKeysChangedAt, StatusUnauthorized:
		return http.StatusUnauthorized, true
	case fsm.StatusNewUsersDisabled:
		return http.StatusForbidden, true
	}
	return http.StatusInternalServerError, false
}

// storeFailure classifies an error from Store/Cluster that is not a
// state-machine error. internal reports whether it is unexpected (and so
// must be logged).
type storeFailure struct {
	code     int
	status   string
	detail   ErrorDetail
	internal bool
}

func classifyStoreError(err error, write bool) storeFailure {
	leader := func(desc string) ErrorDetail {
		return ErrorDetail{Location: LocationHeader, Name: "X-Wimms-Member", Description: desc}
	}
	switch {
	case errors.Is(err, store.ErrNotLeader):
		return storeFailure{code: http.StatusServiceUnavailable, status: StatusNotLeader,
			detail: leader("this member is not the leader; retry against the leader")}
	case errors.Is(err, store.ErrNoLeader):
		return storeFailure{code: http.StatusServiceUnavailable, status: StatusNoLeader,
			detail: leader("no leader is known; retry shortly")}
	case errors.Is(err, store.ErrStaleRead):
		return storeFailure{code: http.StatusServiceUnavailable, status: StatusStaleRead,
			detail: ErrorDetail{Location: LocationQuerystring, Name: "max_staleness",
				Description: "this member has not heard from a leader within max_staleness"}}
	case errors.Is(err, store.ErrUnknownOutcome):
		return storeFailure{code: http.StatusGatewayTimeout, status: StatusUnknownOutcome,
			detail: ErrorDetail{Location: LocationHeader, Name: "Idempotency-Key",
				Description: "the write may or may not have been applied; retry with the same Idempotency-Key"}}
	case errors.Is(err, store.ErrShutdown):
		return storeFailure{code: http.StatusServiceUnavailable, status: StatusShuttingDown,
			detail: leader("this member is shutting down; use another member")}
	case errors.Is(err, store.ErrRefused):
		return storeFailure{code: http.StatusConflict, status: fsm.StatusConflict,
			detail: ErrorDetail{Location: LocationPath, Name: "id", Description: err.Error()}}
	case errors.Is(err, store.ErrReplaying):
		return storeFailure{code: http.StatusServiceUnavailable, status: StatusNotReady,
			detail: ErrorDetail{Location: LocationQuerystring, Name: "consistency",
				Description: "this member is still replaying the log it had at start; retry shortly or ask another member"}}
	case errors.Is(err, store.ErrMemberNotFound):
		return storeFailure{code: http.StatusNotFound, status: fsm.StatusNotFound,
			detail: ErrorDetail{Location: LocationPath, Name: "id", Description: "no such cluster member"}}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		if write {
			// A write that timed out may still commit: never report it as
			// failed, or a client would retry it without a key.
			return storeFailure{code: http.StatusGatewayTimeout, status: StatusUnknownOutcome,
				detail: ErrorDetail{Location: LocationHeader, Name: "Idempotency-Key",
					Description: "the write may or may not have been applied; retry with the same Idempotency-Key"}}
		}
		return storeFailure{code: http.StatusServiceUnavailable, status: StatusTimeout,
			detail: leader("the read did not complete in time")}
	}
	return storeFailure{code: http.StatusInternalServerError, status: StatusInternalError,
		detail: ErrorDetail{Location: LocationBody, Name: "request", Description: "internal error"}, internal: true}
}
