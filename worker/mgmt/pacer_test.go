package mgmt

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// wantExchanges fails the test unless calls are, for each exchange in want,
// a Wait for its class made before the request reached the tenant, then an
// Observe of exactly that exchange made after it did. first is the
// simulator's request count before the first Wait.
func wantExchanges(t *testing.T, calls []pacerCall, first int, want ...Exchange) {
	t.Helper()
	if len(calls) != 2*len(want) {
		t.Fatalf("pacer saw %d calls, want %d (a Wait and an Observe per request): %+v", len(calls), 2*len(want), calls)
	}
	for i, ex := range want {
		w, o := calls[2*i], calls[2*i+1]
		if !w.wait || w.class != ex.Class || w.total != first+i {
			t.Errorf("request %d: call %+v, want Wait(%v) with %d requests sent so far", i+1, w, ex.Class, first+i)
		}
		if o.wait || o.total != first+i+1 {
			t.Errorf("request %d: call %+v, want Observe after the request reached the tenant (%d requests)", i+1, o, first+i+1)
		}
		if o.ex != ex {
			t.Errorf("request %d: Observe(%+v), want %+v", i+1, o.ex, ex)
		}
		if w.ticket == nil || o.ticket != w.ticket {
			t.Errorf("request %d: Observe got ticket %v, Wait handed out %v", i+1, o.ticket, w.ticket)
		}
	}
}

func TestPacerWaitsBeforeAndObservesAfterEveryRequest(t *testing.T) {
	e := setup(t, mgmttest.Config{
		Read:  mgmttest.Bucket{Burst: 10, Rate: 1},
		Write: mgmttest.Bucket{Burst: 5, Rate: 1},
	})
	org, saml, oidc := e.org(), e.conn("samlp"), e.conn("oidc")
	e.enable(org, saml)
	rl := func(limit, remaining int, resetIn time.Duration) RateLimit {
		return RateLimit{Present: true, Limit: limit, Remaining: remaining, Reset: epoch.Add(resetIn)}
	}
	// Run in order against one tenant: each request takes a token from its
	// bucket, which refills at 1/s on a clock that does not move.
	tests := []struct {
		call   call
		conn   string
		status int
		rl     RateLimit
	}{
		{listCall, "", 200, rl(10, 9, time.Second)},
		{getCall, saml.ID, 200, rl(10, 8, 2*time.Second)},
		{enableCall, oidc.ID, 201, rl(5, 4, time.Second)},
		{updateCall, saml.ID, 200, rl(5, 3, 2*time.Second)},
		{removeCall, saml.ID, 204, rl(5, 2, 3*time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.call.name, func(t *testing.T) {
			e.pacer.take()
			first := e.sim.Stats().Total
			if err := tt.call.run(context.Background(), e.client, org, tt.conn); err != nil {
				t.Fatalf("%s: %v", tt.call.name, err)
			}
			wantExchanges(t, e.pacer.take(), first, Exchange{
				Class: tt.call.class, Method: tt.call.method, Status: tt.status, RateLimit: tt.rl, Sent: epoch, Received: epoch,
			})
		})
	}
}

func TestPacerSeesTheRetryAfterA401(t *testing.T) {
	e := setup(t, mgmttest.Config{Read: mgmttest.Bucket{Burst: 10, Rate: 1}})
	org, saml := e.org(), e.conn("samlp")
	e.enable(org, saml)
	ctx := context.Background()
	if _, err := e.client.Get(ctx, org, saml.ID); err != nil {
		t.Fatalf("first Get: %v", err)
	}
	e.sim.ExpireTokens()
	e.pacer.take()
	first := e.sim.Stats().Total
	if _, err := e.client.Get(ctx, org, saml.ID); err != nil {
		t.Fatalf("Get after ExpireTokens: %v", err)
	}
	// The 401 is refused before rate limiting, so it takes no token.
	wantExchanges(t, e.pacer.take(), first,
		Exchange{Class: Read, Method: "GET", Status: 401, RateLimit: RateLimit{Present: true, Limit: 10, Remaining: 9, Reset: epoch.Add(time.Second)}, Sent: epoch, Received: epoch},
		Exchange{Class: Read, Method: "GET", Status: 200, RateLimit: RateLimit{Present: true, Limit: 10, Remaining: 8, Reset: epoch.Add(2 * time.Second)}, Sent: epoch, Received: epoch},
	)
}

func TestPacerSeesStatus0ForADroppedConnection(t *testing.T) {
	e := setup(t, mgmttest.Config{Faults: mgmttest.Faults{Drop: 1}, Write: mgmttest.Bucket{Burst: 5, Rate: 1}})
	_, err := e.client.Enable(context.Background(), e.org(), e.conn("samlp").ID, Settings{})
	networkError(t, err)
	calls := e.pacer.take()
	if len(calls) != 2 || !calls[0].wait || calls[0].class != Write || calls[0].total != 0 || calls[1].wait || calls[1].total != 1 {
		t.Fatalf("pacer calls %+v, want Wait(write) before the request and one Observe after it", calls)
	}
	if want := (Exchange{Class: Write, Method: "POST", Sent: epoch, Received: epoch}); calls[1].ex != want {
		t.Errorf("Observe(%+v), want %+v: status 0 and no rate limit when no answer came", calls[1].ex, want)
	}
}

func TestPacerWaitErrorStopsTheCallBeforeAnyRequest(t *testing.T) {
	errClosed := errors.New("rate budget closed")
	for _, k := range allCalls {
		t.Run(k.name, func(t *testing.T) {
			e := setup(t, mgmttest.Config{})
			e.pacer.waitErr = errClosed
			err := k.run(context.Background(), e.client, e.org(), e.conn("samlp").ID)
			if !errors.Is(err, errClosed) {
				t.Fatalf("error %v, want the Pacer's error", err)
			}
			if st := e.sim.Stats(); st.Total != 0 {
				t.Errorf("%d API requests sent, want 0", st.Total)
			}
			if calls := e.pacer.take(); !reflect.DeepEqual(calls, []pacerCall{{wait: true, class: k.class}}) {
				t.Errorf("pacer calls %+v, want only Wait(%v)", calls, k.class)
			}
		})
	}
}
