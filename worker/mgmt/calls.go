package mgmt

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// EnabledConnection is a connection as enabled for an organization.
type EnabledConnection struct {
	ConnectionID            string `json:"connection_id"`
	AssignMembershipOnLogin bool   `json:"assign_membership_on_login"`
	ShowAsButton            bool   `json:"show_as_button"`
	IsSignupEnabled         bool   `json:"is_signup_enabled"`
	Connection              struct {
		Name     string `json:"name"`
		Strategy string `json:"strategy"`
	} `json:"connection"`
}

// Settings are the three flags of an enable or update. A nil field is not
// sent, which leaves the setting as it is (or the API default on enable).
type Settings struct {
	AssignMembershipOnLogin *bool `json:"assign_membership_on_login,omitempty"`
	IsSignupEnabled         *bool `json:"is_signup_enabled,omitempty"`
	ShowAsButton            *bool `json:"show_as_button,omitempty"`
}

// Empty reports whether no flag is set.
func (s Settings) Empty() bool {
	return s.AssignMembershipOnLogin == nil && s.IsSignupEnabled == nil && s.ShowAsButton == nil
}

// Page is one page of a list.
type Page struct {
	Connections []EnabledConnection
	Start       int // index of the first item
	Total       int // total items; -1 when the API did not say
}

// PageSize is the page size ListAll asks for: the public cloud documents 50
// as the largest (the OpenAPI spec says 100).
const PageSize = 50

// InvalidIDError is an organization or connection id that a path builder
// refused: it is empty or holds a character other than an ASCII letter,
// digit, '_' or '-' (the characters of Auth0's ids and names). No request was
// sent. Ids are validated long before they get here (jobs.CheckID); this is
// the last line of defence against a path such as
// /organizations/org_1/enabled_connections/.. that a dot-segment resolution
// would turn into /organizations/org_1.
type InvalidIDError struct {
	Field string // "organization id" or "connection id"
	ID    string
}

func (e *InvalidIDError) Error() string {
	id := e.ID
	if r := []rune(id); len(r) > 24 {
		id = string(r[:23]) + "…"
	}
	return fmt.Sprintf("%s %q cannot go into a URL path: only letters, digits, \"_\" and \"-\" are allowed; no request was sent", e.Field, id)
}

// pathID returns id as a path segment, or an *InvalidIDError when it is
// empty or holds any character other than an ASCII letter, digit, '_' or
// '-'. Such a segment needs no escaping and cannot be a dot segment.
func pathID(field, id string) (string, error) {
	if id == "" {
		return "", &InvalidIDError{Field: field, ID: id}
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-') {
			return "", &InvalidIDError{Field: field, ID: id}
		}
	}
	return id, nil
}

// collectionPath is the path of one of the organization's collections of
// connections: "enabled_connections" (legacy) or "connections" (newer).
func collectionPath(orgID, collection string) (string, error) {
	org, err := pathID("organization id", orgID)
	if err != nil {
		return "", err
	}
	return "/organizations/" + org + "/" + collection, nil
}

// memberPath is the path of one connection in such a collection.
func memberPath(orgID, collection, connectionID string) (string, error) {
	p, err := collectionPath(orgID, collection)
	if err != nil {
		return "", err
	}
	conn, err := pathID("connection id", connectionID)
	if err != nil {
		return "", err
	}
	return p + "/" + conn, nil
}

// orgPath is the path of the organization's enabled connections.
func orgPath(orgID string) (string, error) { return collectionPath(orgID, "enabled_connections") }

// connPath is the path of one enabled connection of the organization.
func connPath(orgID, connectionID string) (string, error) {
	return memberPath(orgID, "enabled_connections", connectionID)
}

// List returns one page (0-based) of the organization's enabled connections,
// asking for totals. It accepts either answer shape: the object with totals
// or a bare array.
func (c *Client) List(ctx context.Context, orgID string, page, perPage int) (Page, error) {
	path, err := orgPath(orgID)
	if err != nil {
		return Page{}, err
	}
	q := url.Values{}
	q.Set("page", strconv.Itoa(page))
	q.Set("per_page", strconv.Itoa(perPage))
	q.Set("include_totals", "true")
	var raw json.RawMessage
	if err := c.do(ctx, request{class: Read, method: http.MethodGet, path: path, query: q, want: http.StatusOK}, &raw); err != nil {
		return Page{}, err
	}
	var withTotals struct {
		Connections []EnabledConnection `json:"enabled_connections"`
		Start       int                 `json:"start"`
		Total       int                 `json:"total"`
	}
	if len(raw) > 0 && raw[0] == '[' {
		var bare []EnabledConnection
		if err := json.Unmarshal(raw, &bare); err != nil {
			return Page{}, fmt.Errorf("GET %s: decode list: %w", path, err)
		}
		return Page{Connections: bare, Start: page * perPage, Total: -1}, nil
	}
	if err := json.Unmarshal(raw, &withTotals); err != nil {
		return Page{}, fmt.Errorf("GET %s: decode list: %w", path, err)
	}
	return Page{Connections: withTotals.Connections, Start: withTotals.Start, Total: withTotals.Total}, nil
}

// ListAll returns every enabled connection of the organization, reading pages
// of PageSize until the total is reached or a page comes back short or empty.
func (c *Client) ListAll(ctx context.Context, orgID string) ([]EnabledConnection, error) {
	path, err := orgPath(orgID)
	if err != nil {
		return nil, err
	}
	var all []EnabledConnection
	for page := 0; page < 10000; page++ {
		p, err := c.List(ctx, orgID, page, PageSize)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Connections...)
		if len(p.Connections) == 0 || len(p.Connections) < PageSize && p.Total < 0 || p.Total >= 0 && p.Start+len(p.Connections) >= p.Total {
			return all, nil
		}
	}
	return nil, fmt.Errorf("GET %s: more than 10000 pages", path)
}

// Get returns one enabled connection; a 404 means the organization is unknown
// or the connection is not enabled for it.
func (c *Client) Get(ctx context.Context, orgID, connectionID string) (EnabledConnection, error) {
	path, err := connPath(orgID, connectionID)
	if err != nil {
		return EnabledConnection{}, err
	}
	var out EnabledConnection
	err = c.do(ctx, request{class: Read, method: http.MethodGet, path: path, want: http.StatusOK}, &out)
	return out, err
}

// Enable enables the connection for the organization with the given
// settings (201). An already enabled connection may answer 409.
func (c *Client) Enable(ctx context.Context, orgID, connectionID string, s Settings) (EnabledConnection, error) {
	path, err := orgPath(orgID)
	if err != nil {
		return EnabledConnection{}, err
	}
	// The connection id goes into the body, not the path; an id the path
	// builders would refuse is refused here too.
	if _, err := pathID("connection id", connectionID); err != nil {
		return EnabledConnection{}, err
	}
	body := struct {
		ConnectionID string `json:"connection_id"`
		Settings
	}{connectionID, s}
	var out EnabledConnection
	err = c.do(ctx, request{class: Write, method: http.MethodPost, path: path, body: body, want: http.StatusCreated}, &out)
	return out, err
}

// Update changes the settings of an enabled connection (200). s must set at
// least one flag.
func (c *Client) Update(ctx context.Context, orgID, connectionID string, s Settings) (EnabledConnection, error) {
	path, err := connPath(orgID, connectionID)
	if err != nil {
		return EnabledConnection{}, err
	}
	if s.Empty() {
		return EnabledConnection{}, fmt.Errorf("PATCH %s: no setting to change", path)
	}
	var out EnabledConnection
	err = c.do(ctx, request{class: Write, method: http.MethodPatch, path: path, body: s, want: http.StatusOK}, &out)
	return out, err
}

// Remove disables the connection for the organization (204). A connection
// that is not enabled may answer 404.
func (c *Client) Remove(ctx context.Context, orgID, connectionID string) error {
	path, err := connPath(orgID, connectionID)
	if err != nil {
		return err
	}
	return c.do(ctx, request{class: Write, method: http.MethodDelete, path: path, want: http.StatusNoContent}, nil)
}
