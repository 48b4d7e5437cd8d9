package mgmttest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// epoch is the fake clock's start: a whole UNIX second, so Reset arithmetic is easy to follow.
var epoch = time.Unix(1_700_000_000, 0)

// fakeClock is a manually advanced clock for Config.Now.
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

// sim is a simulator behind httptest with a fake clock and an all-scopes token.
type sim struct {
	t      *testing.T
	srv    *Server
	ts     *httptest.Server
	clock  *fakeClock
	token  string
	client *http.Client
}

// setup starts New(cfg) behind httptest. A nil cfg.Now is replaced by a fake clock. The client
// does not keep connections alive, so a dropped connection is never retried by the transport.
func setup(t *testing.T, cfg Config) *sim {
	t.Helper()
	clock := newClock()
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	srv := New(cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &sim{
		t:      t,
		srv:    srv,
		ts:     ts,
		clock:  clock,
		token:  srv.IssueToken(DefaultScopes(), 0),
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second},
	}
}

// response is a fully read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send performs a request; body "" sends none, otherwise it is sent as application/json unless
// hdr sets Content-Type. hdr pairs are header name, value; "Authorization" overrides the token.
func (s *sim) send(method, path, body string, hdr ...string) (response, error) {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.ts.URL+path, rd)
	if err != nil {
		s.t.Fatalf("building %s %s: %v", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := s.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: res.StatusCode, header: res.Header, body: b}, nil
}

// do is send that fails the test on a transport error.
func (s *sim) do(method, path, body string, hdr ...string) response {
	s.t.Helper()
	r, err := s.send(method, path, body, hdr...)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// orgPath returns the enabled-connections path of org, with conn appended when given.
func orgPath(org string, conn ...string) string {
	p := "/api/v2/organizations/" + org + "/enabled_connections"
	for _, c := range conn {
		p += "/" + c
	}
	return p
}

// wantStatus fails the test unless r has status.
func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
}

// wantJSON fails the test unless r's body is JSON equal to want (a JSON text).
func wantJSON(t *testing.T, r response, want string) {
	t.Helper()
	var got, exp any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad expectation %q: %v", want, err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("body\n got  %s\n want %s", r.body, want)
	}
}

// apiErr decodes r's body as an Auth0 error.
func apiErr(t *testing.T, r response) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("body %q is not an Auth0 error: %v", r.body, err)
	}
	return e
}

// conns returns the tenant's connection ids by strategy, in index order.
func (s *sim) conns(strategy string) []string {
	var ids []string
	for _, c := range s.srv.Connections() {
		if c.Strategy == strategy {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// org returns the tenant's i-th organization id.
func (s *sim) org(i int) string { return s.srv.Orgs()[i] }
