package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// tokenServer is an /oauth/token endpoint that issues "tok-1", "tok-2", …
// valid for expiresIn seconds and records each request. When gate is set,
// each request waits for it to close; arrived, when set, gets a value when a
// request comes in.
type tokenServer struct {
	expiresIn int
	gate      chan struct{}
	arrived   chan struct{}

	mu      sync.Mutex
	n       int
	bodies  []map[string]string
	headers []http.Header
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]string
	_ = json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	s.n++
	n := s.n
	s.bodies = append(s.bodies, body)
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	if s.arrived != nil {
		s.arrived <- struct{}{}
	}
	if s.gate != nil {
		<-s.gate
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":%d,"scope":"read:organization_connections"}`, n, s.expiresIn)
}

func (s *tokenServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// credentials returns a ClientCredentials for the tenant at base whose clock
// is clock (nil: the real clock).
func credentials(t *testing.T, base string, clock *fakeClock) *ClientCredentials {
	t.Helper()
	cc := NewClientCredentials(base, testClientID, testSecret, nil)
	if clock != nil {
		cc.now = clock.Now
	}
	t.Cleanup(cc.http.CloseIdleConnections)
	return cc
}

// token calls cc.Token, failing the test on an error.
func token(t *testing.T, cc *ClientCredentials) string {
	t.Helper()
	tok, err := cc.Token(context.Background())
	if err != nil {
		noSecret(t, err)
		t.Fatalf("Token: %v", err)
	}
	return tok
}

func TestClientCredentialsPostsTheGrant(t *testing.T) {
	srv := &tokenServer{expiresIn: 86400}
	base := serve(t, srv)
	if got := token(t, credentials(t, base, nil)); got != "tok-1" {
		t.Fatalf("Token = %q, want tok-1", got)
	}
	want := map[string]string{"grant_type": "client_credentials", "client_id": testClientID, "client_secret": testSecret, "audience": base + "/api/v2/"}
	if !reflect.DeepEqual(srv.bodies[0], want) {
		t.Errorf("token request body %v, want %v", srv.bodies[0], want)
	}
	if h := srv.headers[0]; h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != DefaultUserAgent {
		t.Errorf("token request Content-Type %q, User-Agent %q; want application/json and DefaultUserAgent", h.Get("Content-Type"), h.Get("User-Agent"))
	}
}

func TestClientCredentialsConcurrentCallersShareOneFetch(t *testing.T) {
	const callers = 32
	srv := &tokenServer{expiresIn: 86400, gate: make(chan struct{}), arrived: make(chan struct{}, callers)}
	cc := credentials(t, serve(t, srv), nil)
	var started, done sync.WaitGroup
	started.Add(callers)
	done.Add(callers)
	tokens := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		go func() {
			defer done.Done()
			started.Done()
			tokens[i], errs[i] = cc.Token(context.Background())
		}()
	}
	<-srv.arrived // one fetch is in flight and held
	started.Wait()
	close(srv.gate)
	done.Wait()
	for i := range callers {
		if errs[i] != nil || tokens[i] != "tok-1" {
			t.Errorf("caller %d: %q, %v; want tok-1", i, tokens[i], errs[i])
		}
	}
	if n, f := srv.count(), cc.Fetches(); n != 1 || f != 1 {
		t.Errorf("token endpoint hit %d times, Fetches %d; want 1 shared fetch", n, f)
	}
}

func TestConcurrentCallsThroughTheClientFetchOneToken(t *testing.T) {
	e := setup(t, mgmttest.Config{})
	org, conn := e.org(), e.conn("samlp")
	e.enable(org, conn)
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { _, errs[i] = e.client.Get(context.Background(), org, conn.ID) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if st := e.sim.Stats(); st.TokensIssued != 1 || st.Count(http.MethodGet, mgmttest.RouteEnabledConnection, 200) != 16 {
		t.Errorf("stats %v, want 1 token issued and 16 answered GETs", st)
	}
}

func TestClientCredentialsCancelledCallerDoesNotFailTheSharedFetch(t *testing.T) {
	srv := &tokenServer{expiresIn: 86400, gate: make(chan struct{}), arrived: make(chan struct{}, 1)}
	cc := credentials(t, serve(t, srv), nil)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := cc.Token(ctx)
		res <- err
	}()
	<-srv.arrived
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
	close(srv.gate)
	if got := token(t, cc); got != "tok-1" {
		t.Errorf("next caller got %q, want tok-1 from the fetch the cancelled caller started", got)
	}
	if n := srv.count(); n != 1 {
		t.Errorf("token endpoint hit %d times, want 1", n)
	}
}

func TestClientCredentialsRefreshesBeforeExpiry(t *testing.T) {
	tests := []struct {
		name      string
		expiresIn int
		cached    time.Duration // still cached this long after the fetch
		refreshed time.Duration // fetched again this long after it
	}{
		{"a minute: a tenth of the lifetime early", 60, 53 * time.Second, 54 * time.Second},
		{"ten seconds: one second early", 10, 8 * time.Second, 9 * time.Second},
		{"a day: five minutes early", 86400, 86099 * time.Second, 86100 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &tokenServer{expiresIn: tt.expiresIn}
			clock := newClock()
			cc := credentials(t, serve(t, srv), clock)
			if got := token(t, cc); got != "tok-1" {
				t.Fatalf("first Token = %q, want tok-1", got)
			}
			clock.Advance(tt.cached)
			if got := token(t, cc); got != "tok-1" || srv.count() != 1 {
				t.Fatalf("Token %v after the fetch = %q after %d fetches, want the cached tok-1", tt.cached, got, srv.count())
			}
			clock.Advance(tt.refreshed - tt.cached)
			if got := token(t, cc); got != "tok-2" || srv.count() != 2 {
				t.Fatalf("Token %v after the fetch = %q after %d fetches, want a new tok-2", tt.refreshed, got, srv.count())
			}
		})
	}
}

func TestClientCredentialsInvalidateDropsOnlyTheRefusedToken(t *testing.T) {
	srv := &tokenServer{expiresIn: 86400}
	cc := credentials(t, serve(t, srv), nil)
	first := token(t, cc)
	cc.Invalidate("some-older-token")
	if got := token(t, cc); got != first || srv.count() != 1 {
		t.Fatalf("after invalidating another token: %q after %d fetches, want the cached %q", got, srv.count(), first)
	}
	cc.Invalidate(first)
	if got := token(t, cc); got != "tok-2" || srv.count() != 2 {
		t.Fatalf("after invalidating the cached token: %q after %d fetches, want a new tok-2", got, srv.count())
	}
	cc.Invalidate(first) // a late 401 for the old token keeps the new one
	if got := token(t, cc); got != "tok-2" || srv.count() != 2 {
		t.Fatalf("after a late Invalidate of the old token: %q after %d fetches, want tok-2 kept", got, srv.count())
	}
}

func TestTokenEndpoint401IsTokenErrorWithoutTheSecret(t *testing.T) {
	sim := mgmttest.New(mgmttest.Config{ClientID: testClientID, ClientSecret: "the-tenant-knows-another-secret"})
	base := serve(t, sim)
	cc := credentials(t, base, nil)

	_, err := cc.Token(context.Background())
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("Token: %v (%T), want *TokenError", err, err)
	}
	if te.Status != 401 || te.Reason != "access_denied: Unauthorized" {
		t.Errorf("TokenError{Status %d, Reason %q}, want 401 and %q", te.Status, te.Reason, "access_denied: Unauthorized")
	}
	if want := "get Management API token: 401: access_denied: Unauthorized"; err.Error() != want {
		t.Errorf("error text %q, want %q", err.Error(), want)
	}
	if strings.Contains(err.Error(), testSecret) {
		t.Errorf("error text carries the client secret: %q", err.Error())
	}

	// A failed fetch is not cached, and a call through the client fails
	// before it sends anything: it waited on the Pacer (the token is taken
	// after the wait, so that it is fresh when sent) and never reports an
	// exchange.
	p := &recordingPacer{}
	c := newClient(t, Config{BaseURL: base, Tokens: cc, Pacer: p})
	_, err = c.Get(context.Background(), sim.Orgs()[0], "con_1")
	noSecret(t, err)
	if !errors.As(err, &te) || StatusOf(err) != 401 {
		t.Errorf("Get: %v, want the *TokenError with status 401", err)
	}
	if cc.Fetches() != 2 {
		t.Errorf("%d fetches, want 2: a failed fetch is not cached", cc.Fetches())
	}
	if st := sim.Stats(); st.Total != 0 {
		t.Errorf("%d API requests sent without a token, want 0", st.Total)
	}
	if calls := p.take(); len(calls) != 1 || !calls[0].wait {
		t.Errorf("pacer calls %+v, want one Wait and no Observe", calls)
	}
}

func TestTokenErrorsNeverCarryTheSecret(t *testing.T) {
	answer := func(status int, contentType, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		})
	}
	tests := []struct {
		name    string
		h       http.Handler // nil: nothing listens
		status  int
		reason  string // "" means any
		wantErr string // a part of the error text
	}{
		{"403 audience refused", answer(403, "application/json", `{"error":"access_denied","error_description":"Service not enabled within domain: https://x/api/v2/"}`),
			403, "access_denied: Service not enabled within domain: https://x/api/v2/", "403"},
		{"500 with an HTML body", answer(500, "text/html", "<html>oops</html>"), 500, "Internal Server Error", "500"},
		{"429 without a body", answer(429, "application/json", ""), 429, "Too Many Requests", "429"},
		{"200 without access_token", answer(200, "application/json", `{"token_type":"Bearer","expires_in":60}`), 200, "response has no access_token", "no access_token"},
		{"200 not JSON", answer(200, "text/plain", "tok"), 200, "response has no access_token", "no access_token"},
		{"200 with another token type", answer(200, "application/json", `{"access_token":"a","token_type":"mac","expires_in":60}`), 200, `token_type "mac", want Bearer`, "want Bearer"},
		{"200 without expires_in", answer(200, "application/json", `{"access_token":"a","token_type":"Bearer"}`), 200, "response has no positive expires_in", "expires_in"},
		{"nothing listening", nil, 0, "", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var base string
			if tt.h != nil {
				base = serve(t, tt.h)
			} else {
				ts := httptest.NewServer(http.NotFoundHandler())
				base = ts.URL
				ts.Close()
			}
			_, err := credentials(t, base, nil).Token(context.Background())
			noSecret(t, err)
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("Token: %v (%T), want *TokenError", err, err)
			}
			if te.Status != tt.status || tt.reason != "" && te.Reason != tt.reason {
				t.Errorf("TokenError{Status %d, Reason %q}, want %d and %q", te.Status, te.Reason, tt.status, tt.reason)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error text %q does not say %q", err.Error(), tt.wantErr)
			}
		})
	}
}

// Two credentials that differ only in the secret have different
// identities (a process with a wrong secret must not borrow the fleet's
// token), and the identity does not hold the secret.
func TestIdentityDependsOnTheSecretWithoutHoldingIt(t *testing.T) {
	a := NewClientCredentials("https://t.example", "client", "right-secret", nil)
	b := NewClientCredentials("https://t.example", "client", "wrong-secret", nil)
	if a.Identity() == b.Identity() {
		t.Errorf("identities equal for different secrets: %q", a.Identity())
	}
	if a.Identity() != NewClientCredentials("https://t.example", "client", "right-secret", nil).Identity() {
		t.Error("identity is not stable for the same credentials")
	}
	if strings.Contains(a.Identity(), "right-secret") {
		t.Errorf("identity %q holds the secret", a.Identity())
	}
}
