package mgmttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSeededOrganizationsHaveValidUniqueDeterministicNames(t *testing.T) {
	a, b := New(Config{Seed: 7, Orgs: 300}), New(Config{Seed: 7, Orgs: 300})
	if !slices.Equal(a.Organizations(), b.Organizations()) {
		t.Fatal("two tenants from the same Config have different organization names")
	}
	if other := New(Config{Seed: 8, Orgs: 300}); slices.Equal(a.Organizations(), other.Organizations()) {
		t.Fatal("tenants from different seeds have the same organization names")
	}
	seen := map[string]bool{}
	for i, o := range a.Organizations() {
		if o.ID != a.Orgs()[i] {
			t.Fatalf("Organizations()[%d].ID = %s, want Orgs()[%d] = %s", i, o.ID, i, a.Orgs()[i])
		}
		if p := CheckOrgName(o.Name); p != "" {
			t.Errorf("org %s: name %q breaks Auth0's rules: %s", o.ID, o.Name, p)
		}
		if seen[o.Name] {
			t.Errorf("org %s: name %q is not unique", o.ID, o.Name)
		}
		seen[o.Name] = true
		if o.DisplayName == "" || !strings.HasSuffix(o.Name, fmt.Sprint("-", i)) {
			t.Errorf("org %d: %+v: want a display name and a name ending in its index", i, o)
		}
		if name, ok := a.OrgName(o.ID); !ok || name != o.Name {
			t.Errorf("OrgName(%s) = %q, %v; want %q", o.ID, name, ok, o.Name)
		}
	}
	if _, ok := a.OrgName("org_nope"); ok {
		t.Error("OrgName of an unknown organization reports it known")
	}
}

func TestCheckOrgName(t *testing.T) {
	for name, wantOK := range map[string]bool{
		"acme": true, "a": true, "acme_corp-2": true, strings.Repeat("a", 50): true, "org-1": true,
		"": false, strings.Repeat("a", 51): false, "Acme": false, "acme corp": false, "acme.corp": false,
		"org_acme": false, "é": false,
	} {
		if got := CheckOrgName(name) == ""; got != wantOK {
			t.Errorf("CheckOrgName(%q) = %q; want ok=%v", name, CheckOrgName(name), wantOK)
		}
	}
}

func TestSetStateAndSetOrgNameName(t *testing.T) {
	s := New(Config{Orgs: -1})
	s.SetState("org_1", nil)
	s.SetState("Weird.ID", nil)
	if name, _ := s.OrgName("org_1"); name != "org-1" {
		t.Errorf("an org added by SetState as org_1 is named %q, want org-1", name)
	}
	if name, _ := s.OrgName("Weird.ID"); name != "weird-id" {
		t.Errorf("an org added by SetState as Weird.ID is named %q, want weird-id", name)
	}
	s.SetOrgName("org_1", "acme", "Acme Inc.")
	s.SetState("acme", nil) // an id equal to a taken name gets another name
	if name, _ := s.OrgName("acme"); name != "acme-2" {
		t.Errorf("org acme added while the name acme is taken is named %q, want acme-2", name)
	}
	if got := s.Organizations()[0]; got != (Organization{ID: "org_1", Name: "acme", DisplayName: "Acme Inc."}) {
		t.Errorf("after SetOrgName: %+v", got)
	}
	for _, tt := range []struct{ id, name, panics string }{
		{"org_nope", "x", "no such organization"},
		{"org_1", "Bad Name", "does not match"},
		{"org_1", "org_x", "must not start with org_"},
		{"Weird.ID", "acme", "already has that name"},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), tt.panics) {
					t.Errorf("SetOrgName(%q, %q): panic %v, want one saying %q", tt.id, tt.name, r, tt.panics)
				}
			}()
			s.SetOrgName(tt.id, tt.name, "")
		}()
	}
}

// orgsPage decodes a listing body with organizations under "organizations" or as a bare array.
func orgIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var list []Organization
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
	} else {
		var obj struct {
			Organizations []Organization `json:"organizations"`
		}
		if err := json.Unmarshal(body, &obj); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		list = obj.Organizations
	}
	ids := []string{}
	for _, o := range list {
		ids = append(ids, o.ID)
	}
	return ids
}

func TestListOrganizationsOffsetPaging(t *testing.T) {
	s := setup(t, Config{Seed: 3, Orgs: 1050})
	all := slices.Sorted(slices.Values(s.srv.Orgs()))
	first := s.srv.Organizations()
	byID := map[string]Organization{}
	for _, o := range first {
		byID[o.ID] = o
	}

	r := s.do("GET", "/api/v2/organizations", "")
	wantStatus(t, r, 200)
	if got := orgIDs(t, r.body); !slices.Equal(got, all[:50]) {
		t.Fatalf("default page: %d organizations, want the first 50 by id", len(got))
	}
	var bare []Organization
	_ = json.Unmarshal(r.body, &bare)
	if bare[0] != byID[all[0]] {
		t.Errorf("first item %+v, want %+v", bare[0], byID[all[0]])
	}

	r = s.do("GET", "/api/v2/organizations?page=2&per_page=100&include_totals=true", "")
	wantStatus(t, r, 200)
	var tot orgsWithTotals
	if err := json.Unmarshal(r.body, &tot); err != nil {
		t.Fatal(err)
	}
	if tot.Start != 200 || tot.Limit != 100 || tot.Total != 1050 || len(tot.Organizations) != 100 || tot.Organizations[0].ID != all[200] {
		t.Errorf("page 2 of 100 with totals: start %d limit %d total %d, %d items", tot.Start, tot.Limit, tot.Total, len(tot.Organizations))
	}

	// A page straddling the 1,000th organization is cut there.
	r = s.do("GET", "/api/v2/organizations?page=19&per_page=52&include_totals=true", "")
	wantStatus(t, r, 200)
	if got := orgIDs(t, r.body); !slices.Equal(got, all[988:1000]) {
		t.Errorf("page straddling 1,000: %d items, want the 12 up to the 1,000th", len(got))
	}
	// A page beyond it is refused.
	r = s.do("GET", "/api/v2/organizations?page=10&per_page=100", "")
	wantStatus(t, r, 400)
	wantJSON(t, r, `{"statusCode":400,"error":"Bad Request","message":"`+msgPagingLimit+`","errorCode":"invalid_paging"}`)
	// So is a page whose start overflows.
	wantStatus(t, s.do("GET", "/api/v2/organizations?page=9223372036854775807&per_page=100", ""), 400)

	small := setup(t, Config{Orgs: 3})
	r = small.do("GET", "/api/v2/organizations?page=5&include_totals=true", "")
	wantStatus(t, r, 200)
	wantJSON(t, r, `{"organizations":[],"start":250,"limit":0,"total":3}`)
}

func TestListOrganizationsCheckpointPaging(t *testing.T) {
	s := setup(t, Config{Seed: 5, Orgs: 250})
	all := slices.Sorted(slices.Values(s.srv.Orgs()))
	var got []string
	from := ""
	pages := 0
	for {
		path := "/api/v2/organizations?take=100"
		if from != "" {
			path += "&from=" + from
		}
		r := s.do("GET", path, "")
		wantStatus(t, r, 200)
		var page map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		if _, has := page["total"]; has {
			t.Fatalf("checkpoint page carries totals: %s", r.body)
		}
		got = append(got, orgIDs(t, r.body)...)
		pages++
		next, has := page["next"]
		if !has {
			break
		}
		if err := json.Unmarshal(next, &from); err != nil || from == "" {
			t.Fatalf("next %s: %v", next, err)
		}
	}
	if pages != 3 || !slices.Equal(got, all) {
		t.Fatalf("checkpoint paging: %d pages, %d organizations; want 3 pages and all 250 in id order", pages, len(got))
	}

	// take defaults to 50 when only from is given; the last page of exactly take items has no next.
	r := s.do("GET", "/api/v2/organizations?take=50", "")
	var p orgsCheckpoint
	_ = json.Unmarshal(r.body, &p)
	r = s.do("GET", "/api/v2/organizations?from="+p.Next, "")
	if ids := orgIDs(t, r.body); len(ids) != 50 || ids[0] != all[50] {
		t.Errorf("from without take: %d items from %v, want 50 from %s", len(ids), ids[:1], all[50])
	}
	exact := setup(t, Config{Orgs: 4})
	r = exact.do("GET", "/api/v2/organizations?take=4", "")
	wantStatus(t, r, 200)
	if strings.Contains(string(r.body), `"next"`) || len(orgIDs(t, r.body)) != 4 {
		t.Errorf("the only page: %s; want 4 organizations and no next", r.body)
	}
}

func TestListOrganizationsValidation(t *testing.T) {
	s := setup(t, Config{Orgs: 3})
	q := func(what, prop string) string {
		return fmt.Sprintf(`{"statusCode":400,"error":"Bad Request","message":"Query validation error: '%s' on property %s (%s).","errorCode":"invalid_query_string"}`, what, prop, propertyDescriptions[prop])
	}
	for _, tt := range []struct{ query, want string }{
		{"take=0", q("Value 0 is less than minimum 1", "take")},
		{"take=101", q("Value 101 is greater than maximum 100", "take")},
		{"take=x", q("Expected type integer but found type string", "take")},
		{"take=1&take=2", q("Expected type integer but found type array", "take")},
		{"from=%21%21", q("Invalid checkpoint", "from")},
		{"from=" + "Y29uXzE", q("Invalid checkpoint", "from")}, // "con_1": not an organization id
		{"from=", q("Invalid checkpoint", "from")},
		{"take=10&page=1", q("Cannot be combined with checkpoint pagination (from, take)", "page")},
		{"take=10&include_totals=true", q("Cannot be combined with checkpoint pagination (from, take)", "include_totals")},
		{"per_page=0", q("Value 0 is less than minimum 1", "per_page")},
		{"per_page=101", q("Value 101 is greater than maximum 100", "per_page")},
		{"page=-1", q("Value -1 is less than minimum 0", "page")},
		{"include_totals=yes", q("Expected type boolean but found type string", "include_totals")},
	} {
		r := s.do("GET", "/api/v2/organizations?"+tt.query, "")
		if r.status != 400 {
			t.Errorf("?%s: status %d, want 400; body %s", tt.query, r.status, r.body)
			continue
		}
		var got, want any
		_ = json.Unmarshal(r.body, &got)
		_ = json.Unmarshal([]byte(tt.want), &want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("?%s:\n got  %s\n want %s", tt.query, r.body, tt.want)
		}
	}
	if r := s.do("POST", "/api/v2/organizations", `{}`); r.status != 404 {
		t.Errorf("POST /organizations: status %d, want 404 (not simulated)", r.status)
	}
}

func TestOrganizationByName(t *testing.T) {
	s := setup(t, Config{Orgs: 3})
	org := s.org(1)
	s.srv.SetOrgName(org, "acme_corp-2", "Acme Corp")
	for _, tt := range []struct {
		name, path string
		status     int
		want       string
	}{
		{"known", "/api/v2/organizations/name/acme_corp-2", 200, `{"id":"` + org + `","name":"acme_corp-2","display_name":"Acme Corp"}`},
		{"escaped", "/api/v2/organizations/name/acme%5Fcorp-2", 200, `{"id":"` + org + `","name":"acme_corp-2","display_name":"Acme Corp"}`},
		{"unknown", "/api/v2/organizations/name/nobody", 404, `{"statusCode":404,"error":"Not Found","message":"No organization found by that id or name"}`},
		{"upper case", "/api/v2/organizations/name/Acme", 400,
			`{"statusCode":400,"error":"Bad Request","message":"Path validation error: 'String does not match pattern ^[a-z0-9_-]+$: Acme' on property name (name of the organization to retrieve.).","errorCode":"invalid_uri"}`},
		{"an id", "/api/v2/organizations/name/" + org, 400,
			`{"statusCode":400,"error":"Bad Request","message":"Path validation error: 'String does not match pattern ^[a-z0-9_-]+$: ` + org + `' on property name (name of the organization to retrieve.).","errorCode":"invalid_uri"}`},
		{"org_ prefix", "/api/v2/organizations/name/org_x", 400,
			`{"statusCode":400,"error":"Bad Request","message":"Path validation error: 'String must not start with org_: org_x' on property name (name of the organization to retrieve.).","errorCode":"invalid_uri"}`},
		{"empty", "/api/v2/organizations/name/", 400,
			`{"statusCode":400,"error":"Bad Request","message":"Path validation error: 'String is too short (0 chars), minimum 1' on property name (name of the organization to retrieve.).","errorCode":"invalid_uri"}`},
		{"too long", "/api/v2/organizations/name/" + strings.Repeat("a", 51), 400,
			`{"statusCode":400,"error":"Bad Request","message":"Path validation error: 'String is too long (51 chars), maximum 50' on property name (name of the organization to retrieve.).","errorCode":"invalid_uri"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("GET", tt.path, "")
			wantStatus(t, r, tt.status)
			wantJSON(t, r, tt.want)
		})
	}
	if r := s.do("DELETE", "/api/v2/organizations/name/acme_corp-2", ""); r.status != 404 {
		t.Errorf("DELETE by name: status %d, want 404", r.status)
	}
	if r := s.do("GET", "/api/v2/organizations/name/a/b", ""); r.status != 404 {
		t.Errorf("a name with a slash: status %d, want 404", r.status)
	}
}

func TestOrganizationReadsNeedScopeAndSpendReadBudget(t *testing.T) {
	s := setup(t, Config{Orgs: 3, Read: Bucket{Burst: 2, Rate: 1}, HeaderPolicy: EndpointOnly})
	noScope := s.srv.IssueToken([]string{ScopeRead}, 0)
	for _, path := range []string{"/api/v2/organizations", "/api/v2/organizations/name/acme"} {
		r := s.do("GET", path, "", "Authorization", "Bearer "+noScope)
		wantStatus(t, r, 403)
		wantJSON(t, r, `{"statusCode":403,"error":"Forbidden","message":"Insufficient scope; expected any of: read:organizations","errorCode":"insufficient_scope"}`)
		wantStatus(t, s.do("GET", path, "", "Authorization", "Bearer nope"), 401)
	}
	// The read bucket (burst 2) serves the organization reads like any other read.
	r := s.do("GET", "/api/v2/organizations?take=1", "")
	wantStatus(t, r, 200)
	if got := r.header.Get("X-RateLimit-Remaining"); got != "1" {
		t.Errorf("after one read: X-RateLimit-Remaining %q, want 1", got)
	}
	wantStatus(t, s.do("GET", orgPath(s.org(0)), ""), 200)
	r = s.do("GET", "/api/v2/organizations/name/acme", "")
	wantStatus(t, r, 429)
	if e := apiErr(t, r); e.ErrorCode != codeTooManyRequests {
		t.Errorf("429 body %s", r.body)
	}

	st := s.srv.Stats()
	for key, want := range map[string]int{
		StatsKey("GET", RouteOrganizations, 200):      1,
		StatsKey("GET", RouteOrganizations, 403):      1,
		StatsKey("GET", RouteOrganizations, 401):      1,
		StatsKey("GET", RouteOrganizationByName, 403): 1,
		StatsKey("GET", RouteOrganizationByName, 401): 1,
		StatsKey("GET", RouteOrganizationByName, 429): 1,
		StatsKey("GET", RouteEnabledConnections, 200): 1,
	} {
		if st.ByRoute[key] != want {
			t.Errorf("Stats.ByRoute[%q] = %d, want %d (%v)", key, st.ByRoute[key], want, st)
		}
	}
}

func TestConnectionReadsCountsListsAnsweredByOrganization(t *testing.T) {
	s := setup(t, Config{Orgs: 3, Read: Bucket{Burst: 3, Rate: 1}})
	a, b := s.org(0), s.org(1)
	wantStatus(t, s.do("GET", orgPath(a), ""), 200)
	wantStatus(t, s.do("GET", orgPath(a)+"?page=1", ""), 200)
	wantStatus(t, s.do("GET", orgPath(b), ""), 200)
	wantStatus(t, s.do("GET", orgPath(b), ""), http.StatusTooManyRequests)
	wantStatus(t, s.do("GET", orgPath("org_nope"), ""), http.StatusTooManyRequests)
	s.clock.Advance(time.Second)
	wantStatus(t, s.do("GET", "/api/v2/organizations/"+b+"/connections", ""), 200)
	got := s.srv.ConnectionReads()
	if len(got) != 2 || got[a] != 2 || got[b] != 2 {
		t.Errorf("ConnectionReads = %v, want %s:2 %s:2 (one legacy, one newer list) and nothing else", got, a, b)
	}
	got[a] = 99
	if s.srv.ConnectionReads()[a] != 2 {
		t.Error("ConnectionReads returns the live map, not a copy")
	}
}
