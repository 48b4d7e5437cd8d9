package mgmttest

import (
	"encoding/json"
	"net/http"
	"time"
)

// apiError is the body of every /api/v2 error, shaped like Auth0's.
type apiError struct {
	StatusCode int    `json:"statusCode"`
	Error      string `json:"error"`
	Message    string `json:"message"`
	ErrorCode  string `json:"errorCode,omitempty"`
}

// Auth0 error codes the simulator sends.
const (
	codeInvalidBody        = "invalid_body"
	codeInvalidQuery       = "invalid_query_string"
	codeInvalidURI         = "invalid_uri"
	codeInsufficientScope  = "insufficient_scope"
	codeTooManyRequests    = "too_many_requests"
	codeAlreadyEnabled     = "connection_already_enabled"
	msgNoOrganization      = "No organization found by that id or name"
	msgNoConnection        = "No connection found by that id"
	msgAlreadyEnabled      = "The connection is already enabled for this organization."
	msgSignupNeedsDatabase = "Only database connections with assign_membership_on_login = true support is_signup_enabled = true."
	msgUnavailable         = "The service is temporarily unavailable. Please try again later."
	msgInternal            = "An internal server error occurred."
	// The newer Organization connections endpoints' answers ("does not exists" is Auth0's).
	msgOrgNotExists           = "The organization does not exists."
	msgOrgConnectionNotExists = "The organization connection does not exists."
	msgOrgConnectionExists    = "The organization connection already exists."
	// Not documented: a POST naming a connection the tenant does not have.
	msgConnectionNotExists = "The connection does not exists."
	// Not documented: the wording of the rule that a level other than none needs a name.
	msgLevelNeedsName = "organization_connection_name is required when organization_access_level is not none."
)

// result is the outcome of handling one /api/v2 request, decided under Server.mu and written
// after it is released.
type result struct {
	status int
	body   any // nil: no body
	// hangUp closes the connection without a response (drop, reset and lost-response faults).
	hangUp bool
	// html sends body, a string, as a text/html page (the HTML 502 fault).
	html bool
	// hdr is what the X-RateLimit-* headers say; retryAfter > 0 adds Retry-After.
	hdr        RateHeaders
	retryAfter time.Duration
	// fault names the injected fault, if any.
	fault FaultKind
	// conn is the connection a successful write changed.
	conn string
}

// fail is an error result; code "" omits errorCode, as Auth0 does on its 404s and 401s.
func fail(status int, message, code string) result {
	return result{status: status, body: apiError{
		StatusCode: status,
		Error:      http.StatusText(status),
		Message:    message,
		ErrorCode:  code,
	}}
}

func (r result) succeeded() bool { return r.status >= 200 && r.status < 300 }

// writeJSON writes status and v as JSON; a nil v writes no body and no Content-Type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Every body is built from plain structs, maps and slices; this cannot happen.
		panic("mgmttest: encoding a response body: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeHTML writes status and page as text/html.
func writeHTML(w http.ResponseWriter, status int, page string) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(page))
}
