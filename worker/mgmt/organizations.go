package mgmt

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// Organization is a tenant organization: its id, its name (lowercase letters, digits, '_'
// and '-', never starting with "org_") and its display name.
type Organization struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
}

// OrganizationPage is one page of the organization listing in checkpoint paging.
type OrganizationPage struct {
	Organizations []Organization
	// Next is the cursor of the following page, to pass as from; "" on the last page.
	Next string
}

// MaxTake is the largest page of organizations Auth0 serves in checkpoint paging.
const MaxTake = 100

// maxOrganizationPages bounds AllOrganizations: ten million organizations at MaxTake a page.
const maxOrganizationPages = 100_000

// ListOrganizations returns one page of up to take (1 to MaxTake) organizations in checkpoint
// paging (GET /organizations?from=&take=), the paging Auth0 requires past the first 1,000
// organizations; from is "" for the first page, else the previous page's Next. It needs the
// read:organizations scope and draws from the read budget. A bare array (a server that
// ignored from and take) is taken as the last page; an unusable from is a 400 *APIError.
func (c *Client) ListOrganizations(ctx context.Context, from string, take int) (OrganizationPage, error) {
	if take < 1 || take > MaxTake {
		return OrganizationPage{}, fmt.Errorf("GET /organizations: take %d: want 1 to %d", take, MaxTake)
	}
	q := url.Values{}
	if from != "" {
		q.Set("from", from)
	}
	q.Set("take", strconv.Itoa(take))
	var raw json.RawMessage
	if err := c.do(ctx, request{class: Read, method: http.MethodGet, path: "/organizations", query: q, want: http.StatusOK}, &raw); err != nil {
		return OrganizationPage{}, err
	}
	if len(raw) > 0 && raw[0] == '[' {
		var bare []Organization
		if err := json.Unmarshal(raw, &bare); err != nil {
			return OrganizationPage{}, fmt.Errorf("GET /organizations: decode list: %w", err)
		}
		return OrganizationPage{Organizations: bare}, nil
	}
	var body struct {
		Organizations *[]Organization `json:"organizations"`
		Next          string          `json:"next"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return OrganizationPage{}, fmt.Errorf("GET /organizations: decode list: %w", err)
	}
	if body.Organizations == nil {
		return OrganizationPage{}, fmt.Errorf("GET /organizations: the answer has no \"organizations\" list: %s", cut(string(raw), 120))
	}
	return OrganizationPage{Organizations: *body.Organizations, Next: body.Next}, nil
}

// AllOrganizations yields every organization of the tenant, reading pages of MaxTake with
// ListOrganizations until a page has no Next. The first error is yielded (with a zero
// Organization) and ends the sequence; so does a Next that repeats the cursor it was asked
// with, which would loop for ever. Stopping the loop early sends no further request.
func (c *Client) AllOrganizations(ctx context.Context) iter.Seq2[Organization, error] {
	return func(yield func(Organization, error) bool) {
		from := ""
		for range maxOrganizationPages {
			p, err := c.ListOrganizations(ctx, from, MaxTake)
			if err != nil {
				yield(Organization{}, err)
				return
			}
			for _, o := range p.Organizations {
				if !yield(o, nil) {
					return
				}
			}
			switch {
			case p.Next == "":
				return
			case p.Next == from:
				yield(Organization{}, fmt.Errorf("GET /organizations: the page from %q names itself as the next one; stopping", cut(from, 40)))
				return
			}
			from = p.Next
		}
		yield(Organization{}, fmt.Errorf("GET /organizations: more than %d pages", maxOrganizationPages))
	}
}

// OrganizationByName returns the organization named name (GET /organizations/name/{name},
// scope read:organizations, read budget). An unknown name is a 404 *APIError (StatusOf(err)
// == 404), as an unknown organization is everywhere in this package; a name breaking Auth0's
// rules is a 400 *APIError; a name that cannot go into a path is an *InvalidIDError and no
// request is sent.
func (c *Client) OrganizationByName(ctx context.Context, name string) (Organization, error) {
	seg, err := pathID("organization name", name)
	if err != nil {
		return Organization{}, err
	}
	var out Organization
	err = c.do(ctx, request{class: Read, method: http.MethodGet, path: "/organizations/name/" + seg, want: http.StatusOK}, &out)
	return out, err
}

// CountOrganizations asks the offset-paged listing for its total (one request of one
// organization with include_totals), for progress estimates. It returns -1 and no error when
// the answer carries no total (a bare array).
func (c *Client) CountOrganizations(ctx context.Context) (int, error) {
	q := url.Values{}
	q.Set("page", "0")
	q.Set("per_page", "1")
	q.Set("include_totals", "true")
	var raw json.RawMessage
	if err := c.do(ctx, request{class: Read, method: http.MethodGet, path: "/organizations", query: q, want: http.StatusOK}, &raw); err != nil {
		return 0, err
	}
	if len(raw) > 0 && raw[0] == '[' {
		return -1, nil
	}
	var body struct {
		Total *int `json:"total"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return 0, fmt.Errorf("GET /organizations: decode totals: %w", err)
	}
	if body.Total == nil || *body.Total < 0 {
		return -1, nil
	}
	return *body.Total, nil
}
