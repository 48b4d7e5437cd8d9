package mgmttest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// newerPath returns the newer Organization connections path of org, with conn appended when
// given.
func newerPath(org string, conn ...string) string {
	p := "/api/v2/organizations/" + org + "/connections"
	for _, c := range conn {
		p += "/" + c
	}
	return p
}

func TestOrgConnectionsCalls(t *testing.T) {
	s := setup(t, Config{Seed: 21})
	org, other := s.org(0), s.org(1)
	db, saml, google := s.conns("auth0")[0], s.conns("samlp")[0], s.conns("google-oauth2")[0]
	s.srv.SetState(other, map[string]EnabledConnection{saml: {ShowAsButton: true}})
	samlConn := `"connection":{"name":"conn-1-samlp","strategy":"samlp"}`
	dbConn := `"connection":{"name":"conn-0-auth0","strategy":"auth0"}`

	tests := []struct {
		name         string
		method, path string
		body         string
		status       int
		want         string // exact JSON body; "" for none
	}{
		{"create with defaults: level none, no name, enabled", "POST", newerPath(org), `{"connection_id":"` + saml + `"}`, 201,
			`{"connection_id":"` + saml + `","organization_access_level":"none","is_enabled":true,"assign_membership_on_login":false,"show_as_button":true,"is_signup_enabled":false,` + samlConn + `}`},
		{"create twice is a conflict", "POST", newerPath(org), `{"connection_id":"` + saml + `","is_enabled":false}`, 409,
			`{"statusCode":409,"error":"Conflict","message":"The organization connection already exists."}`},
		{"create disabled with every field", "POST", newerPath(org), `{"connection_id":"` + db + `","organization_connection_name":"Staff","organization_access_level":"limited","is_enabled":false,"assign_membership_on_login":true,"is_signup_enabled":true,"show_as_button":false}`, 201,
			`{"connection_id":"` + db + `","organization_connection_name":"Staff","organization_access_level":"limited","is_enabled":false,"assign_membership_on_login":true,"show_as_button":false,"is_signup_enabled":true,` + dbConn + `}`},
		{"create on unknown org", "POST", newerPath("org_nope"), `{"connection_id":"` + saml + `"}`, 404,
			`{"statusCode":404,"error":"Not Found","message":"The organization does not exists."}`},
		{"create of unknown connection", "POST", newerPath(org), `{"connection_id":"con_nope"}`, 404,
			`{"statusCode":404,"error":"Not Found","message":"The connection does not exists."}`},
		{"create with a level but no name", "POST", newerPath(org), `{"connection_id":"` + google + `","organization_access_level":"full"}`, 400,
			`{"statusCode":400,"error":"Bad Request","message":"organization_connection_name is required when organization_access_level is not none.","errorCode":"invalid_body"}`},
		{"create with signup on a social connection", "POST", newerPath(org), `{"connection_id":"` + google + `","assign_membership_on_login":true,"is_signup_enabled":true}`, 400,
			`{"statusCode":400,"error":"Bad Request","message":"Only database connections with assign_membership_on_login = true support is_signup_enabled = true.","errorCode":"invalid_body"}`},
		{"get a disabled one", "GET", newerPath(org, db), "", 200,
			`{"connection_id":"` + db + `","organization_connection_name":"Staff","organization_access_level":"limited","is_enabled":false,"assign_membership_on_login":true,"show_as_button":false,"is_signup_enabled":true,` + dbConn + `}`},
		{"get a legacy-created one", "GET", newerPath(other, saml), "", 200,
			`{"connection_id":"` + saml + `","organization_access_level":"none","is_enabled":true,"assign_membership_on_login":false,"show_as_button":true,"is_signup_enabled":false,` + samlConn + `}`},
		{"get on unknown org", "GET", newerPath("org_nope", saml), "", 404,
			`{"statusCode":404,"error":"Not Found","message":"The organization does not exists."}`},
		{"get one not associated", "GET", newerPath(other, db), "", 404,
			`{"statusCode":404,"error":"Not Found","message":"The organization connection does not exists."}`},
		{"update enables and keeps the settings", "PATCH", newerPath(org, db), `{"is_enabled":true}`, 200,
			`{"connection_id":"` + db + `","organization_connection_name":"Staff","organization_access_level":"limited","is_enabled":true,"assign_membership_on_login":true,"show_as_button":false,"is_signup_enabled":true,` + dbConn + `}`},
		{"update cannot clear the name while the level needs it", "PATCH", newerPath(org, db), `{"organization_connection_name":null}`, 400,
			`{"statusCode":400,"error":"Bad Request","message":"organization_connection_name is required when organization_access_level is not none.","errorCode":"invalid_body"}`},
		{"update with nulls: level none, name cleared, is_enabled kept", "PATCH", newerPath(org, db), `{"organization_connection_name":null,"organization_access_level":null,"is_enabled":null}`, 200,
			`{"connection_id":"` + db + `","organization_access_level":"none","is_enabled":true,"assign_membership_on_login":true,"show_as_button":false,"is_signup_enabled":true,` + dbConn + `}`},
		{"update removing membership keeps the signup rule", "PATCH", newerPath(org, db), `{"assign_membership_on_login":false}`, 400,
			`{"statusCode":400,"error":"Bad Request","message":"Only database connections with assign_membership_on_login = true support is_signup_enabled = true.","errorCode":"invalid_body"}`},
		{"update disables", "PATCH", newerPath(org, saml), `{"is_enabled":false,"organization_connection_name":"SSO","organization_access_level":"readonly"}`, 200,
			`{"connection_id":"` + saml + `","organization_connection_name":"SSO","organization_access_level":"readonly","is_enabled":false,"assign_membership_on_login":false,"show_as_button":true,"is_signup_enabled":false,` + samlConn + `}`},
		{"update on unknown org", "PATCH", newerPath("org_nope", saml), `{"is_enabled":false}`, 404,
			`{"statusCode":404,"error":"Not Found","message":"The organization does not exists."}`},
		{"update one not associated", "PATCH", newerPath(other, db), `{"is_enabled":false}`, 404,
			`{"statusCode":404,"error":"Not Found","message":"The organization connection does not exists."}`},
		{"delete", "DELETE", newerPath(other, saml), "", 204, ""},
		{"delete again is 204 too", "DELETE", newerPath(other, saml), "", 204, ""},
		{"delete on unknown org", "DELETE", newerPath("org_nope", saml), "", 404,
			`{"statusCode":404,"error":"Not Found","message":"The organization does not exists."}`},
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
			wantJSON(t, r, tt.want)
		})
	}
	want := map[string]map[string]EnabledConnection{org: {
		saml: {ConnectionID: saml, ShowAsButton: true, Disabled: true, Name: "SSO", AccessLevel: "readonly"},
		db:   {ConnectionID: db, AssignMembershipOnLogin: true, IsSignupEnabled: true},
	}}
	if got := s.srv.State(); !equalState(got, want) {
		t.Fatalf("State() = %v, want %v", got, want)
	}
	st := s.srv.Stats()
	for _, c := range []struct {
		method, route string
		status, n     int
	}{
		{"POST", RouteOrgConnections, 201, 2}, {"POST", RouteOrgConnections, 409, 1}, {"POST", RouteOrgConnections, 404, 2}, {"POST", RouteOrgConnections, 400, 2},
		{"GET", RouteOrgConnection, 200, 2}, {"GET", RouteOrgConnection, 404, 2},
		{"PATCH", RouteOrgConnection, 200, 3}, {"PATCH", RouteOrgConnection, 400, 2}, {"PATCH", RouteOrgConnection, 404, 2},
		{"DELETE", RouteOrgConnection, 204, 2}, {"DELETE", RouteOrgConnection, 404, 1},
	} {
		if got := st.Count(c.method, c.route, c.status); got != c.n {
			t.Errorf("Stats %s %s %d = %d, want %d", c.method, c.route, c.status, got, c.n)
		}
	}
	if st.Writes != 7 {
		t.Errorf("Stats.Writes = %d, want 7 (2 creates, 3 updates, 2 deletes)", st.Writes)
	}
}

func TestLegacyEndpointsHideDisabledAssociations(t *testing.T) {
	for _, policy := range []struct {
		name     string
		enable   DuplicatePolicy
		remove   MissingPolicy
		delWant  int
		postWant int
	}{
		{"conflict and notfound", Conflict409, NotFound404, 404, 409},
		{"upsert and nocontent", Upsert201, NoContent204, 204, 409},
	} {
		t.Run(policy.name, func(t *testing.T) {
			s := setup(t, Config{Seed: 22, EnableExisting: policy.enable, RemoveMissing: policy.remove})
			org := s.org(0)
			db, saml := s.conns("auth0")[0], s.conns("samlp")[0]
			disabled := EnabledConnection{ConnectionID: saml, AssignMembershipOnLogin: true, Disabled: true, Name: "SSO", AccessLevel: "full"}
			s.srv.SetState(org, map[string]EnabledConnection{saml: disabled, db: {}})

			r := s.do("GET", orgPath(org)+"?include_totals=true", "")
			wantStatus(t, r, 200)
			wantJSON(t, r, `{"enabled_connections":[{"connection_id":"`+db+`","assign_membership_on_login":false,"show_as_button":false,"is_signup_enabled":false,"connection":{"name":"conn-0-auth0","strategy":"auth0"}}],"start":0,"limit":1,"total":1}`)
			for _, c := range []struct{ method, body string }{{"GET", ""}, {"PATCH", `{"show_as_button":false}`}} {
				r := s.do(c.method, orgPath(org, saml), c.body)
				wantStatus(t, r, 404)
				wantJSON(t, r, `{"statusCode":404,"error":"Not Found","message":"No connection found by that id"}`)
			}
			r = s.do("POST", orgPath(org), `{"connection_id":"`+saml+`","show_as_button":false}`)
			wantStatus(t, r, policy.postWant)
			r = s.do("DELETE", orgPath(org, saml), "")
			wantStatus(t, r, policy.delWant)
			if got := s.srv.State()[org][saml]; got != disabled {
				t.Fatalf("the legacy calls changed the disabled association: %+v, want %+v", got, disabled)
			}
			if st := s.srv.Stats(); st.Writes != 0 && policy.delWant == 404 {
				t.Fatalf("refused legacy writes were counted: %v", st)
			}
		})
	}
}

func TestOrgConnectionsList(t *testing.T) {
	s := setup(t, Config{Seed: 23, Connections: 5})
	org := s.org(0)
	all := s.srv.Connections()
	state := map[string]EnabledConnection{}
	for i, c := range all {
		state[c.ID] = EnabledConnection{ShowAsButton: true, Disabled: i%2 == 1}
	}
	s.srv.SetState(org, state)
	list := func(query string) (resp struct {
		Connections []orgConnectionBody `json:"connections"`
		Start       int                 `json:"start"`
		Limit       int                 `json:"limit"`
		Total       int                 `json:"total"`
	}) {
		t.Helper()
		r := s.do("GET", newerPath(org)+query, "")
		wantStatus(t, r, 200)
		if err := json.Unmarshal(r.body, &resp); err != nil {
			t.Fatalf("%s: %v: %s", query, err, r.body)
		}
		return resp
	}
	got := list("?include_totals=true&per_page=2&page=1")
	if got.Start != 2 || got.Limit != 2 || got.Total != 5 || len(got.Connections) != 2 {
		t.Fatalf("page 1 of 2: start %d limit %d total %d items %d, want 2 2 5 2", got.Start, got.Limit, got.Total, len(got.Connections))
	}
	got = list("?include_totals=true&per_page=2&page=2")
	if got.Limit != 2 || len(got.Connections) != 1 {
		t.Fatalf("last page: limit %d (want per_page 2, not the 1 item), items %d", got.Limit, len(got.Connections))
	}
	got = list("?include_totals=true")
	if got.Limit != 50 || got.Total != 5 {
		t.Fatalf("default per_page: limit %d total %d, want 50 and 5", got.Limit, got.Total)
	}
	for _, c := range []struct {
		filter string
		want   bool
		n      int
	}{{"true", true, 3}, {"false", false, 2}} {
		got = list("?include_totals=true&is_enabled=" + c.filter)
		if got.Total != c.n || len(got.Connections) != c.n {
			t.Fatalf("is_enabled=%s: total %d items %d, want %d", c.filter, got.Total, len(got.Connections), c.n)
		}
		for _, oc := range got.Connections {
			if oc.IsEnabled != c.want {
				t.Fatalf("is_enabled=%s returned %+v", c.filter, oc)
			}
		}
	}
	r := s.do("GET", newerPath(org)+"?per_page=3", "")
	wantStatus(t, r, 200)
	var bare []orgConnectionBody
	if err := json.Unmarshal(r.body, &bare); err != nil || len(bare) != 3 {
		t.Fatalf("without include_totals: a bare array of 3 wanted, got %s (%v)", r.body, err)
	}
	r = s.do("GET", newerPath("org_nope"), "")
	wantStatus(t, r, 404)
	wantJSON(t, r, `{"statusCode":404,"error":"Not Found","message":"The organization does not exists."}`)
}

func TestOrgConnectionsValidation(t *testing.T) {
	s := setup(t, Config{Seed: 24})
	org := s.org(0)
	c := s.srv.Connections()[1].ID
	s.srv.SetState(org, map[string]EnabledConnection{c: {ShowAsButton: true}})
	long := strings.Repeat("x", 51)
	const (
		nameDesc  = "Name of the connection in the scope of this organization."
		levelDesc = "Access level of the organization's own administrators to this connection through the My Organization API."
		enDesc    = "Whether the connection is enabled for the organization."
		connDesc  = "Single connection ID to add to the organization."
	)
	tests := []struct {
		name         string
		method, path string
		body         string
		hdr          []string
		status       int
		code         string
		message      string
	}{
		{"org id too long", "GET", newerPath(long), "", nil, 400, "invalid_uri",
			"Path validation error: 'String is too long (51 chars), maximum 50' on property id (Organization identifier)."},
		{"connection id too long", "PATCH", newerPath(org, long), `{"is_enabled":true}`, nil, 400, "invalid_uri",
			"Path validation error: 'String is too long (51 chars), maximum 50' on property connection_id (Connection identifier)."},
		{"empty connection id", "DELETE", newerPath(org, ""), "", nil, 400, "invalid_uri",
			"Path validation error: 'String is too short (0 chars), minimum 1' on property connection_id (Connection identifier)."},
		{"per_page over 100", "GET", newerPath(org) + "?per_page=101", "", nil, 400, "invalid_query_string",
			"Query validation error: 'Value 101 is greater than maximum 100' on property per_page (Number of results per page. Defaults to 50.)."},
		{"per_page zero", "GET", newerPath(org) + "?per_page=0", "", nil, 400, "invalid_query_string",
			"Query validation error: 'Value 0 is less than minimum 1' on property per_page (Number of results per page. Defaults to 50.)."},
		{"is_enabled filter not boolean", "GET", newerPath(org) + "?is_enabled=yes", "", nil, 400, "invalid_query_string",
			"Query validation error: 'Expected type boolean but found type string' on property is_enabled (Return only the connections enabled (true) or disabled (false) for the organization.)."},
		{"POST additional property", "POST", newerPath(org), `{"connection_id":"` + c + `","enabled":true}`, nil, 400, "invalid_body",
			"Payload validation error: 'Additional properties not allowed: enabled'."},
		{"PATCH connection_id is additional", "PATCH", newerPath(org, c), `{"connection_id":"` + c + `"}`, nil, 400, "invalid_body",
			"Payload validation error: 'Additional properties not allowed: connection_id'."},
		{"POST without connection_id", "POST", newerPath(org), `{"is_enabled":true}`, nil, 400, "invalid_body",
			"Payload validation error: 'Missing required property: connection_id'."},
		{"PATCH empty", "PATCH", newerPath(org, c), `{}`, nil, 400, "invalid_body",
			"Payload validation error: 'Too few properties defined (0), minimum 1'."},
		{"POST not JSON content type", "POST", newerPath(org), `{"connection_id":"` + c + `"}`, []string{"Content-Type", "text/plain"}, 400, "invalid_body",
			`Invalid request payload: Content-Type must be application/json, not "text/plain".`},
		{"POST malformed JSON", "POST", newerPath(org), `{"connection_id":`, nil, 400, "invalid_body", "Invalid request payload JSON format"},
		{"POST an array", "POST", newerPath(org), `[]`, nil, 400, "invalid_body", "Payload validation error: 'Expected type object but found type array'."},
		{"POST connection_id too long", "POST", newerPath(org), `{"connection_id":"` + long + `"}`, nil, 400, "invalid_body",
			"Payload validation error: 'String is too long (51 chars), maximum 50' on property connection_id (" + connDesc + ")."},
		{"POST name empty", "POST", newerPath(org), `{"connection_id":"` + c + `","organization_connection_name":""}`, nil, 400, "invalid_body",
			"Payload validation error: 'String is too short (0 chars), minimum 1' on property organization_connection_name (" + nameDesc + ")."},
		{"PATCH name of 51", "PATCH", newerPath(org, c), `{"organization_connection_name":"` + long + `"}`, nil, 400, "invalid_body",
			"Payload validation error: 'String is too long (51 chars), maximum 50' on property organization_connection_name (" + nameDesc + ")."},
		{"POST level not allowed", "POST", newerPath(org), `{"connection_id":"` + c + `","organization_access_level":"admin"}`, nil, 400, "invalid_body",
			`Payload validation error: 'No enum match for: "admin"' on property organization_access_level (` + levelDesc + ")."},
		{"POST level null", "POST", newerPath(org), `{"connection_id":"` + c + `","organization_access_level":null}`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type string but found type null' on property organization_access_level (" + levelDesc + ")."},
		{"POST is_enabled null", "POST", newerPath(org), `{"connection_id":"` + c + `","is_enabled":null}`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type boolean but found type null' on property is_enabled (" + enDesc + ")."},
		{"PATCH is_enabled a string", "PATCH", newerPath(org, c), `{"is_enabled":"true"}`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type boolean,null but found type string' on property is_enabled (" + enDesc + ")."},
		{"PATCH name a number", "PATCH", newerPath(org, c), `{"organization_connection_name":7}`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type string,null but found type integer' on property organization_connection_name (" + nameDesc + ")."},
		{"PATCH show_as_button null", "PATCH", newerPath(org, c), `{"show_as_button":null}`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type boolean but found type null' on property show_as_button (Determines whether a connection should be displayed on this organization’s login prompt. Only applicable for enterprise connections. Default: true.)."},
	}
	before := s.srv.State()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(tt.method, tt.path, tt.body, tt.hdr...)
			wantStatus(t, r, tt.status)
			e := apiErr(t, r)
			if e.ErrorCode != tt.code || e.Message != tt.message || e.StatusCode != tt.status {
				t.Fatalf("got %+v\nwant code %q message %q", e, tt.code, tt.message)
			}
		})
	}
	if after := s.srv.State(); !equalState(after, before) {
		t.Fatalf("refused requests changed state: %v, was %v", after, before)
	}
}

func TestOrgConnectionsScopesLimitsAndFaults(t *testing.T) {
	s := setup(t, Config{Seed: 25, Write: Bucket{Burst: 1, Rate: 1}, Read: Bucket{Burst: 1, Rate: 1}})
	org := s.org(0)
	c := s.srv.Connections()[1].ID
	readOnly := s.srv.IssueToken([]string{ScopeRead}, 0)
	r := s.do("POST", newerPath(org), `{"connection_id":"`+c+`"}`, "Authorization", "Bearer "+readOnly)
	wantStatus(t, r, 403)
	wantJSON(t, r, `{"statusCode":403,"error":"Forbidden","message":"Insufficient scope; expected any of: create:organization_connections","errorCode":"insufficient_scope"}`)
	noRead := s.srv.IssueToken([]string{ScopeCreate}, 0)
	wantStatus(t, s.do("GET", newerPath(org), "", "Authorization", "Bearer "+noRead), 403)
	wantStatus(t, s.do("GET", newerPath(org), "", "Authorization", "Bearer nope"), 401)

	// One write and one read in each bucket, then both are empty: 429 with headers.
	wantStatus(t, s.do("POST", newerPath(org), `{"connection_id":"`+c+`"}`), 201)
	r = s.do("PATCH", newerPath(org, c), `{"is_enabled":false}`)
	wantStatus(t, r, 429)
	if r.header.Get("X-RateLimit-Limit") != "1" || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("429 headers %v", r.header)
	}
	wantStatus(t, s.do("GET", newerPath(org, c), ""), 200)
	wantStatus(t, s.do("GET", newerPath(org), ""), 429)
	s.clock.Advance(time.Second)

	s.srv.SetFaults(Faults{Error5xx: 1})
	wantStatus(t, s.do("DELETE", newerPath(org, c), ""), 503)
	if _, on := s.srv.State()[org][c]; !on {
		t.Fatal("a 503 applied the delete")
	}
	s.srv.SetFaults(Faults{HTML502: 1})
	r = s.do("GET", newerPath(org), "")
	if r.status != http.StatusBadGateway || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("HTML 502 fault: %d %v", r.status, r.header)
	}
	st := s.srv.Stats()
	if st.Throttled != 2 || st.Faults[FaultError5xx] != 1 || st.Faults[FaultHTML502] != 1 {
		t.Fatalf("stats %v", st)
	}
}

func TestTenantWithoutTheNewerEndpoints(t *testing.T) {
	s := setup(t, Config{Seed: 26, NoConnectionsAPI: true})
	org := s.org(0)
	c := s.srv.Connections()[0].ID
	for _, tt := range []struct{ method, path, body string }{
		{"GET", newerPath(org) + "?per_page=1", ""},
		{"GET", newerPath("org_nope") + "?per_page=1", ""},
		{"POST", newerPath(org), `{"connection_id":"` + c + `"}`},
		{"GET", newerPath(org, c), ""},
		{"PATCH", newerPath(org, c), `{"is_enabled":false}`},
		{"DELETE", newerPath(org, c), ""},
	} {
		r := s.do(tt.method, tt.path, tt.body)
		wantStatus(t, r, 404)
		wantJSON(t, r, `{"statusCode":404,"error":"Not Found","message":"Not Found"}`)
	}
	wantStatus(t, s.do("POST", orgPath(org), `{"connection_id":"`+c+`"}`), 201)
	wantStatus(t, s.do("GET", "/api/v2/connections", ""), 200)
	st := s.srv.Stats()
	if st.Count("GET", RouteUnknown, 404) != 3 || st.Count("GET", RouteOrgConnections, 404) != 0 || st.Writes != 1 {
		t.Fatalf("stats %v", st)
	}
	if got := s.srv.State()[org]; len(got) != 1 {
		t.Fatalf("state %v: only the legacy POST may have applied", got)
	}
}
