package mgmt

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// simOrgs returns the simulator's organizations sorted by id, the order it lists them in.
func simOrgs(sim *mgmttest.Server) []Organization {
	var out []Organization
	for _, o := range sim.Organizations() {
		out = append(out, Organization{ID: o.ID, Name: o.Name, DisplayName: o.DisplayName})
	}
	slices.SortFunc(out, func(a, b Organization) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func TestListOrganizationsPagesWithCheckpoints(t *testing.T) {
	e := setup(t, mgmttest.Config{Orgs: 7})
	ctx := context.Background()
	want := simOrgs(e.sim)

	p1, err := e.client.ListOrganizations(ctx, "", 3)
	if err != nil {
		t.Fatalf("first page: %v", err)
	}
	if !slices.Equal(p1.Organizations, want[:3]) || p1.Next == "" {
		t.Fatalf("first page = %+v, want the first 3 organizations and a next cursor", p1)
	}
	p2, err := e.client.ListOrganizations(ctx, p1.Next, 3)
	if err != nil || !slices.Equal(p2.Organizations, want[3:6]) || p2.Next == "" {
		t.Fatalf("second page = %+v, %v", p2, err)
	}
	p3, err := e.client.ListOrganizations(ctx, p2.Next, 3)
	if err != nil || !slices.Equal(p3.Organizations, want[6:]) || p3.Next != "" {
		t.Fatalf("last page = %+v, %v; want the 7th organization and no next", p3, err)
	}
	calls := e.pacer.take()
	if len(calls) != 6 {
		t.Fatalf("pacer saw %d calls, want a Wait and an Observe for each of 3 requests", len(calls))
	}
	for _, c := range calls {
		if c.class != Read {
			t.Errorf("pacer call %+v: class %v, want read", c, c.class)
		}
	}
	if n := e.sim.Stats().Count(http.MethodGet, mgmttest.RouteOrganizations, 200); n != 3 {
		t.Errorf("%d listing requests answered 200, want 3", n)
	}

	for _, take := range []int{0, MaxTake + 1} {
		if _, err := e.client.ListOrganizations(ctx, "", take); err == nil || !strings.Contains(err.Error(), "want 1 to 100") {
			t.Errorf("take %d: %v, want a refusal naming the range", take, err)
		}
	}
	if n := e.sim.Stats().Total; n != 3 {
		t.Errorf("a refused take sent a request: %d in all", n)
	}
}

func TestListOrganizationsErrors(t *testing.T) {
	e := setup(t, mgmttest.Config{Orgs: 3, Read: mgmttest.Bucket{Burst: 1, Rate: 0.001}})
	ctx := context.Background()
	_, err := e.client.ListOrganizations(ctx, "!!", 10)
	wantAPIError(t, err, APIError{Method: "GET", Path: "/organizations", Status: 400, Reason: "Bad Request", ErrorCode: "invalid_query_string",
		Message: "Query validation error: 'Invalid checkpoint' on property from (Optional Id from which to start selection.)."})
	_, err = e.client.ListOrganizations(ctx, "", 10)
	if StatusOf(err) != http.StatusTooManyRequests {
		t.Fatalf("empty read bucket: %v, want a 429", err)
	}
	var ae *APIError
	if errors.As(err, &ae); !ae.RateLimit.Present || ae.RateLimit.Remaining != 0 {
		t.Errorf("429 carries rate limit %+v, want the headers", ae.RateLimit)
	}

	noScope := setup(t, mgmttest.Config{Orgs: 3, Scopes: []string{mgmttest.ScopeRead}})
	_, err = noScope.client.ListOrganizations(ctx, "", 10)
	wantAPIError(t, err, APIError{Method: "GET", Path: "/organizations", Status: 403, Reason: "Forbidden", ErrorCode: "insufficient_scope",
		Message: "Insufficient scope; expected any of: read:organizations"})
	noSecret(t, err)
}

func TestListOrganizationsBodies(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       OrganizationPage
		err        string
	}{
		{"checkpoint page", `{"organizations":[{"id":"org_1","name":"a","display_name":"A"}],"next":"x"}`,
			OrganizationPage{Organizations: []Organization{{"org_1", "a", "A"}}, Next: "x"}, ""},
		{"last page", `{"organizations":[{"id":"org_1","name":"a"}]}`, OrganizationPage{Organizations: []Organization{{ID: "org_1", Name: "a"}}}, ""},
		{"empty last page", `{"organizations":[]}`, OrganizationPage{Organizations: []Organization{}}, ""},
		{"extra fields are ignored", `{"organizations":[{"id":"org_1","name":"a","branding":{"logo_url":"x"},"metadata":{}}],"start":0}`,
			OrganizationPage{Organizations: []Organization{{ID: "org_1", Name: "a"}}}, ""},
		{"bare array is the last page", `[{"id":"org_1","name":"a"}]`, OrganizationPage{Organizations: []Organization{{ID: "org_1", Name: "a"}}}, ""},
		{"no list", `{"next":"x"}`, OrganizationPage{}, `no "organizations" list`},
		{"not JSON", `<html>`, OrganizationPage{}, "decode"},
		{"wrong types", `{"organizations":{"id":1}}`, OrganizationPage{}, "decode list"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v2/organizations" || r.URL.Query().Get("take") != "100" || r.URL.Query().Get("from") != "c" {
					t.Errorf("request %s", r.URL)
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tt.body))
			}))
			c := newClient(t, Config{BaseURL: base, Tokens: StaticToken("t")})
			got, err := c.ListOrganizations(context.Background(), "c", 100)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil || got.Next != tt.want.Next || !slices.Equal(got.Organizations, tt.want.Organizations) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestAllOrganizationsReadsEveryPageOnce(t *testing.T) {
	e := setup(t, mgmttest.Config{Orgs: 250})
	var got []Organization
	for o, err := range e.client.AllOrganizations(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, o)
	}
	if want := simOrgs(e.sim); !slices.Equal(got, want) {
		t.Fatalf("AllOrganizations yielded %d organizations, want all %d in id order", len(got), len(want))
	}
	if n := e.sim.Stats().Count(http.MethodGet, mgmttest.RouteOrganizations, 200); n != 3 {
		t.Errorf("%d listing requests, want 3 pages of 100", n)
	}

	// Breaking out early sends no further request.
	before := e.sim.Stats().Total
	for range e.client.AllOrganizations(context.Background()) {
		break
	}
	if n := e.sim.Stats().Total - before; n != 1 {
		t.Errorf("a loop left after the first organization sent %d requests, want 1", n)
	}
}

func TestAllOrganizationsStopsOnErrorsAndLoops(t *testing.T) {
	pages := 0
	base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pages++
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"organizations":[{"id":"org_1","name":"a"}],"next":"same"}`))
	}))
	c := newClient(t, Config{BaseURL: base, Tokens: StaticToken("t")})
	var errs []error
	n := 0
	for _, err := range c.AllOrganizations(context.Background()) {
		if err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "names itself as the next one") || pages != 2 || n != 2 {
		t.Errorf("a cursor repeating itself: %d pages, %d organizations, errors %v; want 2 pages and one error", pages, n, errs)
	}

	e := setup(t, mgmttest.Config{Scopes: []string{mgmttest.ScopeRead}})
	errs = nil
	for _, err := range e.client.AllOrganizations(context.Background()) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || StatusOf(errs[0]) != http.StatusForbidden {
		t.Errorf("without read:organizations: %v, want one 403", errs)
	}
}

func TestOrganizationByName(t *testing.T) {
	e := setup(t, mgmttest.Config{Orgs: 3})
	ctx := context.Background()
	org := e.org()
	e.sim.SetOrgName(org, "acme-corp", "Acme Corp")

	got, err := e.client.OrganizationByName(ctx, "acme-corp")
	if err != nil || got != (Organization{ID: org, Name: "acme-corp", DisplayName: "Acme Corp"}) {
		t.Fatalf("OrganizationByName = %+v, %v", got, err)
	}
	if c := e.pacer.take(); len(c) != 2 || c[0].class != Read || c[1].ex.Status != 200 {
		t.Errorf("pacer saw %+v, want one read", c)
	}

	_, err = e.client.OrganizationByName(ctx, "nobody")
	wantAPIError(t, err, APIError{Method: "GET", Path: "/organizations/name/nobody", Status: 404, Reason: "Not Found",
		Message: "No organization found by that id or name"})

	_, err = e.client.OrganizationByName(ctx, "Acme")
	wantAPIError(t, err, APIError{Method: "GET", Path: "/organizations/name/Acme", Status: 400, Reason: "Bad Request", ErrorCode: "invalid_uri",
		Message: "Path validation error: 'String does not match pattern ^[a-z0-9_-]+$: Acme' on property name (name of the organization to retrieve.)."})

	before := e.sim.Stats().Total
	for _, bad := range []string{"", "a/b", "..", "a b"} {
		_, err := e.client.OrganizationByName(ctx, bad)
		var ie *InvalidIDError
		if !errors.As(err, &ie) || ie.Field != "organization name" {
			t.Errorf("OrganizationByName(%q) = %v, want an *InvalidIDError", bad, err)
		}
	}
	if e.sim.Stats().Total != before {
		t.Error("a name that cannot go into a path was sent")
	}

	noScope := setup(t, mgmttest.Config{Scopes: []string{mgmttest.ScopeRead}})
	_, err = noScope.client.OrganizationByName(ctx, "acme")
	if StatusOf(err) != http.StatusForbidden {
		t.Errorf("without read:organizations: %v, want 403", err)
	}
}

func TestCountOrganizations(t *testing.T) {
	e := setup(t, mgmttest.Config{Orgs: 1234})
	n, err := e.client.CountOrganizations(context.Background())
	if err != nil || n != 1234 {
		t.Fatalf("CountOrganizations = %d, %v; want 1234", n, err)
	}
	for _, tt := range []struct {
		body string
		want int
		err  bool
	}{
		{`[{"id":"org_1"}]`, -1, false},
		{`{"organizations":[],"start":0,"limit":0}`, -1, false},
		{`{"organizations":[],"total":"many"}`, 0, true},
	} {
		base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if q := r.URL.Query(); q.Get("include_totals") != "true" || q.Get("per_page") != "1" {
				t.Errorf("request %s", r.URL)
			}
			_, _ = w.Write([]byte(tt.body))
		}))
		c := newClient(t, Config{BaseURL: base, Tokens: StaticToken("t")})
		n, err := c.CountOrganizations(context.Background())
		if n != tt.want || (err != nil) != tt.err {
			t.Errorf("body %s: %d, %v; want %d, error %v", tt.body, n, err, tt.want, tt.err)
		}
	}
}
