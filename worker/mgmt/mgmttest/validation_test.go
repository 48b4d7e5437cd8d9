package mgmttest

import (
	"net/http"
	"strings"
	"testing"
)

func TestValidationErrors(t *testing.T) {
	s := setup(t, Config{Seed: 9})
	org := s.org(0)
	c := s.srv.Connections()[1].ID
	s.srv.SetState(org, map[string]EnabledConnection{c: {ShowAsButton: true}})
	long := strings.Repeat("x", 51)
	const (
		showDesc = "Determines whether a connection should be displayed on this organization’s login prompt. Only applicable for enterprise connections. Default: true."
		connDesc = "Single connection ID to add to the organization."
		pageDesc = "Page index of the results to return. First page is 0."
		perDesc  = "Number of results per page. Defaults to 50."
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
		{"org id too long", "GET", orgPath(long), "", nil, 400, "invalid_uri",
			"Path validation error: 'String is too long (51 chars), maximum 50' on property id (Organization identifier)."},
		{"org id too long on POST", "POST", orgPath(long), `{"connection_id":"` + c + `"}`, nil, 400, "invalid_uri",
			"Path validation error: 'String is too long (51 chars), maximum 50' on property id (Organization identifier)."},
		{"empty org id", "GET", orgPath(""), "", nil, 400, "invalid_uri",
			"Path validation error: 'String is too short (0 chars), minimum 1' on property id (Organization identifier)."},
		{"connection id too long", "DELETE", orgPath(org, long), "", nil, 400, "invalid_uri",
			"Path validation error: 'String is too long (51 chars), maximum 50' on property connectionId (Connection identifier)."},
		{"empty connection id", "GET", orgPath(org, ""), "", nil, 400, "invalid_uri",
			"Path validation error: 'String is too short (0 chars), minimum 1' on property connectionId (Connection identifier)."},
		{"page not an integer", "GET", orgPath(org) + "?page=one", "", nil, 400, "invalid_query_string",
			"Query validation error: 'Expected type integer but found type string' on property page (" + pageDesc + ")."},
		{"negative page", "GET", orgPath(org) + "?page=-1", "", nil, 400, "invalid_query_string",
			"Query validation error: 'Value -1 is less than minimum 0' on property page (" + pageDesc + ")."},
		{"per_page zero", "GET", orgPath(org) + "?per_page=0", "", nil, 400, "invalid_query_string",
			"Query validation error: 'Value 0 is less than minimum 1' on property per_page (" + perDesc + ")."},
		{"per_page over 100", "GET", orgPath(org) + "?per_page=101", "", nil, 400, "invalid_query_string",
			"Query validation error: 'Value 101 is greater than maximum 100' on property per_page (" + perDesc + ")."},
		{"per_page fractional", "GET", orgPath(org) + "?per_page=2.5", "", nil, 400, "invalid_query_string",
			"Query validation error: 'Expected type integer but found type string' on property per_page (" + perDesc + ")."},
		{"include_totals not boolean", "GET", orgPath(org) + "?include_totals=yes", "", nil, 400, "invalid_query_string",
			"Query validation error: 'Expected type boolean but found type string' on property include_totals (Return results inside an object that contains the total result count (true) or as a direct array of results (false, default).)."},
		{"page repeated", "GET", orgPath(org) + "?page=1&page=2", "", nil, 400, "invalid_query_string",
			"Query validation error: 'Expected type integer but found type array' on property page (" + pageDesc + ")."},
		{"POST without JSON content type", "POST", orgPath(org), `{"connection_id":"` + c + `"}`, []string{"Content-Type", "text/plain"}, 400, "invalid_body",
			`Invalid request payload: Content-Type must be application/json, not "text/plain".`},
		{"POST form body", "POST", orgPath(org), `connection_id=` + c, []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, "invalid_body",
			`Invalid request payload: Content-Type must be application/json, not "application/x-www-form-urlencoded".`},
		{"POST malformed JSON", "POST", orgPath(org), `{"connection_id":`, nil, 400, "invalid_body",
			"Invalid request payload JSON format"},
		{"POST array", "POST", orgPath(org), `[]`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type object but found type array'."},
		{"POST empty body", "POST", orgPath(org), " ", nil, 400, "invalid_body",
			"Payload validation error: 'Expected type object but found type null'."},
		{"POST unknown property", "POST", orgPath(org), `{"connection_id":"` + c + `","enabled":true}`, nil, 400, "invalid_body",
			"Payload validation error: 'Additional properties not allowed: enabled'."},
		{"POST boolean as string", "POST", orgPath(org), `{"connection_id":"` + c + `","show_as_button":"true"}`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type boolean but found type string' on property show_as_button (" + showDesc + ")."},
		{"POST boolean as null", "POST", orgPath(org), `{"connection_id":"` + c + `","show_as_button":null}`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type boolean but found type null' on property show_as_button (" + showDesc + ")."},
		{"POST connection_id number", "POST", orgPath(org), `{"connection_id":12}`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type string but found type integer' on property connection_id (" + connDesc + ")."},
		{"POST missing connection_id", "POST", orgPath(org), `{"show_as_button":true}`, nil, 400, "invalid_body",
			"Payload validation error: 'Missing required property: connection_id'."},
		{"POST connection_id too long", "POST", orgPath(org), `{"connection_id":"` + long + `"}`, nil, 400, "invalid_body",
			"Payload validation error: 'String is too long (51 chars), maximum 50' on property connection_id (" + connDesc + ")."},
		{"POST empty connection_id", "POST", orgPath(org), `{"connection_id":""}`, nil, 400, "invalid_body",
			"Payload validation error: 'String is too short (0 chars), minimum 1' on property connection_id (" + connDesc + ")."},
		{"PATCH empty object", "PATCH", orgPath(org, c), `{}`, nil, 400, "invalid_body",
			"Payload validation error: 'Too few properties defined (0), minimum 1'."},
		{"PATCH connection_id", "PATCH", orgPath(org, c), `{"connection_id":"` + c + `","show_as_button":false}`, nil, 400, "invalid_body",
			"Payload validation error: 'Additional properties not allowed: connection_id'."},
		{"PATCH number flag", "PATCH", orgPath(org, c), `{"assign_membership_on_login":1}`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type boolean but found type integer' on property assign_membership_on_login (When true, all users that log in with this connection will be automatically granted membership in the organization. When false, users must be granted membership in the organization before logging in with this connection.)."},
		{"PATCH without content type", "PATCH", orgPath(org, c), `{"show_as_button":false}`, []string{"Content-Type", ""}, 400, "invalid_body",
			`Invalid request payload: Content-Type must be application/json, not "".`},
		{"validation before existence", "POST", orgPath("org_nope"), `{"connection_id":true}`, nil, 400, "invalid_body",
			"Payload validation error: 'Expected type string but found type boolean' on property connection_id (" + connDesc + ")."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(tt.method, tt.path, tt.body, tt.hdr...)
			wantStatus(t, r, tt.status)
			e := apiErr(t, r)
			if e.StatusCode != tt.status || e.Error != http.StatusText(tt.status) || e.ErrorCode != tt.code || e.Message != tt.message {
				t.Fatalf("got %+v\nwant message %q code %q", e, tt.message, tt.code)
			}
		})
	}
	if got := s.srv.State()[org][c]; got != (EnabledConnection{ConnectionID: c, ShowAsButton: true}) || len(s.srv.State()[org]) != 1 {
		t.Fatalf("refused requests changed state: %v", s.srv.State())
	}
}

func TestJSONContentTypeWithCharset(t *testing.T) {
	s := setup(t, Config{Seed: 10})
	c := s.srv.Connections()[0].ID
	r := s.do("POST", orgPath(s.org(0)), `{"connection_id":"`+c+`"}`, "Content-Type", "application/json; charset=utf-8")
	wantStatus(t, r, 201)
}

func TestBodyTooLarge(t *testing.T) {
	s := setup(t, Config{Seed: 11})
	big := `{"connection_id":"` + strings.Repeat("x", 1<<20) + `"}`
	r := s.do("POST", orgPath(s.org(0)), big)
	wantStatus(t, r, 413)
	wantJSON(t, r, `{"statusCode":413,"error":"Request Entity Too Large","message":"Payload content length greater than maximum allowed: 1048576"}`)
	// Exactly 1 MB is accepted as far as size goes.
	exact := `{"connection_id":"x"}` + strings.Repeat(" ", 1<<20-len(`{"connection_id":"x"}`))
	r = s.do("POST", orgPath(s.org(0)), exact)
	wantStatus(t, r, 404)
}

func TestJSONTypeNames(t *testing.T) {
	for raw, want := range map[string]string{
		`{}`: "object", `[1]`: "array", `"s"`: "string", `true`: "boolean", `false`: "boolean",
		`null`: "null", `3`: "integer", `-3e2`: "integer", `3.5`: "number", ` 1`: "integer",
	} {
		if got := jsonType([]byte(raw)); got != want {
			t.Errorf("jsonType(%s) = %s, want %s", raw, got, want)
		}
	}
}
