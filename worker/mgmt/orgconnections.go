package mgmt

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// The newer Organization connections endpoints (Early Access):
// /organizations/{id}/connections and /organizations/{id}/connections/{connection_id}. Unlike
// the legacy enabled_connections endpoints they show associations that are disabled (kept with
// their settings), and carry a name and an access level. Same scopes, same read and write
// buckets as the legacy ones. Their refusals carry a Cause.

// AccessLevel is an association's organization_access_level: what the organization's own
// admins may do with the connection through the My Organization API.
type AccessLevel string

// The access levels the API accepts.
const (
	AccessNone     AccessLevel = "none"     // the connection is invisible to them
	AccessReadonly AccessLevel = "readonly" // they may see it
	AccessLimited  AccessLevel = "limited"  // they may change show_as_button and is_enabled
	AccessFull     AccessLevel = "full"     // they may change everything
)

// Valid reports whether l is one of the four levels the API accepts.
func (l AccessLevel) Valid() bool {
	switch l {
	case AccessNone, AccessReadonly, AccessLimited, AccessFull:
		return true
	}
	return false
}

// MaxOrgConnectionName is the longest organization_connection_name, in characters.
const MaxOrgConnectionName = 50

// ConnectionRef is the tenant connection an association is about, as answers describe it.
type ConnectionRef struct {
	Name     string `json:"name"`
	Strategy string `json:"strategy"`
}

// OrgConnection is one association of a connection with an organization, as the newer
// endpoints answer it.
type OrgConnection struct {
	ConnectionID string
	// Name is organization_connection_name; "" when unset (the API leaves it out).
	Name string
	// AccessLevel is organization_access_level; AccessNone when the answer leaves it out.
	AccessLevel AccessLevel
	// IsEnabled is is_enabled; true when the answer leaves it out (the legacy endpoints show
	// only enabled associations, and never say so).
	IsEnabled               bool
	AssignMembershipOnLogin bool
	ShowAsButton            bool
	IsSignupEnabled         bool
	Connection              ConnectionRef
}

// orgConnectionJSON is the wire form of an OrgConnection.
type orgConnectionJSON struct {
	ConnectionID            string        `json:"connection_id"`
	Name                    string        `json:"organization_connection_name,omitempty"`
	AccessLevel             *AccessLevel  `json:"organization_access_level,omitempty"`
	IsEnabled               *bool         `json:"is_enabled,omitempty"`
	AssignMembershipOnLogin bool          `json:"assign_membership_on_login"`
	ShowAsButton            bool          `json:"show_as_button"`
	IsSignupEnabled         bool          `json:"is_signup_enabled"`
	Connection              ConnectionRef `json:"connection"`
}

// UnmarshalJSON decodes an answer, filling in what it leaves out: an unset name stays "",
// a missing level is AccessNone, a missing is_enabled is true.
func (oc *OrgConnection) UnmarshalJSON(b []byte) error {
	var w orgConnectionJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*oc = OrgConnection{
		ConnectionID: w.ConnectionID, Name: w.Name, AccessLevel: AccessNone, IsEnabled: true,
		AssignMembershipOnLogin: w.AssignMembershipOnLogin, ShowAsButton: w.ShowAsButton, IsSignupEnabled: w.IsSignupEnabled,
		Connection: w.Connection,
	}
	if w.AccessLevel != nil && *w.AccessLevel != "" {
		oc.AccessLevel = *w.AccessLevel
	}
	if w.IsEnabled != nil {
		oc.IsEnabled = *w.IsEnabled
	}
	return nil
}

// MarshalJSON encodes oc as the API answers it.
func (oc OrgConnection) MarshalJSON() ([]byte, error) {
	level, enabled := oc.AccessLevel, oc.IsEnabled
	return json.Marshal(orgConnectionJSON{
		ConnectionID: oc.ConnectionID, Name: oc.Name, AccessLevel: &level, IsEnabled: &enabled,
		AssignMembershipOnLogin: oc.AssignMembershipOnLogin, ShowAsButton: oc.ShowAsButton, IsSignupEnabled: oc.IsSignupEnabled,
		Connection: oc.Connection,
	})
}

// Optional is a field of a request body that is left out (the zero value), set to a value
// (Set), or set to null (Null) where the API allows it.
type Optional[T any] struct {
	given, null bool
	value       T
}

// Set returns an Optional holding v.
func Set[T any](v T) Optional[T] { return Optional[T]{given: true, value: v} }

// Null returns an Optional that is sent as JSON null.
func Null[T any]() Optional[T] { return Optional[T]{given: true, null: true} }

// Given reports whether the field is sent (as a value or as null).
func (o Optional[T]) Given() bool { return o.given }

// IsNull reports whether the field is sent as null.
func (o Optional[T]) IsNull() bool { return o.given && o.null }

// Value returns the value and true when the field is set to a value.
func (o Optional[T]) Value() (T, bool) { return o.value, o.given && !o.null }

// jsonValue is what the field encodes to: nil for null.
func (o Optional[T]) jsonValue() any {
	if o.null {
		return nil
	}
	return o.value
}

// OrgConnectionSettings are the fields of a create or update of an association. A field left
// unset is not sent: an update leaves the setting as it is, a create takes the API's default.
// Null is allowed only on update, and only for Name (unsets it), AccessLevel (back to none)
// and IsEnabled (allowed by the API; what it does is not documented).
type OrgConnectionSettings struct {
	// Name is organization_connection_name, 1–50 characters; needed for a level other than
	// none.
	Name Optional[string]
	// AccessLevel is organization_access_level.
	AccessLevel Optional[AccessLevel]
	// IsEnabled is is_enabled. CreateOrgConnection sends true when it is unset.
	IsEnabled               Optional[bool]
	AssignMembershipOnLogin *bool
	ShowAsButton            *bool
	IsSignupEnabled         *bool
}

// Empty reports whether no field is given.
func (s OrgConnectionSettings) Empty() bool {
	return !s.Name.Given() && !s.AccessLevel.Given() && !s.IsEnabled.Given() &&
		s.AssignMembershipOnLogin == nil && s.ShowAsButton == nil && s.IsSignupEnabled == nil
}

// body returns the JSON object of s, after checking what the API would refuse without
// looking at the tenant: a null on create, a name outside 1–50 characters, an unknown level.
func (s OrgConnectionSettings) body(create bool) (map[string]any, error) {
	b := map[string]any{}
	if s.Name.Given() {
		if v, ok := s.Name.Value(); ok {
			if n := utf8.RuneCountInString(v); n < 1 || n > MaxOrgConnectionName {
				return nil, fmt.Errorf("organization_connection_name %q is %d characters, want 1 to %d", cut(v, 60), n, MaxOrgConnectionName)
			}
		}
		b["organization_connection_name"] = s.Name.jsonValue()
	}
	if s.AccessLevel.Given() {
		if v, ok := s.AccessLevel.Value(); ok && !v.Valid() {
			return nil, fmt.Errorf("organization_access_level %q is not one of none, readonly, limited, full", cut(string(v), 40))
		}
		b["organization_access_level"] = s.AccessLevel.jsonValue()
	}
	if s.IsEnabled.Given() {
		b["is_enabled"] = s.IsEnabled.jsonValue()
	}
	for name, p := range map[string]*bool{"assign_membership_on_login": s.AssignMembershipOnLogin, "show_as_button": s.ShowAsButton, "is_signup_enabled": s.IsSignupEnabled} {
		if p != nil {
			b[name] = *p
		}
	}
	if create {
		for name, v := range b {
			if v == nil {
				return nil, fmt.Errorf("%s cannot be null on create: leave it unset", name)
			}
		}
		if !s.IsEnabled.Given() {
			b["is_enabled"] = true
		}
	}
	return b, nil
}

// OrgConnectionsQuery selects a page of ListOrgConnections.
type OrgConnectionsQuery struct {
	// Page is the 0-based page.
	Page int
	// PerPage is the page size, 1–100; 0 means OrgConnectionsPageSize.
	PerPage int
	// Enabled, when not nil, asks only for enabled (true) or disabled (false) associations.
	Enabled *bool
}

// OrgConnectionsPageSize is the page size AllOrgConnections asks for: the largest the newer
// list accepts.
const OrgConnectionsPageSize = 100

// OrgConnectionPage is one page of ListOrgConnections.
type OrgConnectionPage struct {
	Connections []OrgConnection
	Start       int // index of the first item
	Total       int // total items; -1 when the API did not say
}

// newerOrgPath is the path of the organization's associations on the newer endpoints.
func newerOrgPath(orgID string) (string, error) { return collectionPath(orgID, "connections") }

// newerConnPath is the path of one association on the newer endpoints.
func newerConnPath(orgID, connectionID string) (string, error) {
	return memberPath(orgID, "connections", connectionID)
}

// ListOrgConnections returns one page of the organization's associations, enabled or not
// (q.Enabled filters), asking for totals. It accepts either answer shape: the object with
// totals (whose limit is the page size asked, not the items returned) or a bare array.
func (c *Client) ListOrgConnections(ctx context.Context, orgID string, q OrgConnectionsQuery) (OrgConnectionPage, error) {
	path, err := newerOrgPath(orgID)
	if err != nil {
		return OrgConnectionPage{}, err
	}
	perPage := q.PerPage
	if perPage == 0 {
		perPage = OrgConnectionsPageSize
	}
	if perPage < 1 || perPage > 100 || q.Page < 0 {
		return OrgConnectionPage{}, fmt.Errorf("GET %s: page %d, per page %d: want a page of 0 or more and 1 to 100 per page; no request was sent", path, q.Page, perPage)
	}
	v := url.Values{}
	v.Set("page", strconv.Itoa(q.Page))
	v.Set("per_page", strconv.Itoa(perPage))
	v.Set("include_totals", "true")
	if q.Enabled != nil {
		v.Set("is_enabled", strconv.FormatBool(*q.Enabled))
	}
	var raw json.RawMessage
	if err := c.do(ctx, request{class: Read, method: http.MethodGet, path: path, query: v, want: http.StatusOK}, &raw); err != nil {
		return OrgConnectionPage{}, classifyNewer(newerList, err)
	}
	if len(raw) > 0 && raw[0] == '[' {
		var bare []OrgConnection
		if err := json.Unmarshal(raw, &bare); err != nil {
			return OrgConnectionPage{}, fmt.Errorf("GET %s: decode list: %w", path, err)
		}
		return OrgConnectionPage{Connections: bare, Start: q.Page * perPage, Total: -1}, nil
	}
	var withTotals struct {
		Connections []OrgConnection `json:"connections"`
		Start       int             `json:"start"`
		Total       *int            `json:"total"`
	}
	if err := json.Unmarshal(raw, &withTotals); err != nil {
		return OrgConnectionPage{}, fmt.Errorf("GET %s: decode list: %w", path, err)
	}
	page := OrgConnectionPage{Connections: withTotals.Connections, Start: withTotals.Start, Total: -1}
	if withTotals.Total != nil {
		page.Total = *withTotals.Total
	}
	return page, nil
}

// AllOrgConnections returns every association of the organization (only the enabled or
// disabled ones when enabled is not nil), reading pages of OrgConnectionsPageSize until the
// total is reached or a page comes back short (without a total) or empty.
func (c *Client) AllOrgConnections(ctx context.Context, orgID string, enabled *bool) ([]OrgConnection, error) {
	var all []OrgConnection
	for page := 0; page < maxPages; page++ {
		p, err := c.ListOrgConnections(ctx, orgID, OrgConnectionsQuery{Page: page, PerPage: OrgConnectionsPageSize, Enabled: enabled})
		if err != nil {
			return nil, err
		}
		all = append(all, p.Connections...)
		n := len(p.Connections)
		if n == 0 || p.Total < 0 && n < OrgConnectionsPageSize || p.Total >= 0 && p.Start+n >= p.Total {
			return all, nil
		}
	}
	return nil, fmt.Errorf("GET /organizations/%s/connections: more than %d pages", orgID, maxPages)
}

// maxPages bounds the pages a listing reads.
const maxPages = 10000

// GetOrgConnection returns one association, enabled or not. A 404 has Cause
// CauseOrganizationNotFound or CauseOrgConnectionNotFound.
func (c *Client) GetOrgConnection(ctx context.Context, orgID, connectionID string) (OrgConnection, error) {
	path, err := newerConnPath(orgID, connectionID)
	if err != nil {
		return OrgConnection{}, err
	}
	var out OrgConnection
	err = c.do(ctx, request{class: Read, method: http.MethodGet, path: path, want: http.StatusOK}, &out)
	return out, classifyNewer(newerOne, err)
}

// CreateOrgConnection associates the connection with the organization (201), enabled unless
// s.IsEnabled says false. An association that exists, enabled or not, answers 409
// (CauseAlreadyExists); an unknown organization or connection 404 (CauseOrganizationNotFound,
// CauseConnectionNotFound). Settings the API would refuse whatever the tenant holds (a null, a
// name outside 1–50 characters, an unknown level) are refused before anything is sent.
func (c *Client) CreateOrgConnection(ctx context.Context, orgID, connectionID string, s OrgConnectionSettings) (OrgConnection, error) {
	path, err := newerOrgPath(orgID)
	if err != nil {
		return OrgConnection{}, err
	}
	if _, err := pathID("connection id", connectionID); err != nil {
		return OrgConnection{}, err
	}
	body, err := s.body(true)
	if err != nil {
		return OrgConnection{}, fmt.Errorf("POST %s: %w; no request was sent", path, err)
	}
	body["connection_id"] = connectionID
	var out OrgConnection
	err = c.do(ctx, request{class: Write, method: http.MethodPost, path: path, body: body, want: http.StatusCreated}, &out)
	return out, classifyNewer(newerCreate, err)
}

// UpdateOrgConnection changes the given fields of an association, enabled or not (200). s must
// give at least one field. A 404 has Cause CauseOrganizationNotFound or
// CauseOrgConnectionNotFound.
func (c *Client) UpdateOrgConnection(ctx context.Context, orgID, connectionID string, s OrgConnectionSettings) (OrgConnection, error) {
	path, err := newerConnPath(orgID, connectionID)
	if err != nil {
		return OrgConnection{}, err
	}
	if s.Empty() {
		return OrgConnection{}, fmt.Errorf("PATCH %s: no setting to change; no request was sent", path)
	}
	body, err := s.body(false)
	if err != nil {
		return OrgConnection{}, fmt.Errorf("PATCH %s: %w; no request was sent", path, err)
	}
	var out OrgConnection
	err = c.do(ctx, request{class: Write, method: http.MethodPatch, path: path, body: body, want: http.StatusOK}, &out)
	return out, classifyNewer(newerOne, err)
}

// DeleteOrgConnection removes the association, settings and all (204; Auth0 answers 204 also
// when it is already gone). An unknown organization answers 404 (CauseOrganizationNotFound);
// should a tenant answer 404 for a missing association instead, its Cause is
// CauseOrgConnectionNotFound.
func (c *Client) DeleteOrgConnection(ctx context.Context, orgID, connectionID string) error {
	path, err := newerConnPath(orgID, connectionID)
	if err != nil {
		return err
	}
	return classifyNewer(newerOne, c.do(ctx, request{class: Write, method: http.MethodDelete, path: path, want: http.StatusNoContent}, nil))
}
