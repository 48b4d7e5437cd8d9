package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/producer/webhook"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/orgconn/orgconn/worker/redistest"
)

// simWithCredentials serves a simulated tenant and returns it with the
// variables of a Redis, a queue and the tenant's domain and credentials.
func simWithCredentials(t *testing.T, cfg mgmttest.Config) (*mgmttest.Server, *redistest.Env, map[string]string) {
	t.Helper()
	r := redistest.New(t)
	sim := mgmttest.New(cfg)
	srv, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	return sim, r, map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix,
		"AUTH0_DOMAIN": srv.URL(), "AUTH0_CLIENT_ID": mgmttest.DefaultClientID, "AUTH0_CLIENT_SECRET": mgmttest.DefaultClientSecret}
}

// newerTenantOf describes sim for jobstest's newer vocabulary.
func newerTenantOf(sim *mgmttest.Server) jobstest.NewerTenant {
	var t jobstest.NewerTenant
	for _, o := range sim.Organizations() {
		t.Orgs = append(t.Orgs, jobstest.NamedOrg{ID: o.ID, Name: o.Name})
	}
	for _, c := range sim.Connections() {
		t.Connections = append(t.Connections, jobstest.NamedConnection{ID: c.ID, Name: c.Name, Database: c.Strategy == "auth0"})
	}
	return t
}

// newerCSV is rows as a newer-vocabulary CSV file's text.
func newerCSV(t *testing.T, rows []jobstest.Row) string {
	t.Helper()
	var buf bytes.Buffer
	if err := jobstest.WriteNewerCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// nothingQueued fails the test when r's queue holds a task or the ledger
// knows batch.
func nothingQueued(t *testing.T, r *redistest.Env, batch string) {
	t.Helper()
	if qi, err := asynq.NewInspectorFromRedisClient(r.Client).GetQueueInfo(r.Queue); err == nil && qi.Size > 0 {
		t.Errorf("%d tasks queued, want none", qi.Size)
	}
	l, err := ledger.New(r.Client, r.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	if bc, err := l.Batch(context.Background(), batch); err == nil && bc.Total > 0 {
		t.Errorf("batch %s has %d accepted lines, want none", batch, bc.Total)
	}
}

// TestImportRefusesTheNewerFileOnALegacyTenant (issue 14's acceptance): the
// 400-row file of the newer vocabulary against a tenant without the newer
// endpoints is refused at import, every line that needs them named, nothing
// enqueued — with --api auto, which probes the tenant (import has its
// credentials), and with --api legacy, which needs none.
func TestImportRefusesTheNewerFileOnALegacyTenant(t *testing.T) {
	sim, r, vars := simWithCredentials(t, mgmttest.Config{Orgs: 30, Connections: 6, Seed: 14, NoConnectionsAPI: true})
	rows := jobstest.GenerateNewer(newerTenantOf(sim), jobstest.NewerOptions{Changes: 400, Pairs: 120, Seed: 14})
	path := file(t, newerCSV(t, rows))
	var needs []jobstest.Row
	for _, row := range rows {
		if row.Change.NeedsConnectionsAPI() {
			needs = append(needs, row)
		}
	}
	if len(needs) < 100 {
		t.Fatalf("only %d rows need the newer endpoints", len(needs))
	}
	check := func(name string, code int, out, errOut string) {
		t.Helper()
		if code != exitInvalid || !strings.Contains(out, "nothing enqueued") {
			t.Fatalf("%s: exit %d, stdout %q", name, code, out)
		}
		for _, row := range needs {
			want := fmt.Sprintf("line %d: %s", row.Line, producer.RefusedInMode(row.Change, producer.ModeLegacy, "--api"))
			if !strings.Contains(errOut, want+"\n") {
				t.Errorf("%s: stderr does not name line %d: want %q", name, row.Line, want)
			}
		}
		if n := strings.Count(errOut, "needs the Organization connections API") + strings.Count(errOut, "need the Organization connections API"); n != len(needs) {
			t.Errorf("%s: %d lines refused, want %d", name, n, len(needs))
		}
		nothingQueued(t, r, "newer")
	}
	code, out, errOut := runCmd(t, vars, "import", "--api", "auto", "--max-errors", "1000", "--batch", "newer", path)
	check("--api auto (probed)", code, out, errOut)
	base, err := mgmt.BaseURL(vars["AUTH0_DOMAIN"])
	if err != nil {
		t.Fatal(err)
	}
	if m, ok, err := apimode.NewStore(r.Client, r.Prefix, 0).Get(context.Background(), ratelimit.TenantOf(base)); err != nil || !ok || m.Mode != apimode.Legacy {
		t.Errorf("remembered mode %+v (%v), %v; want legacy", m, ok, err)
	}
	if n := sim.Stats().Count("GET", mgmttest.RouteUnknown, 404); n != 1 {
		t.Errorf("%d probes answered by a route's 404, want 1", n)
	}
	delete(vars, "AUTH0_CLIENT_ID")
	delete(vars, "AUTH0_CLIENT_SECRET")
	code, out, errOut = runCmd(t, vars, "import", "--api", "legacy", "--max-errors", "1000", "--batch", "newer", path)
	check("--api legacy", code, out, errOut)
}

// TestImportResolvesNamesWithCredentials (issue 14's acceptance): import
// with the tenant's credentials looks every name up before enqueueing —
// one GET /organizations/name/{name} per distinct name and one listing of
// the connections — reports each of 5 unknown names on its line and
// enqueues nothing; without them, the 300 rows naming half of the
// organizations and connections are enqueued with ids, and a worker leaves
// the tenant exactly as the file says.
func TestImportResolvesNamesWithCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a worker")
	}
	sim, r, vars := simWithCredentials(t, mgmttest.Config{Orgs: 30, Connections: 6, Seed: 21})
	tenant := newerTenantOf(sim)
	rows := jobstest.GenerateNewer(tenant, jobstest.NewerOptions{Changes: 300, Pairs: 100, ByName: true, Seed: 21})
	names := map[string]bool{}
	for _, row := range rows {
		if row.Change.OrgName != "" {
			names[row.Change.OrgName] = true
		}
	}
	// Five unknown names, on lines spread through the file.
	unknown := []jobs.Change{
		{Action: jobs.Enable, OrgName: "acme", ConnectionID: tenant.Connections[1].ID},
		{Action: jobs.Disable, OrgName: "globex-eu", ConnectionName: tenant.Connections[0].Name},
		{Action: jobs.Remove, OrgID: tenant.Orgs[1].ID, ConnectionName: "no-such-connection"},
		{Action: jobs.Update, OrgName: "initech", ConnectionID: tenant.Connections[1].ID, ShowAsButton: jobs.True},
		{Action: jobs.Enable, OrgID: tenant.Orgs[3].ID, ConnectionName: "Another-Missing-One"},
	}
	withUnknown := make([]jobstest.Row, 0, len(rows)+len(unknown))
	wantErr := map[int]string{}
	for i, row := range rows {
		if i%60 == 30 {
			c := unknown[len(wantErr)]
			line := len(withUnknown) + 2
			if c.OrgName != "" && c.OrgID == "" {
				wantErr[line] = fmt.Sprintf("line %d: org_name: no organization named %q", line, c.OrgName)
				names[c.OrgName] = true
			} else {
				wantErr[line] = fmt.Sprintf("line %d: connection_name: no connection named %q", line, c.ConnectionName)
			}
			withUnknown = append(withUnknown, jobstest.Row{Line: line, Change: c})
		}
		row.Line = len(withUnknown) + 2
		withUnknown = append(withUnknown, row)
	}
	if len(wantErr) != 5 {
		t.Fatalf("%d unknown names placed, want 5", len(wantErr))
	}
	code, out, errOut := runCmd(t, vars, "import", "--batch", "names-bad", file(t, newerCSV(t, withUnknown)))
	if code != exitInvalid || !strings.Contains(out, "nothing enqueued") {
		t.Fatalf("import with 5 unknown names: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, want := range wantErr {
		if !strings.Contains(errOut, want+"\n") {
			t.Errorf("stderr does not say %q", want)
		}
	}
	if n := strings.Count(errOut, "line "); n != 5 {
		t.Errorf("%d lines reported, want 5:\n%s", n, errOut)
	}
	nothingQueued(t, r, "names-bad")
	st := sim.Stats()
	lookups, listings := 0, 0
	for key, n := range st.ByRoute {
		switch {
		case strings.HasPrefix(key, "GET "+mgmttest.RouteOrganizationByName+" "):
			lookups += n
		case strings.HasPrefix(key, "GET "+mgmttest.RouteConnections+" "):
			listings += n
		}
	}
	if lookups != len(names) || listings != 1 {
		t.Errorf("%d organization look-ups for %d distinct names, %d connection listings; want one each and one listing", lookups, len(names), listings)
	}

	// The file without the unknown names, imported with a worker running.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var workerErr bytes.Buffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		runCmdCtx(ctx, vars, io.Discard, &workerErr, false, "worker", "--rate", "40", "--burst", "20", "--log-level", "warn")
	}()
	defer func() {
		stop()
		wg.Wait()
		if t.Failed() {
			t.Logf("worker log:\n%s", workerErr.String())
		}
	}()
	var wout, werr bytes.Buffer
	code = runCmdCtx(context.Background(), vars, &wout, &werr, false, "import", "--batch", "names", "--wait", "--interval", "100ms", "--timeout", "90s", file(t, newerCSV(t, rows)))
	if code != exitOK || !strings.Contains(wout.String(), "enqueued 300 changes") {
		t.Fatalf("import --wait: exit %d, stdout %q, stderr %q", code, wout.String(), werr.String())
	}
	l, err := ledger.New(r.Client, r.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := l.Lines(context.Background(), "names", 1, len(rows)+1)
	if err != nil || len(lines) != len(rows) {
		t.Fatalf("ledger: %d lines, %v", len(lines), err)
	}
	for _, ln := range lines {
		if ln.Change.OrgID == "" || ln.Change.ConnectionID == "" {
			t.Fatalf("line %d was enqueued with a name unresolved: %v", ln.Line, ln.Change)
		}
	}
	want, _ := jobstest.ReplayNewer(tenant, rows)
	got := map[string]map[string]jobstest.Association{}
	for org, cs := range sim.State() {
		got[org] = map[string]jobstest.Association{}
		for id, ec := range cs {
			got[org][id] = jobstest.Association{Enabled: !ec.Disabled, AssignMembershipOnLogin: ec.AssignMembershipOnLogin,
				ShowAsButton: ec.ShowAsButton, IsSignupEnabled: ec.IsSignupEnabled, Name: ec.Name, Level: ec.AccessLevel}
		}
	}
	if diff := jobstest.DiffNewer(want, got); len(diff) > 0 {
		t.Errorf("final state differs from the file (%d differences):\n%s", len(diff), strings.Join(diff[:min(len(diff), 20)], "\n"))
	}
}

// TestServeLooksNamesUpWithCredentials: serve with the tenant's credentials
// answers 422 naming an unknown organization name, and queues a change by
// names with the ids it looked up.
func TestServeLooksNamesUpWithCredentials(t *testing.T) {
	sim, r, vars := simWithCredentials(t, mgmttest.Config{Orgs: 3, Connections: 2, Seed: 5})
	vars["ORGCONN_WEBHOOK_SECRET"] = serveSecret
	s := startServe(t, vars, "--api", "connections")
	defer s.stop()
	org := sim.Organizations()[0]
	conn := sim.Connections()[0]
	send := func(body string) (int, string) {
		return post(t, s.url+webhook.PathChanges, "application/json", body, map[string]string{webhook.SignatureHeader: webhook.Sign(serveSecret, time.Now(), []byte(body))})
	}
	code, out := send(`{"changes":[{"action":"disable","org_name":"` + org.Name + `","connection_name":"` + conn.Name + `"},{"action":"enable","org_name":"acme","connection_id":"` + conn.ID + `"}]}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(out, `{"index":1,"field":"org_name","problem":"no organization named \"acme\""}`) {
		t.Fatalf("an unknown name: %d %s", code, out)
	}
	code, out = send(`{"action":"disable","org_name":"` + org.Name + `","connection_name":"` + conn.Name + `","show_as_button":false}`)
	if code != http.StatusAccepted {
		t.Fatalf("a change by names: %d %s", code, out)
	}
	var batch string
	if _, rest, ok := strings.Cut(out, `"batch":"`); ok {
		batch, _, _ = strings.Cut(rest, `"`)
	}
	l, err := ledger.New(r.Client, r.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := l.Lines(context.Background(), batch, 1, 1)
	if err != nil || len(lines) != 1 || lines[0].Change.OrgID != org.ID || lines[0].Change.ConnectionID != conn.ID {
		t.Fatalf("batch %s: %+v, %v; want the change queued with ids %s/%s", batch, lines, err, org.ID, conn.ID)
	}
}
