package mgmttest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestConnectionsListing(t *testing.T) {
	s := setup(t, Config{Seed: 31, Connections: 7})
	all := s.srv.Connections()
	ids := func(body []byte) []string {
		t.Helper()
		var items []map[string]any
		var wrapped struct {
			Connections []map[string]any `json:"connections"`
		}
		if len(body) > 0 && body[0] == '[' {
			if err := json.Unmarshal(body, &items); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := json.Unmarshal(body, &wrapped); err != nil {
				t.Fatal(err)
			}
			items = wrapped.Connections
		}
		var out []string
		for _, it := range items {
			out = append(out, it["id"].(string))
		}
		return out
	}
	idsOf := func(cs ...Connection) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}

	t.Run("bare array of all", func(t *testing.T) {
		r := s.do("GET", "/api/v2/connections", "")
		wantStatus(t, r, 200)
		if got, want := strings.Join(ids(r.body), ","), strings.Join(idsOf(all...), ","); got != want {
			t.Fatalf("ids %s, want %s", got, want)
		}
	})
	t.Run("name is exact", func(t *testing.T) {
		r := s.do("GET", "/api/v2/connections?name="+all[2].Name, "")
		wantStatus(t, r, 200)
		wantJSON(t, r, `[{"id":"`+all[2].ID+`","name":"conn-2-google-oauth2","strategy":"google-oauth2","display_name":"conn-2-google-oauth2","is_domain_connection":false,"realms":["conn-2-google-oauth2"]}]`)
		r = s.do("GET", "/api/v2/connections?name=conn-2", "")
		wantJSON(t, r, `[]`)
	})
	t.Run("strategy repeatable and fields", func(t *testing.T) {
		r := s.do("GET", "/api/v2/connections?strategy=samlp&strategy=oidc&fields=id,name", "")
		wantStatus(t, r, 200)
		wantJSON(t, r, `[{"id":"`+all[1].ID+`","name":"conn-1-samlp"},{"id":"`+all[3].ID+`","name":"conn-3-oidc"},{"id":"`+all[5].ID+`","name":"conn-5-samlp"}]`)
		r = s.do("GET", "/api/v2/connections?strategy=auth0&fields=realms,display_name,is_domain_connection&include_fields=false", "")
		wantJSON(t, r, `[{"id":"`+all[0].ID+`","name":"conn-0-auth0","strategy":"auth0"},{"id":"`+all[4].ID+`","name":"conn-4-auth0","strategy":"auth0"}]`)
	})
	t.Run("offset paging with totals", func(t *testing.T) {
		r := s.do("GET", "/api/v2/connections?per_page=3&page=2&include_totals=true&fields=id", "")
		wantStatus(t, r, 200)
		wantJSON(t, r, `{"connections":[{"id":"`+all[6].ID+`"}],"start":6,"limit":3,"total":7}`)
	})
	t.Run("checkpoint paging", func(t *testing.T) {
		var got []string
		from, pages := "", 0
		for {
			q := "/api/v2/connections?take=3"
			if from != "" {
				q += "&from=" + from
			}
			r := s.do("GET", q, "")
			wantStatus(t, r, 200)
			var page struct {
				Connections []Connection `json:"connections"`
				Next        string       `json:"next"`
			}
			if err := json.Unmarshal(r.body, &page); err != nil {
				t.Fatal(err)
			}
			pages++
			for _, c := range page.Connections {
				got = append(got, c.ID)
			}
			if page.Next == "" {
				if strings.Contains(string(r.body), `"next"`) {
					t.Fatalf("last page carries next: %s", r.body)
				}
				break
			}
			from = page.Next
		}
		if pages != 3 || strings.Join(got, ",") != strings.Join(idsOf(all...), ",") {
			t.Fatalf("%d pages, ids %v", pages, got)
		}
	})
	t.Run("checkpoint with a filter", func(t *testing.T) {
		r := s.do("GET", "/api/v2/connections?take=1&strategy=samlp", "")
		wantJSON(t, r, `{"connections":[{"id":"`+all[1].ID+`","name":"conn-1-samlp","strategy":"samlp","display_name":"conn-1-samlp","is_domain_connection":false,"realms":["conn-1-samlp"]}],"next":"`+all[5].ID+`"}`)
	})
	for _, tt := range []struct{ name, query, message string }{
		{"take over 100", "take=101", "Query validation error: 'Value 101 is greater than maximum 100' on property take (Number of results per page. Defaults to 50.)."},
		{"take zero", "take=0", "Query validation error: 'Value 0 is less than minimum 1' on property take (Number of results per page. Defaults to 50.)."},
		{"unknown checkpoint", "from=con_nope", `Query validation error: 'Invalid checkpoint: no connection "con_nope"' on property from (Optional Id from which to start selection.).`},
		{"checkpoint with page", "take=5&page=1", "Query validation error: 'page cannot be used with checkpoint pagination (take, from)'."},
		{"per_page over 100", "per_page=101", "Query validation error: 'Value 101 is greater than maximum 100' on property per_page (Number of results per page. Defaults to 50.)."},
		{"name repeated", "name=a&name=b", "Query validation error: 'Expected type string but found type array' on property name (Provide the name of the connection to retrieve.)."},
		{"include_fields not boolean", "include_fields=no", "Query validation error: 'Expected type boolean but found type string' on property include_fields (true if the fields specified are to be included in the result, false otherwise (defaults to true).)."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("GET", "/api/v2/connections?"+tt.query, "")
			wantStatus(t, r, 400)
			if e := apiErr(t, r); e.ErrorCode != "invalid_query_string" || e.Message != tt.message {
				t.Fatalf("got %+v, want %q", e, tt.message)
			}
		})
	}
	t.Run("scope read:connections", func(t *testing.T) {
		tok := s.srv.IssueToken([]string{ScopeRead}, 0)
		r := s.do("GET", "/api/v2/connections", "", "Authorization", "Bearer "+tok)
		wantStatus(t, r, 403)
		wantJSON(t, r, `{"statusCode":403,"error":"Forbidden","message":"Insufficient scope; expected any of: read:connections","errorCode":"insufficient_scope"}`)
		wantStatus(t, s.do("POST", "/api/v2/connections", `{}`), 404)
	})
	if n := s.srv.Stats().Count("GET", RouteConnections, 200); n != 10 {
		t.Fatalf("Stats GET %s 200 = %d, want 10", RouteConnections, n)
	}
}

func TestConnectionsListingUsesTheReadBucket(t *testing.T) {
	s := setup(t, Config{Seed: 32, Read: Bucket{Burst: 1, Rate: 1}})
	wantStatus(t, s.do("GET", "/api/v2/connections", ""), 200)
	r := s.do("GET", "/api/v2/connections?take=1", "")
	wantStatus(t, r, 429)
	if r.header.Get("X-RateLimit-Limit") != "1" {
		t.Fatalf("429 without the read bucket's headers: %v", r.header)
	}
	wantStatus(t, s.do("POST", orgPath(s.org(0)), `{"connection_id":"`+s.srv.Connections()[0].ID+`"}`), 201)
}
