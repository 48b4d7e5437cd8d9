package mgmttest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFault503(t *testing.T) {
	s := setup(t, Config{Seed: 40, Global: Bucket{Burst: 2, Rate: 1}, Faults: Faults{Error5xx: 1}})
	org, c := s.org(0), s.srv.Connections()[0].ID
	r := s.do("POST", orgPath(org), `{"connection_id":"`+c+`"}`)
	wantStatus(t, r, 503)
	wantJSON(t, r, `{"statusCode":503,"error":"Service Unavailable","message":"The service is temporarily unavailable. Please try again later."}`)
	if got := rateOf(t, r); got.remaining != 1 {
		t.Fatalf("a 503 must still consume a token: %+v", got)
	}
	// Authentication and rate limiting are checked before faults; validation and existence after.
	wantStatus(t, s.do("GET", orgPath(org), "", "Authorization", "Bearer nope"), 401)
	wantStatus(t, s.do("GET", orgPath("org_nope"), ""), 503)
	wantStatus(t, s.do("GET", orgPath(org), ""), 429)
	if len(s.srv.State()) != 0 {
		t.Fatalf("a 503 applied the write: %v", s.srv.State())
	}
	st := s.srv.Stats()
	if st.Faults[FaultError5xx] != 2 || st.Writes != 0 || st.Throttled != 1 || st.Total != 4 {
		t.Fatalf("stats %v", st)
	}
}

func TestFaultDrop(t *testing.T) {
	s := setup(t, Config{Seed: 41, Write: Bucket{Burst: 3, Rate: 1}, Faults: Faults{Drop: 1}})
	org, c := s.org(0), s.srv.Connections()[0].ID
	if _, err := s.send("POST", orgPath(org), `{"connection_id":"`+c+`"}`); err == nil {
		t.Fatal("a dropped connection gave the client a response")
	}
	if len(s.srv.State()) != 0 {
		t.Fatalf("a dropped request applied the write: %v", s.srv.State())
	}
	st := s.srv.Stats()
	if st.Faults[FaultDrop] != 1 || st.Count("POST", RouteEnabledConnections, 0) != 1 || st.Writes != 0 {
		t.Fatalf("stats %v", st)
	}
	// The dropped request consumed its token.
	s.srv.SetFaults(Faults{})
	r := s.do("POST", orgPath(org), `{"connection_id":"`+c+`"}`)
	wantStatus(t, r, 201)
	if got := rateOf(t, r); got.remaining != 1 {
		t.Fatalf("remaining %d, want 1", got.remaining)
	}
}

func TestFaultLostResponse(t *testing.T) {
	s := setup(t, Config{Seed: 42, Faults: Faults{LostResponse: 1}})
	org, c := s.org(0), s.srv.Connections()[0].ID
	if _, err := s.send("POST", orgPath(org), `{"connection_id":"`+c+`"}`); err == nil {
		t.Fatal("a lost response reached the client")
	}
	if _, ok := s.srv.State()[org][c]; !ok {
		t.Fatalf("a lost-response write was not applied: %v", s.srv.State())
	}
	// Reads and failing writes are answered.
	wantStatus(t, s.do("GET", orgPath(org, c), ""), 200)
	wantStatus(t, s.do("POST", orgPath(org), `{"connection_id":"`+c+`"}`), 409)
	wantStatus(t, s.do("DELETE", orgPath("org_nope", c), ""), 404)
	if _, err := s.send("DELETE", orgPath(org, c), ""); err == nil {
		t.Fatal("a lost response reached the client")
	}
	if len(s.srv.State()) != 0 {
		t.Fatalf("lost-response delete not applied: %v", s.srv.State())
	}
	st := s.srv.Stats()
	if st.Faults[FaultLostResponse] != 2 || st.Writes != 2 || st.FirstWrite != epoch || st.Count("DELETE", RouteEnabledConnection, 0) != 1 {
		t.Fatalf("stats %v", st)
	}
}

func TestFaultLatencyHonoursContext(t *testing.T) {
	s := setup(t, Config{Seed: 43, Faults: Faults{Latency: time.Hour}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c := s.srv.Connections()[0].ID
	req, _ := http.NewRequestWithContext(ctx, "POST", s.ts.URL+orgPath(s.org(0)), strings.NewReader(`{"connection_id":"`+c+`"}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	if res, err := s.client.Do(req); err == nil {
		res.Body.Close()
		t.Fatal("request completed despite an hour of latency")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("cancellation did not end the request promptly")
	}
	// The handler notices the closed connection and records no response. Closing the test
	// server waits for outstanding handlers, so no polling is needed.
	s.ts.Close()
	if st := s.srv.Stats(); st.Count("POST", RouteEnabledConnections, 0) != 1 {
		t.Fatalf("stats %v", st)
	}
	if len(s.srv.State()) != 0 {
		t.Fatal("a cancelled request applied the write")
	}
}

func TestFaultLatencyDelays(t *testing.T) {
	s := setup(t, Config{Seed: 44, Faults: Faults{Latency: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}})
	start := time.Now()
	wantStatus(t, s.do("GET", orgPath(s.org(0)), ""), 200)
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("answered after %v, want at least 20ms", d)
	}
	// Only /api/v2 is delayed; jitter stays below its bound.
	for range 100 {
		if d := s.srv.latency(Faults{Latency: time.Millisecond, Jitter: 3 * time.Millisecond}); d < time.Millisecond || d >= 4*time.Millisecond {
			t.Fatalf("latency %v outside [1ms, 4ms)", d)
		}
	}
}

func TestFaultsAreReproducible(t *testing.T) {
	statuses := func() string {
		s := setup(t, Config{Seed: 45, Faults: Faults{Error5xx: 0.5}})
		var b strings.Builder
		for range 40 {
			r := s.do("GET", orgPath(s.org(0)), "")
			b.WriteString(http.StatusText(r.status)[:1])
		}
		return b.String()
	}
	a, b := statuses(), statuses()
	if a != b {
		t.Fatalf("same seed, different faults:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "O") || !strings.Contains(a, "S") {
		t.Fatalf("p=0.5 over 40 requests gave %s", a)
	}
}

func TestDropWithoutHijackerAborts(t *testing.T) {
	srv := New(Config{Seed: 46, Now: newClock().Now, Faults: Faults{Drop: 1}})
	tok := srv.IssueToken(DefaultScopes(), 0)
	req := httptest.NewRequest("GET", orgPath(srv.Orgs()[0]), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", v)
		}
	}()
	srv.ServeHTTP(httptest.NewRecorder(), req)
}
