package worker

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
)

// simTenant is a simulator served on loopback with a client for it.
type simTenant struct {
	sim   *mgmttest.Server
	api   *mgmt.Client
	org   string                // an organization of the tenant
	db    string                // a database connection
	other string                // a connection of another strategy
	conns []mgmttest.Connection // every connection
}

func newSimTenant(t *testing.T, cfg mgmttest.Config) *simTenant {
	t.Helper()
	if cfg.Orgs == 0 {
		cfg.Orgs, cfg.Connections, cfg.Seed = 4, 4, 3
	}
	sim := mgmttest.New(cfg)
	run, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close(context.Background()) })
	api, err := mgmt.New(mgmt.Config{BaseURL: run.URL(), Tokens: mgmt.NewClientCredentials(run.URL(), mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st := &simTenant{sim: sim, api: api, org: sim.Orgs()[0], conns: sim.Connections()}
	for _, c := range st.conns {
		switch {
		case c.Strategy == "auth0" && st.db == "":
			st.db = c.ID
		case c.Strategy != "auth0" && st.other == "":
			st.other = c.ID
		}
	}
	return st
}

// assoc returns the simulator's association of org and conn.
func (st *simTenant) assoc(org, conn string) (mgmttest.EnabledConnection, bool) {
	ec, ok := st.sim.State()[org][conn]
	return ec, ok
}

// Every action against the newer endpoints, from every relevant state, and
// the outcome Classify gives it.
func TestApplyConnectionsPerActionAndOutcome(t *testing.T) {
	ctx := context.Background()
	type state = map[string]mgmttest.EnabledConnection
	const named = "Acme SSO"
	for _, tc := range []struct {
		name    string
		initial state // of the tenant's first organization
		change  func(st *simTenant) jobs.Change
		reason  Reason
		want    *mgmttest.EnabledConnection // the association after; nil: absent
	}{
		{"enable absent: created enabled with the fields", nil,
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Enable, OrgID: st.org, ConnectionID: st.other, ShowAsButton: jobs.False, OrgConnectionName: named, AccessLevel: jobs.LevelReadonly}
			},
			ReasonApplied, &mgmttest.EnabledConnection{ShowAsButton: false, Name: named, AccessLevel: "readonly"}},
		{"enable disabled: enabled, settings kept", state{"OTHER": {Disabled: true, AssignMembershipOnLogin: true, Name: named, AccessLevel: "limited"}},
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Enable, OrgID: st.org, ConnectionID: st.other}
			},
			ReasonApplied, &mgmttest.EnabledConnection{AssignMembershipOnLogin: true, Name: named, AccessLevel: "limited"}},
		{"disable absent: created disabled (staged)", nil,
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Disable, OrgID: st.org, ConnectionID: st.db, AssignMembershipOnLogin: jobs.True}
			},
			ReasonApplied, &mgmttest.EnabledConnection{Disabled: true, AssignMembershipOnLogin: true, ShowAsButton: true}},
		{"disable enabled: disabled, other settings kept", state{"DB": {AssignMembershipOnLogin: true, IsSignupEnabled: true, ShowAsButton: true, Name: named}},
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Disable, OrgID: st.org, ConnectionID: st.db, ShowAsButton: jobs.False}
			},
			ReasonApplied, &mgmttest.EnabledConnection{Disabled: true, AssignMembershipOnLogin: true, IsSignupEnabled: true, Name: named}},
		{"update disabled: fields set, still disabled", state{"OTHER": {Disabled: true, ShowAsButton: true}},
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Update, OrgID: st.org, ConnectionID: st.other, OrgConnectionName: named, AccessLevel: jobs.LevelFull}
			},
			ReasonApplied, &mgmttest.EnabledConnection{Disabled: true, ShowAsButton: true, Name: named, AccessLevel: "full"}},
		{"update absent: not_found", nil,
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Update, OrgID: st.org, ConnectionID: st.other, ShowAsButton: jobs.True}
			},
			ReasonNotFound, nil},
		{"update, unknown organization", nil,
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Update, OrgID: "org_nobody", ConnectionID: st.other, ShowAsButton: jobs.True}
			},
			ReasonUnknownOrg, nil},
		{"enable, unknown organization", nil,
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Enable, OrgID: "org_nobody", ConnectionID: st.other}
			},
			ReasonUnknownOrg, nil},
		{"enable, unknown connection", nil,
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Enable, OrgID: st.org, ConnectionID: "con_nothing"}
			},
			ReasonUnknownConnection, nil},
		{"enable, a level without a name: bad_request", nil,
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Enable, OrgID: st.org, ConnectionID: st.other, AccessLevel: jobs.LevelFull}
			},
			ReasonBadRequest, nil},
		{"remove disabled: deleted", state{"OTHER": {Disabled: true, Name: named}},
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Remove, OrgID: st.org, ConnectionID: st.other}
			},
			ReasonApplied, nil},
		{"remove absent: done", nil,
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Remove, OrgID: st.org, ConnectionID: st.other}
			},
			ReasonApplied, nil},
		{"remove, unknown organization", nil,
			func(st *simTenant) jobs.Change {
				return jobs.Change{Action: jobs.Remove, OrgID: "org_nobody", ConnectionID: st.other}
			},
			ReasonUnknownOrg, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newSimTenant(t, mgmttest.Config{})
			init := map[string]mgmttest.EnabledConnection{}
			for k, ec := range tc.initial {
				init[map[string]string{"DB": st.db, "OTHER": st.other}[k]] = ec
			}
			st.sim.SetState(st.org, init)
			c := tc.change(st)
			o := Classify(applyConnections(ctx, st.api, c))
			if o.Reason != tc.reason {
				t.Fatalf("outcome %v, want %s", o, tc.reason)
			}
			if tc.reason == ReasonApplied || tc.want == nil {
				got, ok := st.assoc(c.OrgID, c.ConnectionID)
				switch {
				case tc.want == nil && ok && tc.reason == ReasonApplied:
					t.Errorf("association %+v left, want none", got)
				case tc.want != nil && !ok:
					t.Errorf("no association, want %+v", *tc.want)
				case tc.want != nil:
					want := *tc.want
					want.ConnectionID = c.ConnectionID
					if got != want {
						t.Errorf("association %+v, want %+v", got, want)
					}
				}
			}
		})
	}
}

// A tenant without the newer endpoints, driven in connections mode: the
// route's 404 is no_connections_api, not an unknown organization.
func TestConnectionsModeOnALegacyTenant(t *testing.T) {
	st := newSimTenant(t, mgmttest.Config{NoConnectionsAPI: true})
	for _, c := range []jobs.Change{
		{Action: jobs.Disable, OrgID: st.org, ConnectionID: st.other},
		{Action: jobs.Update, OrgID: st.org, ConnectionID: st.other, ShowAsButton: jobs.True},
		{Action: jobs.Remove, OrgID: st.org, ConnectionID: st.other},
	} {
		if o := Classify(applyConnections(context.Background(), st.api, c)); o.Kind != Dead || o.Reason != ReasonNoConnectionsAPI {
			t.Errorf("%v: outcome %v, want dead (no_connections_api)", c, o)
		}
	}
}

// newTestHandler is a handler over st's client in mode, with the names
// cache in env's Redis.
func newTestHandler(t *testing.T, env *redistest.Env, st *simTenant, mode apimode.Mode) *handler {
	t.Helper()
	res, err := apimode.NewResolver(apimode.Config{Mode: mode, Tenant: "t", API: st.api, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return &handler{api: st.api, apiMode: res, names: newNameCache(env.Client, env.Prefix, "t"), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// In legacy mode, a change that needs the newer endpoints is dead-lettered
// naming what needs them; the others go through the legacy endpoints.
// Without a resolver the handler is in legacy mode.
func TestLegacyModeRefusesWhatNeedsTheNewerEndpoints(t *testing.T) {
	env := redistest.New(t)
	st := newSimTenant(t, mgmttest.Config{})
	h := newTestHandler(t, env, st, apimode.Legacy)
	ctx := context.Background()
	for c, want := range map[jobs.Change]string{
		{Action: jobs.Disable, OrgID: st.org, ConnectionID: st.other}:                             `action "disable" needs`,
		{Action: jobs.Enable, OrgID: st.org, ConnectionID: st.other, OrgConnectionName: "x"}:      "organization_connection_name needs",
		{Action: jobs.Update, OrgID: st.org, ConnectionID: st.other, AccessLevel: jobs.LevelNone}: "organization_access_level needs",
	} {
		o := Classify(h.execute(ctx, c))
		if o.Kind != Dead || o.Reason != ReasonNeedsConnectionsAPI || !strings.Contains(o.Message, want) || !strings.Contains(o.Message, "legacy mode") {
			t.Errorf("%v: outcome %v, want dead (needs_connections_api) saying %q", c, o, want)
		}
	}
	h.apiMode = nil
	enable := jobs.Change{Action: jobs.Enable, OrgID: st.org, ConnectionID: st.other}
	if o := Classify(h.execute(ctx, enable)); o.Kind != Done {
		t.Fatalf("enable without a resolver: %v, want done", o)
	}
	if st.sim.Stats().Count("POST", mgmttest.RouteEnabledConnections, 201) != 1 {
		t.Errorf("the enable did not go through the legacy POST: %v", st.sim.Stats())
	}
}

// In connections mode the handler goes through the newer endpoints.
func TestConnectionsModeUsesTheNewerEndpoints(t *testing.T) {
	env := redistest.New(t)
	st := newSimTenant(t, mgmttest.Config{})
	h := newTestHandler(t, env, st, apimode.Connections)
	c := jobs.Change{Action: jobs.Enable, OrgID: st.org, ConnectionID: st.other, ShowAsButton: jobs.False}
	if o := Classify(h.execute(context.Background(), c)); o.Kind != Done {
		t.Fatalf("outcome %v, want done", o)
	}
	if n := st.sim.Stats().Count("POST", mgmttest.RouteOrgConnections, 201); n != 1 {
		t.Errorf("%d POSTs to the newer endpoint, want 1: %v", n, st.sim.Stats())
	}
}

// Names: resolved once per fleet (one look-up per organization name, one
// listing of connections), unknown ones dead-lettered as unknown_name with
// the name in the message.
func TestNamesAreResolvedOnceAndUnknownOnesDeadLettered(t *testing.T) {
	env := redistest.New(t)
	st := newSimTenant(t, mgmttest.Config{})
	h := newTestHandler(t, env, st, apimode.Connections)
	other := newTestHandler(t, env, st, apimode.Connections) // another worker of the fleet
	ctx := context.Background()
	orgName, _ := st.sim.OrgName(st.org)
	var connName string
	for _, c := range st.conns {
		if c.ID == st.other {
			connName = c.Name
		}
	}
	for i, hh := range []*handler{h, other, h} {
		c := jobs.Change{Action: jobs.Disable, OrgName: orgName, ConnectionName: connName, ShowAsButton: jobs.FlagOf(i%2 == 0)}
		if o := Classify(hh.execute(ctx, c)); o.Kind != Done {
			t.Fatalf("change %d by name: %v, want done", i, o)
		}
	}
	if ec, ok := st.assoc(st.org, st.other); !ok || !ec.Disabled || !ec.ShowAsButton {
		t.Fatalf("association %+v (%v), want disabled with the button", ec, ok)
	}
	stats := st.sim.Stats()
	if n := stats.Count("GET", mgmttest.RouteOrganizationByName, 200); n != 1 {
		t.Errorf("%d look-ups of the organization's name, want 1", n)
	}
	if n := stats.Count("GET", mgmttest.RouteConnections, 200); n != 1 {
		t.Errorf("%d listings of connections, want 1", n)
	}
	for _, tc := range []struct {
		c    jobs.Change
		want string
	}{
		{jobs.Change{Action: jobs.Enable, OrgName: "acme", ConnectionID: st.other}, `no organization named "acme"`},
		{jobs.Change{Action: jobs.Enable, OrgID: st.org, ConnectionName: "nope"}, `no connection named "nope"`},
	} {
		for range 2 {
			o := Classify(h.execute(ctx, tc.c))
			if o.Kind != Dead || o.Reason != ReasonUnknownName || o.Message != tc.want {
				t.Errorf("%v: outcome %v, want dead (unknown_name): %s", tc.c, o, tc.want)
			}
		}
	}
	stats = st.sim.Stats()
	if n := stats.Count("GET", mgmttest.RouteOrganizationByName, 404); n != 1 {
		t.Errorf("%d look-ups of the unknown organization name, want 1 (the answer is cached)", n)
	}
	if n := stats.Count("GET", mgmttest.RouteConnections, 200); n != 1 {
		t.Errorf("%d listings of connections, want 1: a listing younger than %v answers for a missing name", n, ConnectionsRefresh)
	}
	// A listing older than ConnectionsRefresh is made again for a missing
	// name.
	h.names.now = func() time.Time { return time.Now().Add(2 * ConnectionsRefresh) }
	if o := Classify(h.execute(ctx, jobs.Change{Action: jobs.Enable, OrgID: st.org, ConnectionName: "nope"})); o.Reason != ReasonUnknownName {
		t.Errorf("outcome %v, want unknown_name", o)
	}
	if n := st.sim.Stats().Count("GET", mgmttest.RouteConnections, 200); n != 2 {
		t.Errorf("%d listings of connections, want 2 after the listing aged", n)
	}
}
