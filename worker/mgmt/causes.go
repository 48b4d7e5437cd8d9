package mgmt

import (
	"errors"
	"net/http"
	"strings"
)

// Cause is what a refusal by the newer Organization connections endpoints is about, as far
// as the answer tells. The calls on those endpoints (CreateOrgConnection and the others) set
// APIError.Cause; the legacy calls leave it CauseUnknown. Test it with errors.Is and the Err…
// values below, or read APIError.Cause.
type Cause int

// The causes.
const (
	// CauseUnknown: the answer says nothing more than its status.
	CauseUnknown Cause = iota
	// CauseAlreadyExists: a create found the association already there (409), enabled or not.
	CauseAlreadyExists
	// CauseOrganizationNotFound: the organization is unknown (404).
	CauseOrganizationNotFound
	// CauseOrgConnectionNotFound: the organization exists but has no association with the
	// connection (404 on get or update).
	CauseOrgConnectionNotFound
	// CauseConnectionNotFound: a create named a connection the tenant does not have (404).
	CauseConnectionNotFound
	// CauseEndpointNotFound: the endpoint itself is not there (a route-level 404 "Not Found"):
	// the tenant does not have the newer endpoints.
	CauseEndpointNotFound
)

var causeNames = []string{"unknown", "already_exists", "organization_not_found", "org_connection_not_found", "connection_not_found", "endpoint_not_found"}

// String returns the cause's name, such as "organization_not_found".
func (c Cause) String() string {
	if c < 0 || int(c) >= len(causeNames) {
		return "unknown"
	}
	return causeNames[c]
}

// Errors matched by errors.Is against an *APIError of the newer endpoints with the same
// Cause.
var (
	ErrAlreadyExists         = errors.New("the organization connection already exists")
	ErrOrganizationNotFound  = errors.New("the organization does not exist")
	ErrOrgConnectionNotFound = errors.New("the organization has no such connection")
	ErrConnectionNotFound    = errors.New("the tenant has no such connection")
	ErrEndpointNotFound      = errors.New("the tenant does not have this endpoint")
	causeErrors              = map[Cause]error{CauseAlreadyExists: ErrAlreadyExists, CauseOrganizationNotFound: ErrOrganizationNotFound, CauseOrgConnectionNotFound: ErrOrgConnectionNotFound, CauseConnectionNotFound: ErrConnectionNotFound, CauseEndpointNotFound: ErrEndpointNotFound}
)

// Is reports whether target is the Err… value of e's Cause.
func (e *APIError) Is(target error) bool {
	want, ok := causeErrors[e.Cause]
	return ok && target == want
}

// CauseOf returns the Cause of err's *APIError, or CauseUnknown.
func CauseOf(err error) Cause {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Cause
	}
	return CauseUnknown
}

// newerOp is the kind of call made on the newer endpoints, for classifying its refusals.
type newerOp int

const (
	newerList newerOp = iota
	newerCreate
	newerOne // get, update or delete of one association
)

// classifyNewer sets the Cause of err's *APIError (if any) from a call of kind op. Status
// decides where it can: 409 on a create is CauseAlreadyExists. A 404 can mean an unknown
// organization, a missing association, an unknown connection or a missing endpoint, and only
// the body tells them apart: an errorCode that names the thing, else the message (Auth0's
// "The organization does not exists." and "The organization connection does not exists.",
// the legacy wording "No organization found by that id or name" and "No connection found by
// that id", and a route's bare "Not Found" or a body that is not an Auth0 error at all).
func classifyNewer(op newerOp, err error) error {
	var ae *APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Status {
	case http.StatusConflict:
		if op == newerCreate {
			ae.Cause = CauseAlreadyExists
		}
	case http.StatusNotFound:
		ae.Cause = notFoundCause(op, ae)
	}
	return err
}

// notFoundCause tells what a 404 of a call of kind op is about.
func notFoundCause(op newerOp, ae *APIError) Cause {
	code := strings.ToLower(ae.ErrorCode)
	msg := strings.ToLower(strings.TrimSpace(ae.Message))
	if code == "" && (msg == "" || msg == "not found") {
		return CauseEndpointNotFound
	}
	for _, text := range []string{code, msg} {
		if text == "" {
			continue
		}
		norm := strings.ReplaceAll(text, "_", " ")
		switch {
		case strings.Contains(norm, "organization connection") || strings.Contains(norm, "org connection"):
			return CauseOrgConnectionNotFound
		case strings.Contains(norm, "organization"):
			return CauseOrganizationNotFound
		case strings.Contains(norm, "connection"):
			if op == newerCreate {
				return CauseConnectionNotFound
			}
			if op == newerOne {
				return CauseOrgConnectionNotFound
			}
		}
	}
	return CauseUnknown
}
