package mgmt

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// The client credentials every test uses. The secret is distinctive so that
// any error string that carries it is caught by noSecret.
const (
	testClientID = "orgconn-test-client"
	testSecret   = "S3CRET-must-never-leak-9f8e7d6c"
)

// epoch is the fake clock's start: a whole UNIX second, so X-RateLimit-Reset
// arithmetic is exact.
var epoch = time.Unix(1_700_000_000, 0)

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// pacerCall is one call a recordingPacer saw.
type pacerCall struct {
	wait  bool     // Wait (true) or Observe (false)
	class Class    // the class waited for, or ex.Class
	ex    Exchange // for Observe
	total int      // the simulator's request count at the time of the call
	// ticket is what Wait handed out, or what Observe got back; a test
	// checks they pair up.
	ticket Ticket
}

// recordingPacer is a Pacer that records every call, with the simulator's
// request count at that moment (so a test can tell whether the request had
// been sent yet), and fails Wait with waitErr when it is set.
type recordingPacer struct {
	total   func() int
	waitErr error

	mu     sync.Mutex
	calls  []pacerCall
	issued int
}

func (p *recordingPacer) Wait(_ context.Context, c Class) (Ticket, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waitErr != nil {
		p.calls = append(p.calls, pacerCall{wait: true, class: c, total: p.count()})
		return nil, p.waitErr
	}
	p.issued++
	t := p.issued
	p.calls = append(p.calls, pacerCall{wait: true, class: c, total: p.count(), ticket: t})
	return t, nil
}

func (p *recordingPacer) Observe(t Ticket, e Exchange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, pacerCall{class: e.Class, ex: e, total: p.count(), ticket: t})
}

func (p *recordingPacer) count() int {
	if p.total == nil {
		return 0
	}
	return p.total()
}

// take returns the calls recorded so far and forgets them.
func (p *recordingPacer) take() []pacerCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	calls := p.calls
	p.calls = nil
	return calls
}

// env is a client wired to a simulated tenant.
type env struct {
	t      *testing.T
	sim    *mgmttest.Server
	url    string
	clock  *fakeClock // the simulator's and the client's clock
	creds  *ClientCredentials
	client *Client
	pacer  *recordingPacer
}

// setup serves mgmttest.New(cfg) over httptest and builds a Client on it
// with client-credentials tokens, a recording Pacer and the fake clock. The
// test credentials replace cfg's; a nil cfg.Now is replaced by the fake clock.
// adjust, when given, may change the client's Config before New.
func setup(t *testing.T, cfg mgmttest.Config, adjust ...func(*Config)) *env {
	t.Helper()
	clock := newClock()
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	cfg.ClientID, cfg.ClientSecret = testClientID, testSecret
	sim := mgmttest.New(cfg)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)

	e := &env{t: t, sim: sim, url: ts.URL, clock: clock}
	e.pacer = &recordingPacer{total: func() int { return sim.Stats().Total }}
	e.creds = NewClientCredentials(ts.URL, testClientID, testSecret, nil)
	t.Cleanup(e.creds.http.CloseIdleConnections)
	ccfg := Config{BaseURL: ts.URL, Tokens: e.creds, Pacer: e.pacer, Now: clock.Now}
	for _, f := range adjust {
		f(&ccfg)
	}
	c, err := New(ccfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.http.CloseIdleConnections)
	e.client = c
	return e
}

// serve serves h over httptest until the test ends and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

// newClient returns New(cfg), failing the test on an error.
func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.http.CloseIdleConnections)
	if cc, ok := cfg.Tokens.(*ClientCredentials); ok {
		t.Cleanup(cc.http.CloseIdleConnections)
	}
	return c
}

// conn returns the id of the first tenant connection with strategy.
func (e *env) conn(strategy string) mgmttest.Connection {
	e.t.Helper()
	for _, c := range e.sim.Connections() {
		if c.Strategy == strategy {
			return c
		}
	}
	e.t.Fatalf("the tenant has no %s connection", strategy)
	return mgmttest.Connection{}
}

// org returns the id of the tenant's first organization.
func (e *env) org() string { return e.sim.Orgs()[0] }

// enable seeds org with conns enabled (show_as_button true, the API default).
func (e *env) enable(org string, conns ...mgmttest.Connection) {
	state := map[string]mgmttest.EnabledConnection{}
	for _, c := range conns {
		state[c.ID] = mgmttest.EnabledConnection{ShowAsButton: true}
	}
	e.sim.SetState(org, state)
}

// noSecret fails the test when err's text carries the client secret.
func noSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testSecret) {
		t.Errorf("error text carries the client secret: %q", err.Error())
	}
}

// apiError returns err as an *APIError, failing the test when it is not one.
func apiError(t *testing.T, err error) *APIError {
	t.Helper()
	noSecret(t, err)
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T), want *APIError", err, err)
	}
	return ae
}

// networkError returns err as a *NetworkError, failing the test when it is
// not one.
func networkError(t *testing.T, err error) *NetworkError {
	t.Helper()
	noSecret(t, err)
	var ne *NetworkError
	if !errors.As(err, &ne) {
		t.Fatalf("error %v (%T), want *NetworkError", err, err)
	}
	return ne
}

// wantAPIError fails the test unless err is an *APIError equal to want in
// every field but RateLimit (which is compared only when want.RateLimit is
// set).
func wantAPIError(t *testing.T, err error, want APIError) {
	t.Helper()
	got := apiError(t, err)
	cmp := *got
	if !want.RateLimit.Present {
		cmp.RateLimit = RateLimit{}
	}
	if cmp != want {
		t.Errorf("error\n got  %#v\n want %#v", cmp, want)
	}
	if StatusOf(err) != want.Status {
		t.Errorf("StatusOf = %d, want %d", StatusOf(err), want.Status)
	}
}

// call is one of the five client calls, run against org and connection.
type call struct {
	name   string
	method string
	class  Class
	run    func(ctx context.Context, c *Client, org, conn string) error
}

var (
	listCall = call{"List", http.MethodGet, Read, func(ctx context.Context, c *Client, org, _ string) error {
		_, err := c.List(ctx, org, 0, 50)
		return err
	}}
	getCall = call{"Get", http.MethodGet, Read, func(ctx context.Context, c *Client, org, conn string) error {
		_, err := c.Get(ctx, org, conn)
		return err
	}}
	enableCall = call{"Enable", http.MethodPost, Write, func(ctx context.Context, c *Client, org, conn string) error {
		_, err := c.Enable(ctx, org, conn, Settings{})
		return err
	}}
	updateCall = call{"Update", http.MethodPatch, Write, func(ctx context.Context, c *Client, org, conn string) error {
		_, err := c.Update(ctx, org, conn, Settings{ShowAsButton: ptr(false)})
		return err
	}}
	removeCall = call{"Remove", http.MethodDelete, Write, func(ctx context.Context, c *Client, org, conn string) error {
		return c.Remove(ctx, org, conn)
	}}
	allCalls = []call{listCall, getCall, enableCall, updateCall, removeCall}
)

// path returns the request path (under /api/v2) call k makes for org and conn.
func (k call) path(org, conn string) string {
	if k.name == "List" || k.name == "Enable" {
		return mustOrgPath(org)
	}
	return mustConnPath(org, conn)
}

// mustOrgPath is orgPath for ids a test knows to be valid.
func mustOrgPath(org string) string {
	p, err := orgPath(org)
	if err != nil {
		panic(err)
	}
	return p
}

// mustConnPath is connPath for ids a test knows to be valid.
func mustConnPath(org, conn string) string {
	p, err := connPath(org, conn)
	if err != nil {
		panic(err)
	}
	return p
}

func ptr[T any](v T) *T { return &v }
