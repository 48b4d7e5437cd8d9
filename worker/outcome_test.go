package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/ratelimit"
)

// newer is an answer of the newer endpoints with its cause.
func newer(status int, c mgmt.Cause) error {
	return fmt.Errorf("wrapped: %w", &mgmt.APIError{Method: "POST", Path: "/organizations/o/connections", Status: status, Cause: c, Message: "m"})
}

func TestClassify(t *testing.T) {
	api := func(status int, code string) error {
		return fmt.Errorf("wrapped: %w", &mgmt.APIError{Method: "POST", Path: "/x", Status: status, ErrorCode: code, Message: "m"})
	}
	for _, tc := range []struct {
		name   string
		err    error
		kind   Kind
		reason Reason
	}{
		{"success", nil, Done, ReasonApplied},
		{"429", api(429, "too_many_requests"), Throttled, ReasonRateLimited},
		{"408", api(408, ""), Retry, ReasonTimeout},
		{"500", api(500, ""), Retry, ReasonServerError},
		{"503", api(503, ""), Retry, ReasonServerError},
		{"400", api(400, "invalid_body"), Dead, ReasonBadRequest},
		{"401", api(401, ""), Dead, ReasonUnauthorized},
		{"403", api(403, "insufficient_scope"), Dead, ReasonForbidden},
		{"404", api(404, ""), Dead, ReasonNotFound},
		{"409", api(409, "connection_already_enabled"), Dead, ReasonConflict},
		{"413", api(413, ""), Dead, ReasonRejected},
		{"id refused by a path builder", fmt.Errorf("x: %w", &mgmt.InvalidIDError{Field: "connection id", ID: ".."}), Dead, ReasonBadPayload},
		{"unknown organization", &errUnknownOrg{&mgmt.APIError{Status: 404}}, Dead, ReasonUnknownOrg},
		{"dropped connection", &mgmt.NetworkError{Method: "POST", Path: "/x", Err: &net.OpError{Op: "read", Err: errors.New("connection reset")}}, Retry, ReasonNetwork},
		{"request timeout", &mgmt.NetworkError{Method: "POST", Path: "/x", Err: context.DeadlineExceeded}, Retry, ReasonTimeout},
		{"token refused", &mgmt.TokenError{Status: 401, Reason: "access_denied"}, Dead, ReasonTokenRefused},
		{"token endpoint down", &mgmt.TokenError{Status: 503}, Retry, ReasonTokenUnavailable},
		{"token endpoint unreachable", &mgmt.TokenError{Reason: "dial tcp: refused"}, Retry, ReasonTokenUnavailable},
		{"token endpoint throttled", &mgmt.TokenError{Status: 429}, Throttled, ReasonRateLimited}, // waits, spending no attempt,
		{"worker stopping", fmt.Errorf("wait: %w", ratelimit.ErrStopped), Interrupted, ReasonStopping},
		{"cancelled", context.Canceled, Interrupted, ReasonStopping},
		{"limiter unreachable", fmt.Errorf("%w: dial tcp: refused", ratelimit.ErrUnavailable), Interrupted, ReasonLimiterDown},
		{"deadline", context.DeadlineExceeded, Retry, ReasonTimeout},
		{"anything else", errors.New("boom"), Retry, ReasonError},
		// The newer endpoints' 404s by cause, names, and API modes.
		{"newer: unknown organization", newer(404, mgmt.CauseOrganizationNotFound), Dead, ReasonUnknownOrg},
		{"newer: unknown connection", newer(404, mgmt.CauseConnectionNotFound), Dead, ReasonUnknownConnection},
		{"newer: no association", newer(404, mgmt.CauseOrgConnectionNotFound), Dead, ReasonNotFound},
		{"newer: no such endpoint", newer(404, mgmt.CauseEndpointNotFound), Dead, ReasonNoConnectionsAPI},
		{"newer: already exists", newer(409, mgmt.CauseAlreadyExists), Dead, ReasonConflict},
		{"unknown name", fmt.Errorf("x: %w", &errUnknownName{field: "org_name", name: "acme"}), Dead, ReasonUnknownName},
		{"legacy mode", &errNeedsConnectionsAPI{}, Dead, ReasonNeedsConnectionsAPI},
		{"auto undecided", &errModeUndecided{why: "503"}, Retry, ReasonModeUndecided},
	} {
		o := Classify(tc.err)
		if o.Kind != tc.kind || o.Reason != tc.reason {
			t.Errorf("%s: Classify = %v/%v, want %v/%v", tc.name, o.Kind, o.Reason, tc.kind, tc.reason)
		}
		// DeadReasons (the metrics' dead-letter series) lists every reason a
		// change is dead-lettered for, and only those.
		if (o.Kind == Dead) != slices.Contains(DeadReasons, o.Reason) {
			t.Errorf("%s: reason %s of a %v outcome: in DeadReasons = %v", tc.name, o.Reason, o.Kind, !(o.Kind == Dead))
		}
	}
}

func TestIsFailureAndRetryDelay(t *testing.T) {
	l := &later{reason: "not its turn", after: 400e6}
	if isFailure(l) || isFailure(fmt.Errorf("x: %w", l)) {
		t.Fatal("a put-back task counts as a failed attempt")
	}
	if !isFailure(&failed{}) || !isFailure(errors.New("x")) {
		t.Fatal("a failed attempt does not count")
	}
	delay := retryDelay(100e6, 2e9)
	for i := 0; i < 100; i++ {
		if d := delay(0, l, nil); d < 200e6 || d > 400e6 {
			t.Fatalf("put-back delay %v, want within [200ms, 400ms]", d)
		}
		if d := delay(2, &failed{}, nil); d < 200e6 || d > 400e6 {
			t.Fatalf("delay after 2 failures %v, want within [200ms, 400ms] (100ms·2², jittered)", d)
		}
		if d := delay(30, &failed{}, nil); d < 1e9 || d > 2e9 {
			t.Fatalf("delay after 30 failures %v, want capped within [1s, 2s]", d)
		}
	}
}
