package apimode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
)

// tenant is a simulated tenant with a client on it.
type tenant struct {
	sim    *mgmttest.Server
	client *mgmt.Client
	url    string
}

// newTenant serves mgmttest.New(cfg) and returns a client with a token of scopes (all when
// nil).
func newTenant(t *testing.T, cfg mgmttest.Config, scopes []string) *tenant {
	t.Helper()
	sim := mgmttest.New(cfg)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	if scopes == nil {
		scopes = mgmttest.DefaultScopes()
	}
	c, err := mgmt.New(mgmt.Config{BaseURL: ts.URL, Tokens: mgmt.StaticToken(sim.IssueToken(scopes, 0))})
	if err != nil {
		t.Fatal(err)
	}
	return &tenant{sim: sim, client: c, url: ts.URL}
}

// probes counts the probe requests the simulator received, whatever their answer.
func (tn *tenant) probes() int { return tn.sim.Stats().Total }

func TestParse(t *testing.T) {
	for _, s := range []string{"legacy", "connections", "auto"} {
		if m, err := Parse(s); err != nil || string(m) != s {
			t.Errorf("Parse(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "Legacy", "new"} {
		if _, err := Parse(s); err == nil || !strings.Contains(err.Error(), "want legacy, connections or auto") {
			t.Errorf("Parse(%q): %v", s, err)
		}
	}
}

func TestProbeDecidesEachKindOfTenant(t *testing.T) {
	ctx := context.Background()
	t.Run("with the newer endpoints: 404 for the made-up organization", func(t *testing.T) {
		tn := newTenant(t, mgmttest.Config{}, nil)
		p := Probe(ctx, tn.client, "")
		if p.Mode != Connections || p.Status != 404 || p.Evidence != `404 "The organization does not exists."` || p.Err != nil {
			t.Fatalf("Probe = %+v", p)
		}
		if n := tn.sim.Stats().Count("GET", mgmttest.RouteOrgConnections, 404); n != 1 {
			t.Fatalf("%d probes of the newer list, want 1", n)
		}
	})
	t.Run("with the newer endpoints: 200 for a real organization", func(t *testing.T) {
		tn := newTenant(t, mgmttest.Config{}, nil)
		p := Probe(ctx, tn.client, tn.sim.Orgs()[0])
		if p.Mode != Connections || p.Status != 200 {
			t.Fatalf("Probe = %+v", p)
		}
	})
	t.Run("without the newer endpoints: the route's 404", func(t *testing.T) {
		tn := newTenant(t, mgmttest.Config{NoConnectionsAPI: true}, nil)
		for _, org := range []string{"", tn.sim.Orgs()[0]} {
			p := Probe(ctx, tn.client, org)
			if p.Mode != Legacy || p.Status != 404 || p.Evidence != `404 "Not Found"` || p.Err != nil {
				t.Fatalf("Probe(%q) = %+v", org, p)
			}
		}
	})
}

func TestProbeUndecided(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		cfg    mgmttest.Config
		scopes []string
		token  string
		status int
		want   string // in the error
	}{
		{"401", mgmttest.Config{}, nil, "not-a-token", 401, "401 Unauthorized"},
		{"403 for scope", mgmttest.Config{}, []string{mgmttest.ScopeCreate}, "", 403, "does the client have read:organization_connections?"},
		{"503", mgmttest.Config{Faults: mgmttest.Faults{Error5xx: 1}}, nil, "", 503, "503 Service Unavailable"},
		{"500", mgmttest.Config{Faults: mgmttest.Faults{Error500: 1}}, nil, "", 500, "500 Internal Server Error"},
		{"HTML 502", mgmttest.Config{Faults: mgmttest.Faults{HTML502: 1}}, nil, "", 502, "502 Bad Gateway"},
		{"dropped connection", mgmttest.Config{Faults: mgmttest.Faults{Drop: 1}}, nil, "", 0, "no response"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tn := newTenant(t, tt.cfg, tt.scopes)
			api := tn.client
			if tt.token != "" {
				var err error
				if api, err = mgmt.New(mgmt.Config{BaseURL: tn.url, Tokens: mgmt.StaticToken(tt.token)}); err != nil {
					t.Fatal(err)
				}
			}
			p := Probe(ctx, api, "")
			if p.Decided() || p.Mode != Auto || p.Status != tt.status || p.Err == nil || !strings.Contains(p.Err.Error(), tt.want) {
				t.Fatalf("Probe = %+v (err %v), want undecided with status %d and %q", p, p.Err, tt.status, tt.want)
			}
		})
	}
	t.Run("429", func(t *testing.T) {
		tn := newTenant(t, mgmttest.Config{Read: mgmttest.Bucket{Burst: 1, Rate: 0.001}}, nil)
		if p := Probe(ctx, tn.client, ""); !p.Decided() {
			t.Fatalf("first probe: %+v", p)
		}
		p := Probe(ctx, tn.client, "")
		if p.Decided() || p.Status != 429 {
			t.Fatalf("Probe with the read bucket empty = %+v", p)
		}
	})
}

// fixed answers every request with status, content type and body.
func fixed(t *testing.T, status int, body string) *mgmt.Client {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	c, err := mgmt.New(mgmt.Config{BaseURL: ts.URL, Tokens: mgmt.StaticToken("tok")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestProbeOtherPlausibleAnswers(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		body   string
		want   Mode
	}{
		{"legacy wording of an unknown organization", 404, `{"statusCode":404,"error":"Not Found","message":"No organization found by that id or name"}`, Connections},
		{"400 from the endpoint's validation", 400, `{"statusCode":400,"error":"Bad Request","message":"Query validation error","errorCode":"invalid_query_string"}`, Connections},
		{"a 404 page that is not an Auth0 error", 404, `<html>404</html>`, Legacy},
		{"feature not enabled", 403, `{"statusCode":403,"error":"Forbidden","message":"This feature is not enabled for this tenant.","errorCode":"operation_not_supported"}`, Legacy},
		{"a 404 that names nothing", 404, `{"statusCode":404,"error":"Not Found","message":"Something else"}`, Auto},
		{"409 means nothing here", 409, `{"statusCode":409,"error":"Conflict","message":"x"}`, Auto},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if p := Probe(context.Background(), fixed(t, tt.status, tt.body), ""); p.Mode != tt.want {
				t.Fatalf("Probe = %+v, want %s", p, tt.want)
			}
		})
	}
}

// clock is a manually advanced clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// quiet is a logger that keeps its lines for the test.
func quiet() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

func TestAutoPicksEachModeAndRemembersIt(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		cfg  mgmttest.Config
		want Mode
	}{
		{"tenant with the newer endpoints", mgmttest.Config{}, Connections},
		{"tenant without them", mgmttest.Config{NoConnectionsAPI: true}, Legacy},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := redistest.New(t)
			tn := newTenant(t, tt.cfg, nil)
			store := NewStore(env.Client, env.Prefix, 0)
			log, _ := quiet()
			r, err := NewResolver(Config{Mode: Auto, Tenant: "acme.example", Store: store, API: tn.client, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Resolve(ctx)
			if err != nil || res.Mode != tt.want || res.Source != FromProbe || res.Probe == nil || res.Memory.TTL != DefaultTTL {
				t.Fatalf("Resolve = %+v, %v; want %s probed", res, err, tt.want)
			}
			m, ok, err := store.Get(ctx, "acme.example")
			if err != nil || !ok || m.Mode != tt.want || m.Status != 404 || m.ProbedAt.IsZero() || m.TTL <= DefaultTTL-time.Minute || m.TTL > DefaultTTL {
				t.Fatalf("remembered %+v, %v, %v; want %s for about a day", m, ok, err, tt.want)
			}
			// Resolved again, by this process and by another: no second probe.
			if res, err := r.Resolve(ctx); err != nil || res.Mode != tt.want || res.Source != FromProbe {
				t.Fatalf("second Resolve = %+v, %v", res, err)
			}
			other, _ := NewResolver(Config{Tenant: "acme.example", Store: store, API: tn.client, Logger: log})
			if res, err := other.Resolve(ctx); err != nil || res.Mode != tt.want || res.Source != FromMemory || res.Memory.Evidence != m.Evidence {
				t.Fatalf("another process's Resolve = %+v, %v; want %s from memory", res, err, tt.want)
			}
			if n := tn.probes(); n != 1 {
				t.Fatalf("%d probes, want 1", n)
			}
			// Another tenant under the same prefix is probed for itself.
			if _, ok, _ := store.Get(ctx, "other.example"); ok {
				t.Fatal("a memory for a tenant never probed")
			}
		})
	}
}

func TestAutoDoesNotRememberAnUndecidedProbe(t *testing.T) {
	ctx := context.Background()
	env := redistest.New(t)
	tn := newTenant(t, mgmttest.Config{Faults: mgmttest.Faults{Error5xx: 1}}, nil)
	store := NewStore(env.Client, env.Prefix, time.Hour)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	log, logged := quiet()
	r, _ := NewResolver(Config{Tenant: "acme.example", Store: store, API: tn.client, Retry: 10 * time.Second, Now: clk.Now, Logger: log})

	res, err := r.Resolve(ctx)
	if err != nil || res.Decided() || res.Source != Undecided || res.Probe == nil || res.Probe.Status != 503 {
		t.Fatalf("Resolve on a failing tenant = %+v, %v; want undecided after a 503", res, err)
	}
	if _, ok, _ := store.Get(ctx, "acme.example"); ok {
		t.Fatal("an undecided probe was remembered")
	}
	if !strings.Contains(logged.String(), "API mode probe did not decide") {
		t.Fatalf("no log line for the undecided probe: %s", logged)
	}
	// Within Retry, no new probe.
	clk.Advance(5 * time.Second)
	if res, _ := r.Resolve(ctx); res.Decided() || tn.probes() != 1 {
		t.Fatalf("within Retry: %+v, %d probes; want undecided, 1 probe", res, tn.probes())
	}
	// After Retry, the tenant has recovered: the probe decides and is remembered for the TTL.
	tn.sim.SetFaults(mgmttest.Faults{})
	clk.Advance(5 * time.Second)
	res, err = r.Resolve(ctx)
	if err != nil || res.Mode != Connections || res.Source != FromProbe || tn.probes() != 2 {
		t.Fatalf("after Retry: %+v, %v, %d probes", res, err, tn.probes())
	}
	if m, ok, _ := store.Get(ctx, "acme.example"); !ok || m.Mode != Connections || m.TTL > time.Hour {
		t.Fatalf("remembered %+v, %v; want connections for an hour", m, ok)
	}
	// After the cached answer expires, the memory is read again (and gone: a new probe).
	if err := store.Forget(ctx, "acme.example"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour + time.Second)
	if res, _ := r.Resolve(ctx); res.Source != FromProbe || tn.probes() != 3 {
		t.Fatalf("after expiry: %+v, %d probes", res, tn.probes())
	}
}

func TestConfiguredModesAreNotProbed(t *testing.T) {
	tn := newTenant(t, mgmttest.Config{NoConnectionsAPI: true}, nil)
	for _, m := range []Mode{Legacy, Connections} {
		r, err := NewResolver(Config{Mode: m, API: tn.client})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := r.Resolve(context.Background()); err != nil || res.Mode != m || res.Source != FromConfig || r.Configured() != m {
			t.Fatalf("Resolve(%s) = %+v, %v", m, res, err)
		}
	}
	if tn.probes() != 0 {
		t.Fatalf("%d requests for configured modes", tn.probes())
	}
	if _, err := NewResolver(Config{Mode: "newest"}); err == nil {
		t.Fatal("NewResolver accepted an unknown mode")
	}
}

func TestAutoWithoutAnAPIStaysUndecided(t *testing.T) {
	env := redistest.New(t)
	store := NewStore(env.Client, env.Prefix, 0)
	r, _ := NewResolver(Config{Tenant: "acme.example", Store: store})
	if res, err := r.Resolve(context.Background()); err != nil || res.Decided() || res.Source != Undecided {
		t.Fatalf("Resolve without memory or API = %+v, %v", res, err)
	}
	if err := store.Put(context.Background(), "acme.example", Memory{Mode: Legacy, ProbedAt: time.Now(), Status: 404, Evidence: `404 "Not Found"`}); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Resolve(context.Background()); err != nil || res.Mode != Legacy || res.Source != FromMemory {
		t.Fatalf("Resolve with a memory = %+v, %v", res, err)
	}
	if err := store.Put(context.Background(), "acme.example", Memory{Mode: Auto}); err == nil {
		t.Fatal("Put remembered an undecided mode")
	}
}

func TestStoreIgnoresAValueThatIsNoMemory(t *testing.T) {
	env := redistest.New(t)
	store := NewStore(env.Client, env.Prefix, 0)
	ctx := context.Background()
	for _, v := range []string{"garbage", `{"mode":"auto"}`, strings.Repeat("x", 5000)} {
		if err := env.Client.Set(ctx, store.key("t"), v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := store.Get(ctx, "t"); ok || err != nil {
			t.Fatalf("Get of %.20q: ok %v, %v", v, ok, err)
		}
	}
}

func TestResolveHonoursCancellationWhileAnotherProbes(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		w.WriteHeader(404)
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(release) })
	c, _ := mgmt.New(mgmt.Config{BaseURL: ts.URL, Tokens: mgmt.StaticToken("tok")})
	r, _ := NewResolver(Config{Tenant: "t", API: c})
	go func() { _, _ = r.Resolve(context.Background()) }()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Resolve(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve with a cancelled context while a probe runs: %v", err)
	}
}
