package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
)

// tenant is a simulated tenant served over HTTP with a worker applying the
// fixture's queue to it. The simulator has no rate limit, so the worker
// needs no limiter.
type tenant struct {
	sim *mgmttest.Server
}

func (f *fixture) startTenant(sim *mgmttest.Server) *tenant {
	f.t.Helper()
	run, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		f.t.Fatal(err)
	}
	// The client's own transport: closing its spare connections first lets
	// the simulator shut down at once (a server waits up to 5 s for a
	// connection that never sent a request).
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	f.t.Cleanup(func() {
		hc.CloseIdleConnections()
		run.Close(context.Background())
	})
	api, err := mgmt.New(mgmt.Config{
		BaseURL:    run.URL(),
		Tokens:     mgmt.NewClientCredentials(run.URL(), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, hc),
		HTTPClient: hc,
		Timeout:    5 * time.Second,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	w, err := worker.New(worker.Config{
		Redis: f.env.Client, Ledger: f.ledger, API: api, Queue: f.env.Queue, Concurrency: 4, Instance: "e2e",
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		WaitDelay: 50 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		Lease: 5 * time.Second, ShutdownTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(w.Shutdown)
	return &tenant{sim: sim}
}

// waitDone waits until every line of batch is resolved and returns its
// counts.
func (f *fixture) waitDone(batch string) ledger.BatchCounts {
	f.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		bc, err := f.ledger.Batch(context.Background(), batch)
		if err != nil {
			f.t.Fatal(err)
		}
		if bc.Done() {
			return bc
		}
		select {
		case <-tick.C:
		case <-deadline:
			f.t.Fatalf("batch %s not done: %+v", batch, bc)
		}
	}
}

func TestEndToEndSignedChangesAreApplied(t *testing.T) {
	f := setup(t)
	ten := f.startTenant(mgmttest.New(mgmttest.Config{}))
	orgs, conns := ten.sim.Orgs(), ten.sim.Connections()
	db, google := conns[0].ID, conns[2].ID // strategies auth0 and google-oauth2
	body := fmt.Sprintf(`{"changes":[
 {"action":"enable","org_id":%q,"connection_id":%q,"assign_membership_on_login":true},
 {"action":"enable","org_id":%q,"connection_id":%q,"show_as_button":false},
 {"action":"update","org_id":%q,"connection_id":%q,"is_signup_enabled":true}]}`,
		orgs[0], db, orgs[1], google, orgs[0], db)
	got := decodeAccepted(t, f.postChanges(body, IdempotencyHeader, "e2e-1"))
	bc := f.waitDone(got.Batch)
	if bc.Applied != 3 || bc.Dead != 0 {
		t.Fatalf("batch %+v", bc)
	}
	state := ten.sim.State()
	want := map[string]map[string]mgmttest.EnabledConnection{
		orgs[0]: {db: {ConnectionID: db, AssignMembershipOnLogin: true, ShowAsButton: true, IsSignupEnabled: true}},
		orgs[1]: {google: {ConnectionID: google, ShowAsButton: false}},
	}
	if fmt.Sprint(state) != fmt.Sprint(want) {
		t.Fatalf("tenant state\n%v\nwant\n%v", state, want)
	}
	// A replay changes nothing.
	if r := f.postChanges(body, IdempotencyHeader, "e2e-1"); r.header.Get(ReplayedHeader) != "true" {
		t.Fatalf("replay: %d", r.status)
	}
	if n := len(ten.sim.Writes()); n != 3 {
		t.Fatalf("%d writes reached the tenant, want 3", n)
	}
}

func TestEndToEndOrganizationCreatedEnablesTheRuleConnectionsOnce(t *testing.T) {
	sim := mgmttest.New(mgmttest.Config{})
	conns := sim.Connections()
	db, google := conns[0].ID, conns[2].ID
	rules, err := ParseRules(fmt.Appendf(nil, `
rules:
  - event: organization.created
    changes:
      - {action: enable, connection_id: %s, assign_membership_on_login: true}
      - {action: enable, connection_id: %s}
`, db, google), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := setup(t, func(c *Config) { c.Rules = rules })
	ten := f.startTenant(sim)
	org := ten.sim.Orgs()[5]
	ev := orgCreated("evt_e2e", org, "initech", nil)
	var batch string
	for i := range 3 {
		r := f.postEvents(ev)
		res := decodeResults(t, r, map[bool]int{true: http.StatusAccepted, false: http.StatusOK}[i == 0])
		batch = res[0].Batch
	}
	bc := f.waitDone(batch)
	if bc.Total != 2 || bc.Applied != 2 {
		t.Fatalf("batch %+v", bc)
	}
	got := ten.sim.State()[org]
	want := map[string]mgmttest.EnabledConnection{
		db:     {ConnectionID: db, AssignMembershipOnLogin: true, ShowAsButton: true},
		google: {ConnectionID: google, ShowAsButton: true},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("organization %s has\n%v\nwant\n%v", org, got, want)
	}
	writes := 0
	for _, w := range ten.sim.Writes() {
		if w.Org == org {
			writes++
		}
	}
	if writes != 2 {
		t.Fatalf("%d writes for the organization, want 2: the event was applied more than once", writes)
	}
	// Delivered again after it was applied: still nothing new.
	if res := decodeResults(t, f.postEvents(ev), http.StatusOK); res[0].Outcome != Duplicate {
		t.Fatalf("late redelivery: %+v", res)
	}
}
