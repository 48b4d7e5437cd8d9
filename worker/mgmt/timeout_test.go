package mgmt

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

func TestTimeoutIsNetworkErrorWrappingDeadlineExceeded(t *testing.T) {
	for _, k := range []call{getCall, enableCall} {
		t.Run(k.name, func(t *testing.T) {
			// The simulator stops waiting as soon as the client hangs up, so the
			// long latency costs only the 50 ms timeout.
			e := setup(t, mgmttest.Config{Faults: mgmttest.Faults{Latency: 5 * time.Second}},
				func(c *Config) { c.Timeout = 50 * time.Millisecond })
			org, saml, oidc := e.org(), e.conn("samlp"), e.conn("oidc")
			e.enable(org, saml)
			conn := saml.ID
			if k.name == "Enable" {
				conn = oidc.ID
			}
			before := e.sim.State()
			err := k.run(context.Background(), e.client, org, conn)
			ne := networkError(t, err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
			}
			if ne.Method != k.method || ne.Path != k.path(org, conn) {
				t.Errorf("NetworkError for %s %s, want %s %s", ne.Method, ne.Path, k.method, k.path(org, conn))
			}
			calls := e.pacer.take()
			if want := (Exchange{Class: k.class, Method: k.method, Sent: epoch, Received: epoch}); len(calls) != 2 || calls[1].ex != want {
				t.Errorf("pacer calls %+v, want Wait then Observe(%+v)", calls, want)
			}
			if after := e.sim.State(); !reflect.DeepEqual(after, before) {
				t.Errorf("a timed-out request changed the tenant")
			}
		})
	}
}

// cancelOnArrival cancels a context as soon as an /api/v2 request arrives,
// then hands the request to next.
type cancelOnArrival struct {
	cancel context.CancelFunc
	next   http.Handler
}

func (h cancelOnArrival) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/v2/") {
		h.cancel()
	}
	h.next.ServeHTTP(w, r)
}

func TestCallerCancellationReturnsContextCanceled(t *testing.T) {
	tests := []struct {
		name string
		// start returns the context to call with and the handler to serve.
		start func(sim *mgmttest.Server) (context.Context, http.Handler)
	}{
		{"cancelled before the call", func(sim *mgmttest.Server) (context.Context, http.Handler) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, sim
		}},
		{"cancelled while waiting for the answer", func(sim *mgmttest.Server) (context.Context, http.Handler) {
			ctx, cancel := context.WithCancel(context.Background())
			return ctx, cancelOnArrival{cancel, sim}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := mgmttest.New(mgmttest.Config{Faults: mgmttest.Faults{Latency: 5 * time.Second}})
			ctx, h := tt.start(sim)
			p := &recordingPacer{}
			c := newClient(t, Config{BaseURL: serve(t, h), Tokens: StaticToken(sim.IssueToken(mgmttest.DefaultScopes(), 0)), Pacer: p})
			_, err := c.Get(ctx, sim.Orgs()[0], "con_1")
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error %v (%T), want context.Canceled", err, err)
			}
			var ne *NetworkError
			var ae *APIError
			if errors.As(err, &ne) || errors.As(err, &ae) {
				t.Errorf("error %T %v, want context.Canceled itself, not a network or API error", err, err)
			}
			if st := sim.Stats(); st.Requests("", 200) != 0 {
				t.Errorf("a cancelled call was answered: %v", st)
			}
		})
	}
}
