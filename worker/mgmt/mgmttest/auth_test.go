package mgmttest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// tokenRequest posts body to /oauth/token with contentType.
func (s *sim) tokenRequest(contentType, body string, hdr ...string) response {
	s.t.Helper()
	return s.do("POST", "/oauth/token", body, append([]string{"Content-Type", contentType, "Authorization", ""}, hdr...)...)
}

func TestTokenEndpoint(t *testing.T) {
	s := setup(t, Config{Seed: 20, TokenTTL: 90*time.Second + 500*time.Millisecond})
	aud := s.ts.URL + "/api/v2/"
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	good := []string{"grant_type", "client_credentials", "client_id", DefaultClientID, "client_secret", DefaultClientSecret, "audience", aud}
	with := func(k, v string) []string {
		out := append([]string(nil), good...)
		for i := 0; i < len(out); i += 2 {
			if out[i] == k {
				out[i+1] = v
				return out
			}
		}
		return append(out, k, v)
	}
	tests := []struct {
		name        string
		contentType string
		body        string
		hdr         []string
		status      int
		want        string // exact JSON for errors; scope string for successes
	}{
		{"form", "application/x-www-form-urlencoded", form(good...), nil, 200,
			"read:organization_connections create:organization_connections update:organization_connections delete:organization_connections read:connections"},
		{"json", "application/json", `{"grant_type":"client_credentials","client_id":"orgconn-sim","client_secret":"orgconn-sim-secret","audience":"` + aud + `"}`, nil, 200,
			"read:organization_connections create:organization_connections update:organization_connections delete:organization_connections read:connections"},
		{"basic auth", "application/x-www-form-urlencoded", form("grant_type", "client_credentials", "audience", aud),
			[]string{"Authorization", "Basic b3JnY29ubi1zaW06b3JnY29ubi1zaW0tc2VjcmV0"}, 200,
			"read:organization_connections create:organization_connections update:organization_connections delete:organization_connections read:connections"},
		{"requested subset of scopes", "application/x-www-form-urlencoded", form(with("scope", "read:organization_connections")...), nil, 200,
			"read:organization_connections"},
		{"wrong secret", "application/x-www-form-urlencoded", form(with("client_secret", "nope")...), nil, 401,
			`{"error":"access_denied","error_description":"Unauthorized"}`},
		{"wrong client", "application/json", `{"grant_type":"client_credentials","client_id":"x","client_secret":"orgconn-sim-secret","audience":"` + aud + `"}`, nil, 401,
			`{"error":"access_denied","error_description":"Unauthorized"}`},
		{"wrong audience", "application/x-www-form-urlencoded", form(with("audience", "https://tenant.auth0.com/api/v2/")...), nil, 403,
			`{"error":"access_denied","error_description":"Service not enabled within domain: https://tenant.auth0.com/api/v2/"}`},
		{"audience without trailing slash", "application/x-www-form-urlencoded", form(with("audience", strings.TrimSuffix(aud, "/"))...), nil, 403,
			`{"error":"access_denied","error_description":"Service not enabled within domain: ` + strings.TrimSuffix(aud, "/") + `"}`},
		{"scope not granted", "application/x-www-form-urlencoded", form(with("scope", "read:users")...), nil, 403,
			`{"error":"access_denied","error_description":"Client has not been granted scopes: read:users"}`},
		{"password grant", "application/x-www-form-urlencoded", form(with("grant_type", "password")...), nil, 400,
			`{"error":"unsupported_grant_type","error_description":"Unsupported grant type: password"}`},
		{"no grant", "application/json", `{"client_id":"orgconn-sim"}`, nil, 400,
			`{"error":"invalid_request","error_description":"Missing required parameter: grant_type"}`},
		{"json with a number", "application/json", `{"grant_type":1}`, nil, 400,
			`{"error":"invalid_request","error_description":"Parameter grant_type must be a string"}`},
		{"text body", "text/plain", "hello", nil, 400,
			`{"error":"invalid_request","error_description":"Content-Type must be application/x-www-form-urlencoded or application/json"}`},
	}
	issued := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.tokenRequest(tt.contentType, tt.body, tt.hdr...)
			wantStatus(t, r, tt.status)
			if tt.status != 200 {
				wantJSON(t, r, tt.want)
				return
			}
			issued++
			var tok tokenResponse
			if err := json.Unmarshal(r.body, &tok); err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "Bearer" || tok.ExpiresIn != 90 || tok.Scope != tt.want || len(tok.AccessToken) < 32 {
				t.Fatalf("token response %s", r.body)
			}
			// The token works on the API with its scopes.
			api := *s
			api.token = tok.AccessToken
			wantStatus(t, api.do("GET", orgPath(s.org(0)), ""), 200)
		})
	}
	if got := s.srv.Stats().TokensIssued; got != issued {
		t.Fatalf("TokensIssued = %d, want %d", got, issued)
	}
	if r := s.do("GET", "/oauth/token", ""); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET /oauth/token: %d", r.status)
	}
}

func TestTokensAreDistinct(t *testing.T) {
	s := setup(t, Config{Seed: 21})
	seen := map[string]bool{}
	for range 20 {
		tok := s.srv.IssueToken(nil, 0)
		if seen[tok] {
			t.Fatalf("token %q issued twice", tok)
		}
		seen[tok] = true
	}
}

func TestAPIAuthentication(t *testing.T) {
	s := setup(t, Config{Seed: 22, TokenTTL: time.Hour})
	org := s.org(0)
	short := s.srv.IssueToken(DefaultScopes(), time.Minute)
	readOnly := s.srv.IssueToken([]string{ScopeRead}, 0)
	none := s.srv.IssueToken(nil, 0)
	c := s.srv.Connections()[0].ID

	tests := []struct {
		name          string
		auth          string
		method, path  string
		body          string
		status        int
		message, code string
	}{
		{"no header", "", "GET", orgPath(org), "", 401, "Missing authentication", ""},
		{"basic scheme", "Basic dXNlcjpwYXNz", "GET", orgPath(org), "", 401, "Missing authentication", ""},
		{"bearer without token", "Bearer", "GET", orgPath(org), "", 401, "Missing authentication", ""},
		{"bearer with spaces", "Bearer a b", "GET", orgPath(org), "", 401, "Missing authentication", ""},
		{"unknown token", "Bearer not-a-token", "GET", orgPath(org), "", 401, "Invalid token", ""},
		{"lower-case scheme", "bearer " + s.token, "GET", orgPath(org), "", 200, "", ""},
		{"read-only token reads", "Bearer " + readOnly, "GET", orgPath(org, c), "", 404, "No connection found by that id", ""},
		{"read-only token creates", "Bearer " + readOnly, "POST", orgPath(org), `{"connection_id":"` + c + `"}`, 403,
			"Insufficient scope; expected any of: create:organization_connections", "insufficient_scope"},
		{"read-only token updates", "Bearer " + readOnly, "PATCH", orgPath(org, c), `{"show_as_button":true}`, 403,
			"Insufficient scope; expected any of: update:organization_connections", "insufficient_scope"},
		{"read-only token removes", "Bearer " + readOnly, "DELETE", orgPath(org, c), "", 403,
			"Insufficient scope; expected any of: delete:organization_connections", "insufficient_scope"},
		{"scopeless token lists", "Bearer " + none, "GET", orgPath(org), "", 403,
			"Insufficient scope; expected any of: read:organization_connections", "insufficient_scope"},
		{"auth before validation", "", "POST", orgPath(strings.Repeat("x", 60)), `[]`, 401, "Missing authentication", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(tt.method, tt.path, tt.body, "Authorization", tt.auth)
			wantStatus(t, r, tt.status)
			if tt.message == "" {
				return
			}
			e := apiErr(t, r)
			if e.Message != tt.message || e.ErrorCode != tt.code || e.Error != http.StatusText(tt.status) {
				t.Fatalf("got %+v, want message %q code %q", e, tt.message, tt.code)
			}
		})
	}

	// Expiry by the clock: valid until the instant it expires.
	s.clock.Advance(time.Minute - time.Nanosecond)
	wantStatus(t, s.do("GET", orgPath(org), "", "Authorization", "Bearer "+short), 200)
	s.clock.Advance(time.Nanosecond)
	r := s.do("GET", orgPath(org), "", "Authorization", "Bearer "+short)
	wantStatus(t, r, 401)
	if e := apiErr(t, r); e.Message != "Expired token received for JSON Web Token validation" {
		t.Fatalf("message %q", e.Message)
	}
	wantStatus(t, s.do("GET", orgPath(org), ""), 200) // the 1h token still works

	// ExpireTokens expires every token issued so far, not later ones.
	s.srv.ExpireTokens()
	r = s.do("GET", orgPath(org), "")
	wantStatus(t, r, 401)
	if e := apiErr(t, r); e.Message != "Expired token received for JSON Web Token validation" {
		t.Fatalf("message %q", e.Message)
	}
	s.token = s.srv.IssueToken(DefaultScopes(), 0)
	wantStatus(t, s.do("GET", orgPath(org), ""), 200)
}

func TestRefusedRequestsApplyNothing(t *testing.T) {
	s := setup(t, Config{Seed: 23})
	c := s.srv.Connections()[0].ID
	r := s.do("POST", orgPath(s.org(0)), `{"connection_id":"`+c+`"}`, "Authorization", "Bearer nope")
	wantStatus(t, r, 401)
	if len(s.srv.State()) != 0 {
		t.Fatalf("state changed: %v", s.srv.State())
	}
	if st := s.srv.Stats(); st.Writes != 0 || st.Count("POST", RouteEnabledConnections, 401) != 1 {
		t.Fatalf("stats %v", st)
	}
}
