package mgmt

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// enabled builds the EnabledConnection the API returns for c with the flags.
func enabled(c mgmttest.Connection, assign, show, signup bool) EnabledConnection {
	var ec EnabledConnection
	ec.ConnectionID = c.ID
	ec.AssignMembershipOnLogin = assign
	ec.ShowAsButton = show
	ec.IsSignupEnabled = signup
	ec.Connection.Name = c.Name
	ec.Connection.Strategy = c.Strategy
	return ec
}

func TestEnableReturnsCreatedConnectionWithDefaultsAndFlags(t *testing.T) {
	tests := []struct {
		name     string
		strategy string
		settings Settings
		assign   bool
		show     bool
		signup   bool
	}{
		{"no flags gives the defaults", "samlp", Settings{}, false, true, false},
		{"every flag on a database connection", "auth0", Settings{AssignMembershipOnLogin: ptr(true), IsSignupEnabled: ptr(true), ShowAsButton: ptr(false)}, true, false, true},
		{"false flags are sent, not omitted", "oidc", Settings{AssignMembershipOnLogin: ptr(false), IsSignupEnabled: ptr(false), ShowAsButton: ptr(false)}, false, false, false},
		{"one flag keeps the other defaults", "google-oauth2", Settings{AssignMembershipOnLogin: ptr(true)}, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, mgmttest.Config{})
			org, conn := e.org(), e.conn(tt.strategy)
			got, err := e.client.Enable(context.Background(), org, conn.ID, tt.settings)
			if err != nil {
				t.Fatalf("Enable: %v", err)
			}
			if want := enabled(conn, tt.assign, tt.show, tt.signup); got != want {
				t.Errorf("Enable = %+v, want %+v", got, want)
			}
			wantState := mgmttest.EnabledConnection{ConnectionID: conn.ID, AssignMembershipOnLogin: tt.assign, ShowAsButton: tt.show, IsSignupEnabled: tt.signup}
			if st := e.sim.State()[org][conn.ID]; st != wantState {
				t.Errorf("tenant state %+v, want %+v", st, wantState)
			}
		})
	}
}

func TestEnableOfEnabledPairUnderUpsertPolicyReturns201WithMergedFlags(t *testing.T) {
	e := setup(t, mgmttest.Config{EnableExisting: mgmttest.Upsert201})
	org, conn := e.org(), e.conn("samlp")
	e.sim.SetState(org, map[string]mgmttest.EnabledConnection{conn.ID: {AssignMembershipOnLogin: true, ShowAsButton: true}})
	got, err := e.client.Enable(context.Background(), org, conn.ID, Settings{ShowAsButton: ptr(false)})
	if err != nil {
		t.Fatalf("Enable: %v", err)
	}
	if want := enabled(conn, true, false, false); got != want {
		t.Errorf("Enable = %+v, want %+v", got, want)
	}
}

func TestGetUpdateAndListReturn200WithTheConnection(t *testing.T) {
	e := setup(t, mgmttest.Config{})
	ctx := context.Background()
	org, db, saml := e.org(), e.conn("auth0"), e.conn("samlp")
	e.sim.SetState(org, map[string]mgmttest.EnabledConnection{
		db.ID:   {AssignMembershipOnLogin: true, IsSignupEnabled: true},
		saml.ID: {ShowAsButton: true},
	})

	got, err := e.client.Get(ctx, org, db.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want := enabled(db, true, false, true); got != want {
		t.Errorf("Get = %+v, want %+v", got, want)
	}

	got, err = e.client.Update(ctx, org, saml.ID, Settings{AssignMembershipOnLogin: ptr(true), ShowAsButton: ptr(false)})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if want := enabled(saml, true, false, false); got != want {
		t.Errorf("Update = %+v, want %+v", got, want)
	}

	page, err := e.client.List(ctx, org, 0, 50)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	wantConns := []EnabledConnection{enabled(db, true, false, true), enabled(saml, true, false, false)}
	slices.SortFunc(wantConns, func(a, b EnabledConnection) int { return strings.Compare(a.ConnectionID, b.ConnectionID) })
	if want := (Page{Connections: wantConns, Start: 0, Total: 2}); !reflect.DeepEqual(page, want) {
		t.Errorf("List = %+v, want %+v", page, want)
	}

	// Page 1 of 1-item pages is the second connection.
	page, err = e.client.List(ctx, org, 1, 1)
	if err != nil {
		t.Fatalf("List page 1: %v", err)
	}
	if want := (Page{Connections: wantConns[1:], Start: 1, Total: 2}); !reflect.DeepEqual(page, want) {
		t.Errorf("List(page 1, per page 1) = %+v, want %+v", page, want)
	}
}

func TestListOfOrganizationWithNothingEnabledIsEmpty(t *testing.T) {
	e := setup(t, mgmttest.Config{})
	page, err := e.client.List(context.Background(), e.org(), 0, 50)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(page.Connections) != 0 || page.Start != 0 || page.Total != 0 {
		t.Errorf("List = %+v, want no connections, Start 0, Total 0", page)
	}
	all, err := e.client.ListAll(context.Background(), e.org())
	if err != nil {
		t.Fatalf("ListAll: %v", err)
	}
	if len(all) != 0 {
		t.Errorf("ListAll = %v, want none", all)
	}
	if n := e.sim.Stats().Count(http.MethodGet, mgmttest.RouteEnabledConnections, 200); n != 2 {
		t.Errorf("%d list requests, want 2 (one List, one ListAll page)", n)
	}
}

func TestListAllPagesThroughMoreThan100Connections(t *testing.T) {
	e := setup(t, mgmttest.Config{Connections: 150})
	org := e.org()
	state := map[string]mgmttest.EnabledConnection{}
	var want []EnabledConnection
	for i, c := range e.sim.Connections() {
		state[c.ID] = mgmttest.EnabledConnection{ShowAsButton: i%2 == 0, AssignMembershipOnLogin: i%3 == 0}
		want = append(want, enabled(c, i%3 == 0, i%2 == 0, false))
	}
	e.sim.SetState(org, state)
	slices.SortFunc(want, func(a, b EnabledConnection) int { return strings.Compare(a.ConnectionID, b.ConnectionID) })

	got, err := e.client.ListAll(context.Background(), org)
	if err != nil {
		t.Fatalf("ListAll: %v", err)
	}
	if len(got) != 150 {
		t.Fatalf("ListAll returned %d connections, want 150", len(got))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListAll returned other connections than the 150 enabled, in the API's order")
	}
	if n := e.sim.Stats().Count(http.MethodGet, mgmttest.RouteEnabledConnections, 200); n != 3 {
		t.Errorf("ListAll made %d list requests, want 3 pages of 50", n)
	}
}

// bareArrayServer serves GET enabled_connections as a bare JSON array (what
// the API sends without include_totals) from n made-up connections, and
// records each request's query.
type bareArrayServer struct {
	n       int
	queries []url.Values
}

func (s *bareArrayServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.queries = append(s.queries, q)
	page, perPage := atoi(q.Get("page")), atoi(q.Get("per_page"))
	var b strings.Builder
	b.WriteString("\n[")
	for i := page * perPage; i < s.n && i < (page+1)*perPage; i++ {
		if i > page*perPage {
			b.WriteString(",")
		}
		b.WriteString(`{"connection_id":"con_` + itoa(i) + `","assign_membership_on_login":false,"show_as_button":true,"is_signup_enabled":false,"connection":{"name":"c` + itoa(i) + `","strategy":"samlp"}}`)
	}
	b.WriteString("]\n")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(b.String()))
}

func TestListAcceptsABareArrayAnswer(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		wantPages int
	}{
		{"short last page stops", 120, 3},
		{"full last page needs an empty page to stop", 150, 4},
		{"empty list", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &bareArrayServer{n: tt.n}
			c := newClient(t, Config{BaseURL: serve(t, srv), Tokens: StaticToken("tok")})
			got, err := c.ListAll(context.Background(), "org_1")
			if err != nil {
				t.Fatalf("ListAll: %v", err)
			}
			if len(got) != tt.n {
				t.Fatalf("ListAll returned %d connections, want %d", len(got), tt.n)
			}
			for i, ec := range got {
				if ec.ConnectionID != "con_"+itoa(i) || ec.Connection.Name != "c"+itoa(i) || !ec.ShowAsButton {
					t.Fatalf("connection %d = %+v, want con_%d named c%d", i, ec, i, i)
				}
			}
			if len(srv.queries) != tt.wantPages {
				t.Fatalf("ListAll made %d requests, want %d", len(srv.queries), tt.wantPages)
			}
			for i, q := range srv.queries {
				want := url.Values{"page": {itoa(i)}, "per_page": {"50"}, "include_totals": {"true"}}
				if !reflect.DeepEqual(q, want) {
					t.Errorf("request %d query %v, want %v", i, q, want)
				}
			}
		})
	}

	t.Run("List reports Start from the page and Total -1", func(t *testing.T) {
		c := newClient(t, Config{BaseURL: serve(t, &bareArrayServer{n: 150}), Tokens: StaticToken("tok")})
		page, err := c.List(context.Background(), "org_1", 2, 40)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(page.Connections) != 40 || page.Connections[0].ConnectionID != "con_80" || page.Start != 80 || page.Total != -1 {
			t.Errorf("List(page 2, per page 40) = %d connections from %q, Start %d, Total %d; want 40 from con_80, Start 80, Total -1",
				len(page.Connections), page.Connections[0].ConnectionID, page.Start, page.Total)
		}
	})
}

func TestRemoveReturnsNilOn204(t *testing.T) {
	tests := []struct {
		name       string
		policy     mgmttest.MissingPolicy
		wasEnabled bool
	}{
		{"enabled connection", mgmttest.NotFound404, true},
		{"connection not enabled, tenant answers 204", mgmttest.NoContent204, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, mgmttest.Config{RemoveMissing: tt.policy})
			org, saml, oidc := e.org(), e.conn("samlp"), e.conn("oidc")
			if tt.wasEnabled {
				e.enable(org, saml, oidc)
			} else {
				e.enable(org, oidc)
			}
			if err := e.client.Remove(context.Background(), org, saml.ID); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			want := map[string]mgmttest.EnabledConnection{oidc.ID: {ConnectionID: oidc.ID, ShowAsButton: true}}
			if got := e.sim.State()[org]; !reflect.DeepEqual(got, want) {
				t.Errorf("state after Remove %v, want only %s left", got, oidc.ID)
			}
			if n := e.sim.Stats().Count(http.MethodDelete, mgmttest.RouteEnabledConnection, 204); n != 1 {
				t.Errorf("%d DELETEs answered 204, want 1", n)
			}
		})
	}
}

func TestInvalidRequestIsAPIError400(t *testing.T) {
	const signupMessage = "Only database connections with assign_membership_on_login = true support is_signup_enabled = true."
	longOrg := "org_" + strings.Repeat("x", 47) // 51 characters
	longOrgMessage := "Path validation error: 'String is too long (51 chars), maximum 50' on property id (Organization identifier)."
	type test struct {
		name string
		run  func(e *env) (APIError, error)
		seed string // the strategy of a connection enabled before the call
	}
	tests := []test{
		{"enable signup on a samlp connection", func(e *env) (APIError, error) {
			conn := e.conn("samlp").ID
			_, err := e.client.Enable(context.Background(), e.org(), conn, Settings{AssignMembershipOnLogin: ptr(true), IsSignupEnabled: ptr(true)})
			return APIError{Method: "POST", Path: mustOrgPath(e.org()), Status: 400, Reason: "Bad Request", ErrorCode: "invalid_body", Message: signupMessage}, err
		}, "oidc"},
		{"update signup on an enabled samlp connection", func(e *env) (APIError, error) {
			conn := e.conn("samlp")
			_, err := e.client.Update(context.Background(), e.org(), conn.ID, Settings{IsSignupEnabled: ptr(true)})
			return APIError{Method: "PATCH", Path: mustConnPath(e.org(), conn.ID), Status: 400, Reason: "Bad Request", ErrorCode: "invalid_body", Message: signupMessage}, err
		}, "samlp"},
		{"enable signup on a database connection without membership", func(e *env) (APIError, error) {
			conn := e.conn("auth0").ID
			_, err := e.client.Enable(context.Background(), e.org(), conn, Settings{IsSignupEnabled: ptr(true)})
			return APIError{Method: "POST", Path: mustOrgPath(e.org()), Status: 400, Reason: "Bad Request", ErrorCode: "invalid_body", Message: signupMessage}, err
		}, "samlp"},
	}
	for _, k := range allCalls {
		tests = append(tests, test{k.name + " with a 51-character org id", func(e *env) (APIError, error) {
			conn := e.conn("samlp").ID
			err := k.run(context.Background(), e.client, longOrg, conn)
			return APIError{Method: k.method, Path: k.path(longOrg, conn), Status: 400, Reason: "Bad Request", ErrorCode: "invalid_uri", Message: longOrgMessage}, err
		}, "samlp"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, mgmttest.Config{})
			e.enable(e.org(), e.conn(tt.seed))
			before := e.sim.State()
			want, err := tt.run(e)
			wantAPIError(t, err, want)
			if after := e.sim.State(); !reflect.DeepEqual(after, before) {
				t.Errorf("a refused request changed the tenant: %v, was %v", after, before)
			}
		})
	}
}

func TestExpiredTokenIsRefreshedOnceAndTheCallSucceeds(t *testing.T) {
	e := setup(t, mgmttest.Config{})
	ctx := context.Background()
	org, conn := e.org(), e.conn("samlp")
	e.enable(org, conn)
	if _, err := e.client.Get(ctx, org, conn.ID); err != nil {
		t.Fatalf("first Get: %v", err)
	}
	first, _ := e.creds.Token(ctx)

	e.sim.ExpireTokens()
	got, err := e.client.Get(ctx, org, conn.ID)
	if err != nil {
		t.Fatalf("Get after ExpireTokens: %v", err)
	}
	if want := enabled(conn, false, true, false); got != want {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
	st := e.sim.Stats()
	if st.TokensIssued != 2 {
		t.Errorf("token endpoint issued %d tokens, want 2 (first fetch and one refresh)", st.TokensIssued)
	}
	if n := st.Count(http.MethodGet, mgmttest.RouteEnabledConnection, 401); n != 1 {
		t.Errorf("%d GETs answered 401, want 1", n)
	}
	if n := st.Count(http.MethodGet, mgmttest.RouteEnabledConnection, 200); n != 2 {
		t.Errorf("%d GETs answered 200, want 2", n)
	}
	if second, _ := e.creds.Token(ctx); second == first {
		t.Errorf("the refused token is still cached")
	}
}

func TestStaticTokenRefusedWith401IsReturnedWithoutRetry(t *testing.T) {
	e := setup(t, mgmttest.Config{})
	tok := e.sim.IssueToken(mgmttest.DefaultScopes(), 0)
	c := newClient(t, Config{BaseURL: e.url, Tokens: StaticToken(tok), Pacer: e.pacer})
	org, conn := e.org(), e.conn("samlp")
	e.enable(org, conn)
	e.sim.ExpireTokens()

	_, err := c.Get(context.Background(), org, conn.ID)
	wantAPIError(t, err, APIError{Method: "GET", Path: mustConnPath(org, conn.ID), Status: 401, Reason: "Unauthorized",
		Message: "Expired token received for JSON Web Token validation"})
	if strings.Contains(err.Error(), tok) {
		t.Errorf("error text carries the bearer token: %v", err)
	}
	st := e.sim.Stats()
	if st.Total != 1 || st.TokensIssued != 0 {
		t.Errorf("stats %v, want exactly one API request and no token fetch", st)
	}
}

// expiringBefore calls sim.ExpireTokens before handing each /api/v2 request
// to sim, so that every token is refused.
type expiringBefore struct{ sim *mgmttest.Server }

func (h expiringBefore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/v2/") {
		h.sim.ExpireTokens()
	}
	h.sim.ServeHTTP(w, r)
}

func TestRefreshedTokenRefusedAgainIsReturnedAs401(t *testing.T) {
	sim := mgmttest.New(mgmttest.Config{ClientID: testClientID, ClientSecret: testSecret})
	base := serve(t, expiringBefore{sim})
	c := newClient(t, Config{BaseURL: base, Tokens: NewClientCredentials(base, testClientID, testSecret, nil)})
	org := sim.Orgs()[0]
	_, err := c.List(context.Background(), org, 0, 50)
	wantAPIError(t, err, APIError{Method: "GET", Path: mustOrgPath(org), Status: 401, Reason: "Unauthorized",
		Message: "Expired token received for JSON Web Token validation"})
	st := sim.Stats()
	if st.Total != 3 || st.TokensIssued != 3 {
		t.Errorf("stats %v, want 3 API requests and 3 token fetches: two refreshes, then give up", st)
	}
}

func TestReadOnlyTokenGets403OnWrites(t *testing.T) {
	for _, k := range allCalls {
		t.Run(k.name, func(t *testing.T) {
			e := setup(t, mgmttest.Config{})
			c := newClient(t, Config{BaseURL: e.url, Tokens: StaticToken(e.sim.IssueToken([]string{mgmttest.ScopeRead}, 0))})
			org, saml, oidc := e.org(), e.conn("samlp"), e.conn("oidc")
			e.enable(org, saml)
			conn := saml.ID
			if k.name == "Enable" {
				conn = oidc.ID
			}
			err := k.run(context.Background(), c, org, conn)
			if k.class == Read {
				if err != nil {
					t.Fatalf("%s with read scope: %v", k.name, err)
				}
				return
			}
			scope := map[string]string{"Enable": mgmttest.ScopeCreate, "Update": mgmttest.ScopeUpdate, "Remove": mgmttest.ScopeDelete}[k.name]
			wantAPIError(t, err, APIError{Method: k.method, Path: k.path(org, conn), Status: 403, Reason: "Forbidden",
				ErrorCode: "insufficient_scope", Message: "Insufficient scope; expected any of: " + scope})
		})
	}
}

func TestNotFoundIsAPIError404WithoutErrorCode(t *testing.T) {
	const (
		noOrg  = "No organization found by that id or name"
		noConn = "No connection found by that id"
	)
	type test struct {
		name    string
		call    call
		org     func(e *env) string
		conn    func(e *env) string
		message string
	}
	unknownOrg := func(*env) string { return "org_doesNotExist000" }
	knownOrg := func(e *env) string { return e.org() }
	notEnabled := func(e *env) string { return e.conn("oidc").ID }
	var tests []test
	for _, k := range allCalls {
		tests = append(tests, test{"unknown org on " + k.name, k, unknownOrg, notEnabled, noOrg})
	}
	for _, k := range []call{getCall, updateCall, removeCall} {
		tests = append(tests, test{"connection not enabled on " + k.name, k, knownOrg, notEnabled, noConn})
	}
	tests = append(tests, test{"unknown connection on Enable", enableCall, knownOrg, func(*env) string { return "con_doesNotExist000" }, noConn})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, mgmttest.Config{})
			e.enable(e.org(), e.conn("samlp"))
			org, conn := tt.org(e), tt.conn(e)
			err := tt.call.run(context.Background(), e.client, org, conn)
			wantAPIError(t, err, APIError{Method: tt.call.method, Path: tt.call.path(org, conn), Status: 404, Reason: "Not Found", Message: tt.message})
		})
	}
}

func TestEnableOfEnabledPairIsAPIError409(t *testing.T) {
	e := setup(t, mgmttest.Config{})
	org, conn := e.org(), e.conn("samlp")
	e.sim.SetState(org, map[string]mgmttest.EnabledConnection{conn.ID: {AssignMembershipOnLogin: true}})
	_, err := e.client.Enable(context.Background(), org, conn.ID, Settings{ShowAsButton: ptr(true)})
	wantAPIError(t, err, APIError{Method: "POST", Path: mustOrgPath(org), Status: 409, Reason: "Conflict",
		ErrorCode: "connection_already_enabled", Message: "The connection is already enabled for this organization."})
	want := mgmttest.EnabledConnection{ConnectionID: conn.ID, AssignMembershipOnLogin: true}
	if got := e.sim.State()[org][conn.ID]; got != want {
		t.Errorf("a 409 changed the tenant: %+v, want %+v", got, want)
	}
}

func TestWriteLimitGivesAPIError429WithRateLimitHeaders(t *testing.T) {
	e := setup(t, mgmttest.Config{Write: mgmttest.Bucket{Burst: 2, Rate: 0.001}})
	ctx := context.Background()
	org := e.org()
	conns := e.sim.Connections()
	for i := range 2 {
		if _, err := e.client.Enable(ctx, org, conns[i].ID, Settings{}); err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	_, err := e.client.Enable(ctx, org, conns[2].ID, Settings{})
	// Empty bucket of 2 refilling at 0.001/s: full again 2000 s from the fake clock's now.
	wantAPIError(t, err, APIError{Method: "POST", Path: mustOrgPath(org), Status: 429, Reason: "Too Many Requests",
		ErrorCode: "too_many_requests", Message: "Organization connections write limit has been reached",
		RateLimit: RateLimit{Present: true, Limit: 2, Remaining: 0, Reset: epoch.Add(2000 * time.Second)}})
	if ae := apiError(t, err); !ae.RateLimit.Reset.After(e.clock.Now()) || ae.RetryAfter != 0 {
		t.Errorf("Reset %v is not after now %v, or RetryAfter %v is not 0", ae.RateLimit.Reset, e.clock.Now(), ae.RetryAfter)
	}
	if _, ok := e.sim.State()[org][conns[2].ID]; ok {
		t.Errorf("the throttled write was applied")
	}
	// Reads draw from another bucket.
	if _, err := e.client.Get(ctx, org, conns[0].ID); err != nil {
		t.Errorf("Get after the write limit: %v", err)
	}
}

func TestServerErrorIsAPIError503(t *testing.T) {
	for _, k := range allCalls {
		t.Run(k.name, func(t *testing.T) {
			e := setup(t, mgmttest.Config{Faults: mgmttest.Faults{Error5xx: 1}})
			org, conn := e.org(), e.conn("samlp")
			before := e.sim.State()
			err := k.run(context.Background(), e.client, org, conn.ID)
			wantAPIError(t, err, APIError{Method: k.method, Path: k.path(org, conn.ID), Status: 503, Reason: "Service Unavailable",
				Message: "The service is temporarily unavailable. Please try again later."})
			if st := e.sim.Stats(); st.Total != 1 {
				t.Errorf("%d API requests, want 1: the client does not retry", st.Total)
			}
			if after := e.sim.State(); !reflect.DeepEqual(after, before) {
				t.Errorf("a 503 changed the tenant")
			}
		})
	}
}

func TestDroppedConnectionIsNetworkError(t *testing.T) {
	for _, k := range allCalls {
		t.Run(k.name, func(t *testing.T) {
			e := setup(t, mgmttest.Config{})
			org, saml, oidc := e.org(), e.conn("samlp"), e.conn("oidc")
			e.enable(org, saml)
			conn := saml.ID
			if k.name == "Enable" {
				conn = oidc.ID
			}
			// One good request first, so the dropped one travels on a reused
			// keep-alive connection: the case where net/http may resend.
			if _, err := e.client.List(context.Background(), org, 0, 1); err != nil {
				t.Fatalf("List before the fault: %v", err)
			}
			e.sim.SetFaults(mgmttest.Faults{Drop: 1})
			before, total := e.sim.State(), e.sim.Stats().Total
			err := k.run(context.Background(), e.client, org, conn)
			ne := networkError(t, err)
			if ne.Method != k.method || ne.Path != k.path(org, conn) || ne.Err == nil {
				t.Errorf("NetworkError{Method %q, Path %q, Err %v}, want %s %s and a cause", ne.Method, ne.Path, ne.Err, k.method, k.path(org, conn))
			}
			if StatusOf(err) != 0 {
				t.Errorf("StatusOf = %d, want 0", StatusOf(err))
			}
			var ae *APIError
			if errors.As(err, &ae) {
				t.Errorf("a dropped connection is also an *APIError: %v", ae)
			}
			if after := e.sim.State(); !reflect.DeepEqual(after, before) {
				t.Errorf("a dropped request changed the tenant")
			}
			// A write is never resent, so it reached the tenant once. net/http's
			// transport resends a GET once when a reused connection closes without
			// an answer, so a read may have reached it twice.
			sent := e.sim.Stats().Total - total
			if k.class == Write && sent != 1 || k.class == Read && (sent < 1 || sent > 2) {
				t.Errorf("%s reached the tenant %d times, want 1 for a write, 1 or 2 for a read", k.name, sent)
			}
		})
	}
}

func TestLostResponseOnWriteIsNetworkErrorButTheWriteIsApplied(t *testing.T) {
	tests := []struct {
		name string
		run  func(e *env, org string, saml, oidc mgmttest.Connection) error
		want func(saml, oidc mgmttest.Connection) map[string]mgmttest.EnabledConnection
	}{
		{"Enable", func(e *env, org string, _, oidc mgmttest.Connection) error {
			_, err := e.client.Enable(context.Background(), org, oidc.ID, Settings{AssignMembershipOnLogin: ptr(true)})
			return err
		}, func(saml, oidc mgmttest.Connection) map[string]mgmttest.EnabledConnection {
			return map[string]mgmttest.EnabledConnection{
				saml.ID: {ConnectionID: saml.ID, ShowAsButton: true},
				oidc.ID: {ConnectionID: oidc.ID, ShowAsButton: true, AssignMembershipOnLogin: true},
			}
		}},
		{"Update", func(e *env, org string, saml, _ mgmttest.Connection) error {
			_, err := e.client.Update(context.Background(), org, saml.ID, Settings{ShowAsButton: ptr(false)})
			return err
		}, func(saml, _ mgmttest.Connection) map[string]mgmttest.EnabledConnection {
			return map[string]mgmttest.EnabledConnection{saml.ID: {ConnectionID: saml.ID}}
		}},
		{"Remove", func(e *env, org string, saml, _ mgmttest.Connection) error {
			return e.client.Remove(context.Background(), org, saml.ID)
		}, func(mgmttest.Connection, mgmttest.Connection) map[string]mgmttest.EnabledConnection { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, mgmttest.Config{Faults: mgmttest.Faults{LostResponse: 1}})
			org, saml, oidc := e.org(), e.conn("samlp"), e.conn("oidc")
			e.enable(org, saml)
			err := tt.run(e, org, saml, oidc)
			networkError(t, err)
			if got, want := e.sim.State()[org], tt.want(saml, oidc); !reflect.DeepEqual(got, want) {
				t.Errorf("state %v, want %v: the write was applied", got, want)
			}
			if st := e.sim.Stats(); st.Writes != 1 || st.Total != 1 {
				t.Errorf("stats %v, want one request, applied once", st)
			}
		})
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }

// revokedThenFresh hands out, in turn, tokens the tenant revoked and then
// fresh ones from cc: a refresh that races a revocation of every token (the
// refreshed token was fetched, or cached by a concurrent call, just before
// the revocation).
type revokedThenFresh struct {
	mu      sync.Mutex
	revoked []string
	cc      *ClientCredentials
}

func (r *revokedThenFresh) Token(ctx context.Context) (string, error) {
	r.mu.Lock()
	if len(r.revoked) > 0 {
		t := r.revoked[0]
		r.revoked = r.revoked[1:]
		r.mu.Unlock()
		return t, nil
	}
	r.mu.Unlock()
	return r.cc.Token(ctx)
}

func (r *revokedThenFresh) Invalidate(token string) { r.cc.Invalidate(token) }

func TestTokenRevokedWhileRefreshingIsRefreshedAgain(t *testing.T) {
	sim := mgmttest.New(mgmttest.Config{ClientID: testClientID, ClientSecret: testSecret})
	base := serve(t, sim)
	src := &revokedThenFresh{cc: NewClientCredentials(base, testClientID, testSecret, nil),
		revoked: []string{sim.IssueToken(mgmttest.DefaultScopes(), 0), sim.IssueToken(mgmttest.DefaultScopes(), 0)}}
	sim.ExpireTokens()
	c := newClient(t, Config{BaseURL: base, Tokens: src})
	org := sim.Orgs()[0]
	if _, err := c.List(context.Background(), org, 0, 50); err != nil {
		t.Fatalf("List after two revoked tokens: %v", err)
	}
	if st := sim.Stats(); st.Total != 3 {
		t.Errorf("stats %v, want 3 API requests: two refused, then a fresh token", st)
	}
}
