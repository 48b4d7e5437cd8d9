package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
)

// Kind is what to do after an attempt.
type Kind int

// The kinds of outcome.
const (
	// Done: the change is in effect (or was already).
	Done Kind = iota
	// Throttled: the tenant's budget is spent; wait for it and try again
	// without spending an attempt.
	Throttled
	// Retry: a failure that may pass (5xx, 408, network, timeout); try again
	// with back-off, spending an attempt, and dead-letter when attempts run
	// out.
	Retry
	// Dead: the change cannot succeed as given; dead-letter it now.
	Dead
	// Interrupted: the worker is stopping; put the change back without
	// spending an attempt.
	Interrupted
)

func (k Kind) String() string {
	return [...]string{"done", "throttled", "retry", "dead", "interrupted"}[k]
}

// Reason is the short cause of an outcome. Its string is stable: it appears
// in dead letters, logs and as a metric label.
type Reason string

// The reasons.
const (
	ReasonApplied    Reason = "applied"
	ReasonSuperseded Reason = "superseded"
	// ReasonUnchanged: the worker read the tenant and found the change in
	// effect already; nothing was written.
	ReasonUnchanged        Reason = "unchanged"
	ReasonRateLimited      Reason = "rate_limited"
	ReasonServerError      Reason = "server_error"
	ReasonTimeout          Reason = "timeout"
	ReasonNetwork          Reason = "network_error"
	ReasonTokenUnavailable Reason = "token_unavailable"
	ReasonStopping         Reason = "stopping"
	ReasonLimiterDown      Reason = "limiter_unavailable"
	ReasonBadRequest       Reason = "bad_request"
	ReasonUnauthorized     Reason = "unauthorized"
	ReasonForbidden        Reason = "forbidden"
	ReasonUnknownOrg       Reason = "unknown_organization"
	ReasonNotFound         Reason = "not_found"
	ReasonConflict         Reason = "conflict"
	ReasonRejected         Reason = "rejected"
	ReasonTokenRefused     Reason = "token_refused"
	ReasonExhausted        Reason = "retries_exhausted"
	ReasonBadPayload       Reason = "invalid_payload"
	ReasonCrashedWorker    Reason = "crashed_worker"
	ReasonError            Reason = "error"
	// ReasonUnknownConnection: a create named a connection the tenant does
	// not have (the newer endpoints tell it apart).
	ReasonUnknownConnection Reason = "unknown_connection"
	// ReasonUnknownName: an org_name or connection_name names nothing on
	// the tenant.
	ReasonUnknownName Reason = "unknown_name"
	// ReasonNeedsConnectionsAPI: a change only the Organization connections
	// API can make, on a tenant in legacy mode.
	ReasonNeedsConnectionsAPI Reason = "needs_connections_api"
	// ReasonNoConnectionsAPI: the tenant answered that it does not have the
	// Organization connections endpoints (a route's 404) in connections
	// mode.
	ReasonNoConnectionsAPI Reason = "no_connections_api"
	// ReasonModeUndecided: a change needing the Organization connections
	// API while auto has not decided the tenant's mode; retried.
	ReasonModeUndecided Reason = "api_mode_undecided"
)

// DeadReasons are the reasons a change can be dead-lettered for.
var DeadReasons = []Reason{
	ReasonBadRequest, ReasonUnauthorized, ReasonForbidden, ReasonUnknownOrg, ReasonNotFound,
	ReasonConflict, ReasonRejected, ReasonTokenRefused, ReasonExhausted, ReasonBadPayload,
	ReasonCrashedWorker, ReasonUnknownConnection, ReasonUnknownName, ReasonNeedsConnectionsAPI, ReasonNoConnectionsAPI,
}

// Outcome is the classification of one attempt's error.
type Outcome struct {
	Kind      Kind
	Reason    Reason
	Status    int    // HTTP status, when an answer came
	ErrorCode string // Auth0's errorCode, when given
	Message   string // Auth0's message or the error text
}

// errUnknownOrg marks a 404 that a follow-up read showed to be an unknown
// organization.
type errUnknownOrg struct{ err *mgmt.APIError }

func (e *errUnknownOrg) Error() string { return "unknown organization: " + e.err.Error() }
func (e *errUnknownOrg) Unwrap() error { return e.err }

// Classify decides what an attempt's error means. It is the only place that
// maps errors to retry, dead letter and the rest; it looks at status codes
// and error types, never at message text.
//
//	nil                                  → Done
//	worker stopping, context cancelled,
//	rate limiter unreachable             → Interrupted
//	429                                  → Throttled
//	408, 5xx, no answer, timeout         → Retry
//	400, 401 (after refreshing the token, twice at most),
//	403, 404, 409 and other 4xx          → Dead
//	token endpoint 429                   → Throttled
//	token endpoint 4xx                   → Dead; token endpoint 5xx or no answer → Retry
//	an id no URL path may carry          → Dead (invalid_payload), no request sent
//	a name the tenant does not have      → Dead (unknown_name)
//	a change needing the newer endpoints
//	  on a tenant in legacy mode         → Dead (needs_connections_api)
//	  while auto has not decided         → Retry (api_mode_undecided)
//	a 404 of the newer endpoints         → Dead, by its cause: unknown_organization,
//	                                       unknown_connection, no_connections_api
//	                                       (the tenant lacks them), else not_found
func Classify(err error) Outcome {
	if err == nil {
		return Outcome{Kind: Done, Reason: ReasonApplied}
	}
	var (
		unknownOrg  *errUnknownOrg
		api         *mgmt.APIError
		network     *mgmt.NetworkError
		token       *mgmt.TokenError
		badID       *mgmt.InvalidIDError
		unknownName *errUnknownName
		needsNewer  *errNeedsConnectionsAPI
		undecided   *errModeUndecided
	)
	switch {
	case errors.Is(err, ratelimit.ErrStopped), errors.Is(err, context.Canceled):
		return Outcome{Kind: Interrupted, Reason: ReasonStopping, Message: err.Error()}
	case errors.Is(err, ratelimit.ErrUnavailable):
		return Outcome{Kind: Interrupted, Reason: ReasonLimiterDown, Message: err.Error()}
	case errors.As(err, &badID):
		return Outcome{Kind: Dead, Reason: ReasonBadPayload, Message: err.Error()}
	case errors.As(err, &unknownName):
		return Outcome{Kind: Dead, Reason: ReasonUnknownName, Message: unknownName.Error()}
	case errors.As(err, &needsNewer):
		return Outcome{Kind: Dead, Reason: ReasonNeedsConnectionsAPI, Message: needsNewer.Error()}
	case errors.As(err, &undecided):
		return Outcome{Kind: Retry, Reason: ReasonModeUndecided, Message: undecided.Error()}
	case errors.As(err, &unknownOrg):
		return Outcome{Kind: Dead, Reason: ReasonUnknownOrg, Status: unknownOrg.err.Status, ErrorCode: unknownOrg.err.ErrorCode, Message: unknownOrg.err.Message}
	case errors.As(err, &api):
		o := Outcome{Status: api.Status, ErrorCode: api.ErrorCode, Message: api.Message}
		if o.Message == "" {
			o.Message = http.StatusText(api.Status)
		}
		switch s := api.Status; {
		case s == http.StatusTooManyRequests:
			o.Kind, o.Reason = Throttled, ReasonRateLimited
		case s == http.StatusRequestTimeout:
			o.Kind, o.Reason = Retry, ReasonTimeout
		case s >= 500:
			o.Kind, o.Reason = Retry, ReasonServerError
		case s == http.StatusBadRequest:
			o.Kind, o.Reason = Dead, ReasonBadRequest
		case s == http.StatusUnauthorized:
			o.Kind, o.Reason = Dead, ReasonUnauthorized
		case s == http.StatusForbidden:
			o.Kind, o.Reason = Dead, ReasonForbidden
		case s == http.StatusNotFound:
			// The newer endpoints' answers carry their cause.
			switch api.Cause {
			case mgmt.CauseOrganizationNotFound:
				o.Kind, o.Reason = Dead, ReasonUnknownOrg
			case mgmt.CauseConnectionNotFound:
				o.Kind, o.Reason = Dead, ReasonUnknownConnection
			case mgmt.CauseEndpointNotFound:
				o.Kind, o.Reason = Dead, ReasonNoConnectionsAPI
			default:
				o.Kind, o.Reason = Dead, ReasonNotFound
			}
		case s == http.StatusConflict:
			o.Kind, o.Reason = Dead, ReasonConflict
		default:
			o.Kind, o.Reason = Dead, ReasonRejected
		}
		return o
	case errors.As(err, &network):
		if errors.Is(err, context.DeadlineExceeded) {
			return Outcome{Kind: Retry, Reason: ReasonTimeout, Message: err.Error()}
		}
		return Outcome{Kind: Retry, Reason: ReasonNetwork, Message: err.Error()}
	case errors.As(err, &token) && token.Throttled():
		// The token endpoint's own limit: wait, spending no attempt.
		return Outcome{Kind: Throttled, Reason: ReasonRateLimited, Status: token.Status, Message: token.Error()}
	case errors.As(err, &token):
		if token.Status >= 400 && token.Status < 500 && token.Status != http.StatusTooManyRequests && token.Status != http.StatusRequestTimeout {
			return Outcome{Kind: Dead, Reason: ReasonTokenRefused, Status: token.Status, Message: token.Error()}
		}
		return Outcome{Kind: Retry, Reason: ReasonTokenUnavailable, Status: token.Status, Message: token.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return Outcome{Kind: Retry, Reason: ReasonTimeout, Message: err.Error()}
	}
	return Outcome{Kind: Retry, Reason: ReasonError, Message: err.Error()}
}

func (o Outcome) String() string {
	if o.Status != 0 {
		return fmt.Sprintf("%s (%s, HTTP %d): %s", o.Kind, o.Reason, o.Status, o.Message)
	}
	return fmt.Sprintf("%s (%s): %s", o.Kind, o.Reason, o.Message)
}
