package mgmt

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// slowPacer makes every Wait last d on the fake clock, as a pacer holding a
// call for budget does, and counts releases of unused slots.
type slowPacer struct {
	clock    *fakeClock
	d        time.Duration
	released atomic.Int32
}

func (p *slowPacer) Wait(context.Context, Class) (Ticket, error) { p.clock.Advance(p.d); return 1, nil }
func (p *slowPacer) Observe(Ticket, Exchange)                    {}
func (p *slowPacer) Release(Ticket)                              { p.released.Add(1) }

// A pacer wait longer than the token's lifetime must not send an expired
// token: the token is taken after the wait (issue 11: 401 Expired token
// dead letters when waits were long).
func TestTokenIsTakenAfterAPacerWaitLongerThanItsLifetime(t *testing.T) {
	e := setup(t, mgmttest.Config{TokenTTL: 2 * time.Second})
	e.creds.now = e.clock.Now
	pacer := &slowPacer{clock: e.clock, d: 2500 * time.Millisecond}
	c := newClient(t, Config{BaseURL: e.url, Tokens: e.creds, Pacer: pacer, Now: e.clock.Now})
	org, conn := e.org(), e.conn("auth0")
	for i := 0; i < 5; i++ {
		if _, err := c.Enable(context.Background(), org, conn.ID, Settings{}); err != nil && StatusOf(err) != http.StatusConflict {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := e.sim.Stats().Requests("", http.StatusUnauthorized); n != 0 {
		t.Errorf("%d requests were refused with 401: an expired token was sent after a pacer wait", n)
	}
}

// A token that cannot be had after the pacer granted a slot gives the slot
// back.
func TestASlotIsReleasedWhenNoTokenCanBeHad(t *testing.T) {
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"error":"too_many_requests","error_description":"Rate limit exceeded"}`))
	}))
	clock := newClock()
	pacer := &slowPacer{clock: clock}
	c := newClient(t, Config{BaseURL: url, Tokens: credentials(t, url, clock), Pacer: pacer, Now: clock.Now})
	_, err := c.Enable(context.Background(), "org_1", "con_1", Settings{})
	var te *TokenError
	if !errors.As(err, &te) || !te.Throttled() {
		t.Fatalf("err = %v, want a throttled *TokenError", err)
	}
	if te.RetryAfter != 3*time.Second {
		t.Errorf("RetryAfter = %v, want 3s (the Retry-After header)", te.RetryAfter)
	}
	if n := pacer.released.Load(); n != 1 {
		t.Errorf("released %d slots, want 1", n)
	}
}

// Without Retry-After, a token endpoint's 429 asks to wait until
// X-RateLimit-Reset.
func TestTokenEndpoint429WaitsUntilReset(t *testing.T) {
	clock := newClock()
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Limit", "10")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(clock.Now().Unix()+2, 10))
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	_, err := credentials(t, url, clock).Token(context.Background())
	var te *TokenError
	if !errors.As(err, &te) || !te.Throttled() || te.RetryAfter != 2*time.Second {
		t.Fatalf("err = %#v, want a throttled *TokenError asking for 2s", err)
	}
}
