package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/ratelimit"
)

// newerTenant describes e's simulated tenant for the newer vocabulary.
func (e *e2e) newerTenant() jobstest.NewerTenant {
	var t jobstest.NewerTenant
	for _, o := range e.sim.Organizations() {
		t.Orgs = append(t.Orgs, jobstest.NamedOrg{ID: o.ID, Name: o.Name})
	}
	for _, c := range e.sim.Connections() {
		t.Connections = append(t.Connections, jobstest.NamedConnection{ID: c.ID, Name: c.Name, Database: c.Strategy == "auth0"})
	}
	return t
}

// importNewer writes rows as a newer-vocabulary CSV and imports them in
// connections mode, with no name resolver: names are enqueued as given.
func (e *e2e) importNewer(rows []jobstest.Row) producer.Result {
	e.t.Helper()
	e.rows = rows
	var buf bytes.Buffer
	if err := jobstest.WriteNewerCSV(&buf, rows); err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.t.TempDir(), "newer.csv")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		e.t.Fatal(err)
	}
	im, err := producer.NewImporter(producer.Config{Ledger: e.ledger, Queue: asynq.NewClientFromRedisClient(e.env.Client), QueueName: e.env.Queue,
		Mode: producer.FixedMode(producer.ModeConnections)})
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := im.ImportFile(context.Background(), path, producer.Options{Batch: e.batch})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// startModeWorker is startWorker with the tenant's API mode configured:
// its resolver probes through the worker's own paced client (auto), as
// orgconn worker's does.
func (e *e2e) startModeWorker(name string, concurrency int, mode apimode.Mode) *worker.Worker {
	e.t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	lim, err := ratelimit.New(context.Background(), ratelimit.Config{
		Redis: e.env.Client, Prefix: e.env.Prefix, Tenant: "e2e", Start: e.budget, Override: true, PauseFloor: 200 * time.Millisecond, Logger: log,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(lim.Close)
	api, err := mgmt.New(mgmt.Config{BaseURL: e.url, Tokens: mgmt.NewClientCredentials(e.url, mgmttest.DefaultClientID, mgmttest.DefaultClientSecret, nil), Pacer: lim, Timeout: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := apimode.NewResolver(apimode.Config{Mode: mode, Tenant: "e2e", Store: apimode.NewStore(e.env.Client, e.env.Prefix, 0), API: api, Logger: log})
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := worker.New(worker.Config{
		Redis: e.env.Client, Ledger: e.ledger, API: api, Limiter: lim, APIMode: res, Tenant: "e2e",
		Queue: e.env.Queue, Concurrency: concurrency, Instance: name,
		BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
		WaitDelay: 200 * time.Millisecond, PollInterval: 100 * time.Millisecond,
		Lease: 10 * time.Second, ShutdownTimeout: 10 * time.Second, Logger: log,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(w.Shutdown)
	return w
}

// verifyNewer checks the tenant's associations (disabled ones with their
// settings) against the model of the newer endpoints, every line's outcome
// (applied or superseded; dead only where the model fails it) and that each
// pair's writes reached the tenant in file order.
func (e *e2e) verifyNewer(tenant jobstest.NewerTenant) {
	e.t.Helper()
	want, fails := jobstest.ReplayNewer(tenant, e.rows)
	got := map[string]map[string]jobstest.Association{}
	for org, cs := range e.sim.State() {
		got[org] = map[string]jobstest.Association{}
		for id, ec := range cs {
			got[org][id] = jobstest.Association{Enabled: !ec.Disabled, AssignMembershipOnLogin: ec.AssignMembershipOnLogin,
				ShowAsButton: ec.ShowAsButton, IsSignupEnabled: ec.IsSignupEnabled, Name: ec.Name, Level: ec.AccessLevel}
		}
	}
	if diff := jobstest.DiffNewer(want, got); len(diff) > 0 {
		e.t.Errorf("final state differs from applying the rows in file order (%d differences):\n%s", len(diff), strings.Join(first(diff, 20), "\n"))
	}
	disabled := 0
	for _, cs := range want {
		for _, a := range cs {
			if !a.Enabled {
				disabled++
			}
		}
	}
	outs, err := e.ledger.Outcomes(context.Background(), e.batch, 0, len(e.rows)+1)
	if err != nil {
		e.t.Fatal(err)
	}
	dead, err := e.ledger.DeadLetters(context.Background(), e.batch)
	if err != nil {
		e.t.Fatal(err)
	}
	counts := map[ledger.Outcome]int{}
	for _, r := range e.rows {
		o := outs[r.Line]
		counts[o]++
		_, mustFail := fails[r.Line]
		switch {
		case o == ledger.Dead && !mustFail:
			e.t.Errorf("line %d (%v) was dead-lettered: %+v", r.Line, r.Change, dead[r.Line])
		case o != ledger.Applied && o != ledger.Superseded && o != ledger.Dead:
			e.t.Errorf("line %d (%v) has outcome %v", r.Line, r.Change, o)
		}
	}
	last := map[string]int{}
	for _, w := range e.sim.Writes() {
		_, line, err := jobs.ParseTaskID(w.CorrelationID)
		if err != nil {
			e.t.Errorf("write %+v has no task id as correlation id", w)
			continue
		}
		p := w.Org + "/" + w.Connection
		if line < last[p] {
			e.t.Errorf("pair %s: line %d written after line %d", p, line, last[p])
		}
		last[p] = line
	}
	e.t.Logf("outcomes: %d applied, %d superseded, %d dead (%d must fail); %d pairs end disabled with their settings",
		counts[ledger.Applied], counts[ledger.Superseded], counts[ledger.Dead], len(fails), disabled)
}

// countActions counts rows per action and rows using the new columns.
func countActions(rows []jobstest.Row) (map[jobs.Action]int, int) {
	n, newer := map[jobs.Action]int{}, 0
	for _, r := range rows {
		n[r.Change.Action]++
		if r.Change.OrgConnectionName != "" || r.Change.AccessLevel != "" {
			newer++
		}
	}
	return n, newer
}

// TestNewerEndpointsExactStateUnderFaults (issue 14's acceptance): a
// 400-row file mixing enable, disable, update and remove with
// organization_connection_name and organization_access_level, against a
// tenant with the newer endpoints, 3% 5xx, 1% dropped connections and 2%
// lost responses, worked by two worker processes in auto mode (which
// probes the tenant): the tenant ends exactly as applying the rows in file
// order says, disabled associations keeping their settings.
func TestNewerEndpointsExactStateUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("an end-to-end run")
	}
	cfg := mgmttest.Config{Orgs: 30, Connections: 6, Seed: 14,
		Faults: mgmttest.Faults{Error5xx: 0.03, Drop: 0.01, LostResponse: 0.02}}
	e := newE2E(t, cfg)
	e.budget = ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 20, Rate: 40}}
	tenant := e.newerTenant()
	rows := jobstest.GenerateNewer(tenant, jobstest.NewerOptions{Changes: 400, Pairs: 120, Seed: 14})
	actions, newer := countActions(rows)
	for _, a := range []jobs.Action{jobs.Enable, jobs.Disable, jobs.Update, jobs.Remove} {
		if actions[a] < 40 {
			t.Fatalf("only %d rows of %s in the file: %v", actions[a], a, actions)
		}
	}
	if newer < 60 {
		t.Fatalf("only %d rows use the new columns", newer)
	}
	if res := e.importNewer(rows); res.Enqueued != 400 {
		t.Fatalf("import = %+v, want 400 enqueued", res)
	}
	start := time.Now()
	for i := range 2 {
		e.startModeWorker(fmt.Sprintf("w%d", i+1), 10, apimode.Auto)
	}
	bc := e.waitDone(90 * time.Second)
	t.Logf("%d changes in %v: %+v; actions %v, %d rows with the new columns", bc.Total, time.Since(start).Round(time.Millisecond), bc, actions, newer)
	e.verifyNewer(tenant)
	st := e.sim.Stats()
	if st.Faults[mgmttest.FaultError5xx] == 0 || st.Faults[mgmttest.FaultLostResponse] == 0 {
		t.Errorf("the run met no 5xx or no lost response: %v", st.Faults)
	}
	legacy := 0
	for key, n := range st.ByRoute {
		if strings.Contains(key, "/enabled_connections") {
			legacy += n
		}
	}
	if legacy != 0 {
		t.Errorf("%d requests to the legacy endpoints in connections mode", legacy)
	}
	t.Logf("simulator: %d requests, %d writes, faults %v", st.Total, st.Writes, st.Faults)
}

// TestNamesResolvedByTheWorkers (issue 14's acceptance): 300 rows naming
// half of the organizations and half of the connections by name, imported
// without credentials (the names are enqueued as given), worked by two
// worker processes: the exact final state, with at most one GET
// /organizations/name/{name} per distinct organization name and one listing
// of the connections for the whole job.
func TestNamesResolvedByTheWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("an end-to-end run")
	}
	e := newE2E(t, mgmttest.Config{Orgs: 30, Connections: 6, Seed: 21})
	e.budget = ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 20, Rate: 40}}
	tenant := e.newerTenant()
	rows := jobstest.GenerateNewer(tenant, jobstest.NewerOptions{Changes: 300, Pairs: 100, ByName: true, Seed: 21})
	orgNames, byName := map[string]bool{}, 0
	for _, r := range rows {
		if r.Change.OrgName != "" {
			orgNames[r.Change.OrgName] = true
		}
		if r.Change.Unresolved() {
			byName++
		}
	}
	if byName < 150 || len(orgNames) < 10 {
		t.Fatalf("%d rows use a name, %d organization names: the test needs more", byName, len(orgNames))
	}
	if res := e.importNewer(rows); res.Enqueued != 300 {
		t.Fatalf("import = %+v, want 300 enqueued", res)
	}
	for i := range 2 {
		e.startModeWorker(fmt.Sprintf("w%d", i+1), 10, apimode.Connections)
	}
	bc := e.waitDone(90 * time.Second)
	t.Logf("%+v; %d rows use a name, %d distinct organization names", bc, byName, len(orgNames))
	e.verifyNewer(tenant)
	st := e.sim.Stats()
	lookups, listings := 0, 0
	for key, n := range st.ByRoute {
		switch {
		case strings.HasPrefix(key, "GET "+mgmttest.RouteOrganizationByName+" "):
			lookups += n
		case strings.HasPrefix(key, "GET "+mgmttest.RouteConnections+" "):
			listings += n
		}
	}
	if lookups > len(orgNames) {
		t.Errorf("%d organization look-ups for %d distinct names, want at most one each", lookups, len(orgNames))
	}
	if listings != 1 {
		t.Errorf("%d listings of the connections, want 1 for the job", listings)
	}
	t.Logf("%d organization look-ups for %d names, %d connection listing", lookups, len(orgNames), listings)
}
