package mgmttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestEnabledConnectionsCalls(t *testing.T) {
	s := setup(t, Config{Seed: 1})
	org, other := s.org(0), s.org(1)
	db, saml := s.conns("auth0")[0], s.conns("samlp")[0]
	s.srv.SetState(other, map[string]EnabledConnection{saml: {ShowAsButton: true}})

	tests := []struct {
		name         string
		method, path string
		body         string
		status       int
		want         string // exact JSON body; "" for none
	}{
		{"enable with defaults", "POST", orgPath(org), `{"connection_id":"` + saml + `"}`, 201,
			`{"connection_id":"` + saml + `","assign_membership_on_login":false,"show_as_button":true,"is_signup_enabled":false,"connection":{"name":"conn-1-samlp","strategy":"samlp"}}`},
		{"enable twice is a conflict", "POST", orgPath(org), `{"connection_id":"` + saml + `"}`, 409,
			`{"statusCode":409,"error":"Conflict","message":"The connection is already enabled for this organization.","errorCode":"connection_already_enabled"}`},
		{"enable database with signup", "POST", orgPath(org), `{"connection_id":"` + db + `","assign_membership_on_login":true,"is_signup_enabled":true,"show_as_button":false}`, 201,
			`{"connection_id":"` + db + `","assign_membership_on_login":true,"show_as_button":false,"is_signup_enabled":true,"connection":{"name":"conn-0-auth0","strategy":"auth0"}}`},
		{"enable on unknown org", "POST", orgPath("org_nope"), `{"connection_id":"` + saml + `"}`, 404,
			`{"statusCode":404,"error":"Not Found","message":"No organization found by that id or name"}`},
		{"enable unknown connection", "POST", orgPath(org), `{"connection_id":"con_nope"}`, 404,
			`{"statusCode":404,"error":"Not Found","message":"No connection found by that id"}`},
		{"get one", "GET", orgPath(other, saml), "", 200,
			`{"connection_id":"` + saml + `","assign_membership_on_login":false,"show_as_button":true,"is_signup_enabled":false,"connection":{"name":"conn-1-samlp","strategy":"samlp"}}`},
		{"get one on unknown org", "GET", orgPath("org_nope", saml), "", 404,
			`{"statusCode":404,"error":"Not Found","message":"No organization found by that id or name"}`},
		{"get one not enabled", "GET", orgPath(other, db), "", 404,
			`{"statusCode":404,"error":"Not Found","message":"No connection found by that id"}`},
		{"update", "PATCH", orgPath(other, saml), `{"assign_membership_on_login":true}`, 200,
			`{"connection_id":"` + saml + `","assign_membership_on_login":true,"show_as_button":true,"is_signup_enabled":false,"connection":{"name":"conn-1-samlp","strategy":"samlp"}}`},
		{"update not enabled", "PATCH", orgPath(other, db), `{"show_as_button":false}`, 404,
			`{"statusCode":404,"error":"Not Found","message":"No connection found by that id"}`},
		{"update on unknown org", "PATCH", orgPath("org_nope", db), `{"show_as_button":false}`, 404,
			`{"statusCode":404,"error":"Not Found","message":"No organization found by that id or name"}`},
		{"update signup on enterprise", "PATCH", orgPath(other, saml), `{"is_signup_enabled":true}`, 400,
			`{"statusCode":400,"error":"Bad Request","message":"Only database connections with assign_membership_on_login = true support is_signup_enabled = true.","errorCode":"invalid_body"}`},
		{"update removing membership keeps signup rule", "PATCH", orgPath(org, db), `{"assign_membership_on_login":false}`, 400,
			`{"statusCode":400,"error":"Bad Request","message":"Only database connections with assign_membership_on_login = true support is_signup_enabled = true.","errorCode":"invalid_body"}`},
		{"remove", "DELETE", orgPath(other, saml), "", 204, ""},
		{"remove again", "DELETE", orgPath(other, saml), "", 404,
			`{"statusCode":404,"error":"Not Found","message":"No connection found by that id"}`},
		{"remove on unknown org", "DELETE", orgPath("org_nope", saml), "", 404,
			`{"statusCode":404,"error":"Not Found","message":"No organization found by that id or name"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(tt.method, tt.path, tt.body)
			wantStatus(t, r, tt.status)
			if tt.want == "" {
				if len(r.body) != 0 {
					t.Fatalf("body %q, want none", r.body)
				}
				return
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			wantJSON(t, r, tt.want)
		})
	}

	want := map[string]map[string]EnabledConnection{org: {
		saml: {ConnectionID: saml, ShowAsButton: true},
		db:   {ConnectionID: db, AssignMembershipOnLogin: true, IsSignupEnabled: true},
	}}
	if got := s.srv.State(); !equalState(got, want) {
		t.Fatalf("State() = %v, want %v", got, want)
	}
}

func equalState(a, b map[string]map[string]EnabledConnection) bool {
	if len(a) != len(b) {
		return false
	}
	for org, conns := range a {
		other, ok := b[org]
		if !ok || len(other) != len(conns) {
			return false
		}
		for id, ec := range conns {
			if other[id] != ec {
				return false
			}
		}
	}
	return true
}

func TestSignupRuleOnCreate(t *testing.T) {
	s := setup(t, Config{Seed: 2})
	org := s.org(0)
	db, google := s.conns("auth0")[0], s.conns("google-oauth2")[0]
	for _, body := range []string{
		`{"connection_id":"` + db + `","is_signup_enabled":true}`,
		`{"connection_id":"` + db + `","is_signup_enabled":true,"assign_membership_on_login":false}`,
		`{"connection_id":"` + google + `","is_signup_enabled":true,"assign_membership_on_login":true}`,
	} {
		r := s.do("POST", orgPath(org), body)
		wantStatus(t, r, 400)
		if e := apiErr(t, r); e.ErrorCode != "invalid_body" || e.Message != msgSignupNeedsDatabase {
			t.Errorf("%s: got %+v", body, e)
		}
	}
	if st := s.srv.State(); len(st) != 0 {
		t.Fatalf("refused creates changed state: %v", st)
	}
}

func TestEnableExistingUpsert(t *testing.T) {
	s := setup(t, Config{Seed: 3, EnableExisting: Upsert201})
	org, db := s.org(0), s.conns("auth0")[0]
	s.srv.SetState(org, map[string]EnabledConnection{db: {AssignMembershipOnLogin: true, ShowAsButton: false, IsSignupEnabled: true}})

	r := s.do("POST", orgPath(org), `{"connection_id":"`+db+`","show_as_button":true}`)
	wantStatus(t, r, 201)
	wantJSON(t, r, `{"connection_id":"`+db+`","assign_membership_on_login":true,"show_as_button":true,"is_signup_enabled":true,"connection":{"name":"conn-0-auth0","strategy":"auth0"}}`)

	// The resulting state must still satisfy the signup rule.
	r = s.do("POST", orgPath(org), `{"connection_id":"`+db+`","assign_membership_on_login":false}`)
	wantStatus(t, r, 400)
	if got := s.srv.State()[org][db]; !got.AssignMembershipOnLogin || !got.ShowAsButton || !got.IsSignupEnabled {
		t.Fatalf("state after upsert = %+v", got)
	}
	if n := s.srv.Stats().Count("POST", RouteEnabledConnections, 201); n != 1 {
		t.Fatalf("POST 201 count %d, want 1", n)
	}
}

func TestRemoveMissingNoContent(t *testing.T) {
	s := setup(t, Config{Seed: 4, RemoveMissing: NoContent204})
	org, c := s.org(0), s.srv.Connections()[0].ID
	wantStatus(t, s.do("DELETE", orgPath(org, c), ""), 204)
	wantStatus(t, s.do("DELETE", orgPath(org, "con_notatenantconnection"), ""), 204)
	// An unknown organization is still a 404.
	r := s.do("DELETE", orgPath("org_nope", c), "")
	wantStatus(t, r, 404)
	if e := apiErr(t, r); e.Message != msgNoOrganization {
		t.Fatalf("message %q", e.Message)
	}
}

func TestListPaging(t *testing.T) {
	s := setup(t, Config{Seed: 5, Connections: 8})
	org := s.org(3)
	all := map[string]EnabledConnection{}
	var ids []string
	for _, c := range s.srv.Connections() {
		all[c.ID] = EnabledConnection{ShowAsButton: true}
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	s.srv.SetState(org, all)

	type page struct {
		EnabledConnections []enabledConnectionBody `json:"enabled_connections"`
		Start              int                     `json:"start"`
		Limit              int                     `json:"limit"`
		Total              int                     `json:"total"`
	}
	var got []string
	for p := 0; ; p++ {
		r := s.do("GET", fmt.Sprintf("%s?page=%d&per_page=3&include_totals=true", orgPath(org), p), "")
		wantStatus(t, r, 200)
		var pg page
		if err := json.Unmarshal(r.body, &pg); err != nil {
			t.Fatalf("page %d: %v", p, err)
		}
		if pg.Start != p*3 || pg.Limit != len(pg.EnabledConnections) || pg.Total != 8 {
			t.Fatalf("page %d: start %d limit %d total %d (%d items)", p, pg.Start, pg.Limit, pg.Total, len(pg.EnabledConnections))
		}
		for _, ec := range pg.EnabledConnections {
			got = append(got, ec.ConnectionID)
		}
		if pg.Start+pg.Limit >= pg.Total {
			break
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("paged ids %v, want sorted %v", got, ids)
	}

	// Without include_totals: a bare array, the default page size 50.
	r := s.do("GET", orgPath(org), "")
	wantStatus(t, r, 200)
	var bare []enabledConnectionBody
	if err := json.Unmarshal(r.body, &bare); err != nil || len(bare) != 8 {
		t.Fatalf("bare list: %v, %d items: %s", err, len(bare), r.body)
	}
	if bare[0].ConnectionID != ids[0] || bare[0].Connection.Name == "" || bare[0].Connection.Strategy == "" {
		t.Fatalf("first item %+v", bare[0])
	}

	// Past the end: an empty array, not null.
	r = s.do("GET", orgPath(org)+"?page=9&per_page=100", "")
	wantStatus(t, r, 200)
	if string(r.body) != "[]" {
		t.Fatalf("past the end: %s", r.body)
	}
	r = s.do("GET", orgPath(s.org(4))+"?include_totals=true&page=2&per_page=10", "")
	wantJSON(t, r, `{"enabled_connections":[],"start":20,"limit":0,"total":0}`)

	r = s.do("GET", orgPath("org_nope"), "")
	wantStatus(t, r, 404)
	wantJSON(t, r, `{"statusCode":404,"error":"Not Found","message":"No organization found by that id or name"}`)
}

func TestUnknownRoutes(t *testing.T) {
	s := setup(t, Config{Seed: 6, Global: Bucket{Burst: 5, Rate: 1}})
	org := s.org(0)
	for _, tt := range []struct{ method, path string }{
		{"PUT", orgPath(org)},
		{"DELETE", orgPath(org)},
		{"POST", orgPath(org, "con_x")},
		{"GET", "/api/v2/organizations/" + org},
		{"GET", "/api/v2/users"},
		{"GET", "/api/v2"},
		{"GET", orgPath(org, "con_x", "extra")},
		{"GET", "/api/v2/organizations/" + org + "/members"},
		{"PUT", "/api/v2/organizations/" + org + "/connections"},
	} {
		r := s.do(tt.method, tt.path, "")
		wantStatus(t, r, 404)
		wantJSON(t, r, `{"statusCode":404,"error":"Not Found","message":"Not Found"}`)
		if r.header.Get("X-RateLimit-Limit") != "5" {
			t.Errorf("%s %s: no rate-limit headers: %v", tt.method, tt.path, r.header)
		}
	}
	if st := s.srv.Stats(); st.Count("GET", RouteUnknown, 404) != 5 || st.Count("PUT", RouteUnknown, 404) != 2 || st.Total != 9 {
		t.Fatalf("stats %v", st)
	}
	// Outside /api/v2 there are no rate-limit headers.
	r := s.do("GET", "/nothing", "")
	wantStatus(t, r, 404)
	if r.header.Get("X-RateLimit-Limit") != "" {
		t.Fatalf("headers outside /api/v2: %v", r.header)
	}
}

func TestPathSegmentsAreDecoded(t *testing.T) {
	s := setup(t, Config{Seed: 7})
	s.srv.SetState("org with/slash", nil)
	c := s.srv.Connections()[0].ID
	r := s.do("POST", orgPath("org%20with%2Fslash"), `{"connection_id":"`+c+`"}`)
	wantStatus(t, r, 201)
	if _, ok := s.srv.State()["org with/slash"][c]; !ok {
		t.Fatalf("state %v", s.srv.State())
	}
	wantStatus(t, s.do("GET", orgPath("org%20with%2Fslash", strings.ReplaceAll(c, "_", "%5F")), ""), 200)
}

func TestErrorsAreAuth0Shaped(t *testing.T) {
	s := setup(t, Config{Seed: 8})
	r := s.do("GET", orgPath("org_nope"), "")
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	if _, has := m["errorCode"]; has {
		t.Fatalf("404 carries errorCode: %s", r.body)
	}
	if m["statusCode"] != float64(http.StatusNotFound) || m["error"] != "Not Found" {
		t.Fatalf("body %s", r.body)
	}
}
