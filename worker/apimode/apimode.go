// Package apimode decides, per tenant, which Management API endpoints orgconn uses for
// organization connections: the legacy enabled_connections endpoints (GA everywhere) or the
// newer Organization connections endpoints (Early Access: disabled associations, names and
// access levels), which a tenant may not have.
//
// A Mode is configured (--api, ORGCONN_API): Legacy and Connections are taken as given; Auto
// asks the tenant once, with one read of the newer list (Probe), and remembers a clear answer
// in Redis for the whole fleet (Store, keyed by tenant, for DefaultTTL). An answer that says
// nothing about the endpoints — a 401, a 403 for scope, a 429, a 5xx, no answer — is not
// remembered: the Resolver asks again later. What the answers mean:
//
//	200, 400                                         the newer endpoints are there
//	404 the organization is unknown                  they are there (the probe names an
//	                                                 organization that does not exist)
//	404 "Not Found", or a body that is no Auth0 error the route is not there: legacy
//	403 with errorCode operation_not_supported,      the feature is not enabled (not
//	    feature_not_enabled or feature_not_available documented; plausible): legacy
//	anything else                                    undecided
//
// A Resolver is safe for concurrent use; concurrent callers wait for one probe.
package apimode

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/orgconn/orgconn/worker/mgmt"
)

// Mode is how orgconn reaches a tenant's organization connections.
type Mode string

// The modes.
const (
	// Legacy uses only the enabled_connections endpoints.
	Legacy Mode = "legacy"
	// Connections uses the newer Organization connections endpoints.
	Connections Mode = "connections"
	// Auto probes the tenant and uses Connections when it has them, else Legacy. As a
	// resolved mode it means "not decided yet".
	Auto Mode = "auto"
)

// Parse returns the Mode named s ("legacy", "connections" or "auto"), or an error that names
// the allowed values.
func Parse(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Legacy, Connections, Auto:
		return m, nil
	}
	return "", fmt.Errorf("API mode %q: want legacy, connections or auto", s)
}

// String returns the mode's name.
func (m Mode) String() string { return string(m) }

// Lister is the call a probe makes; *mgmt.Client implements it. The client should be paced
// by the fleet's limiter: the probe is one read from the read budget.
type Lister interface {
	ListOrgConnections(ctx context.Context, orgID string, q mgmt.OrgConnectionsQuery) (mgmt.OrgConnectionPage, error)
}

var _ Lister = (*mgmt.Client)(nil)

// ProbeOrg is the organization a probe asks about when the caller names none: an id no
// tenant has (real ids are "org_" and 16 alphanumerics), so that a tenant with the newer
// endpoints answers 404 "The organization does not exists." and one without them a route's
// 404 "Not Found", and the probe reads no tenant data.
const ProbeOrg = "org_orgconnApiModeProbe"

// ProbeResult is what one probe found.
type ProbeResult struct {
	// Mode is Connections or Legacy when the answer decided; Auto when it did not.
	Mode Mode
	// Status is the HTTP status of the answer; 0 when none came.
	Status int
	// Evidence says what the answer was, for logs and `orgconn limits`.
	Evidence string
	// Err is why the probe did not decide (Mode Auto); nil otherwise.
	Err error
}

// Decided reports whether the probe decided the mode.
func (p ProbeResult) Decided() bool { return p.Mode == Legacy || p.Mode == Connections }

// featureOff are 403 errorCodes that plausibly mean "this tenant does not have the feature"
// (not documented for these endpoints).
var featureOff = map[string]bool{"operation_not_supported": true, "feature_not_enabled": true, "feature_not_available": true}

// Probe asks the tenant, with one GET of the newer list (per_page=1) for orgID (ProbeOrg when
// empty), whether it has the newer endpoints, and classifies the answer as the package
// documents.
func Probe(ctx context.Context, api Lister, orgID string) ProbeResult {
	if orgID == "" {
		orgID = ProbeOrg
	}
	_, err := api.ListOrgConnections(ctx, orgID, mgmt.OrgConnectionsQuery{PerPage: 1})
	if err == nil {
		return ProbeResult{Mode: Connections, Status: http.StatusOK, Evidence: "200: the newer endpoints answered"}
	}
	var ae *mgmt.APIError
	if !errors.As(err, &ae) {
		return ProbeResult{Mode: Auto, Evidence: "no answer", Err: err}
	}
	res := ProbeResult{Mode: Auto, Status: ae.Status, Evidence: evidence(ae)}
	switch {
	case ae.Status == http.StatusNotFound && ae.Cause == mgmt.CauseEndpointNotFound:
		res.Mode = Legacy
	case ae.Status == http.StatusNotFound && ae.Cause == mgmt.CauseOrganizationNotFound:
		res.Mode = Connections
	case ae.Status == http.StatusBadRequest:
		res.Mode = Connections // the endpoint validated the request
	case ae.Status == http.StatusForbidden && featureOff[ae.ErrorCode]:
		res.Mode = Legacy
	case ae.Status == http.StatusForbidden:
		res.Err = fmt.Errorf("probe of the newer Organization connections endpoints refused (does the client have read:organization_connections?): %w", err)
	default:
		res.Err = fmt.Errorf("probe of the newer Organization connections endpoints: %w", err)
	}
	return res
}

// evidence summarises an answer: `404 "The organization does not exists."`.
func evidence(ae *mgmt.APIError) string {
	s := fmt.Sprint(ae.Status)
	if ae.ErrorCode != "" {
		s += " " + ae.ErrorCode
	}
	if ae.Message != "" {
		s += fmt.Sprintf(" %q", ae.Message)
	}
	return s
}
