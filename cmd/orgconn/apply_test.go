package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
)

// stateTenant is a simulated tenant listening on loopback, with Redis and
// the environment that points commands at both.
type stateTenant struct {
	sim  *mgmttest.Server
	r    *redistest.Env
	vars map[string]string
}

func newStateTenant(t *testing.T, cfg mgmttest.Config) *stateTenant {
	t.Helper()
	r := redistest.New(t)
	sim := mgmttest.New(cfg)
	run, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close(context.Background()) })
	return &stateTenant{sim: sim, r: r, vars: workerVars(r, run)}
}

// seed gives every organization a random set of enabled connections with
// random settings (sign-up always off, so that any change file stays valid).
func (st *stateTenant) seed(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, org := range st.sim.Orgs() {
		m := map[string]mgmttest.EnabledConnection{}
		for _, c := range st.sim.Connections() {
			if rng.IntN(2) == 0 {
				m[c.ID] = mgmttest.EnabledConnection{AssignMembershipOnLogin: rng.IntN(2) == 0, ShowAsButton: rng.IntN(2) == 0}
			}
		}
		st.sim.SetState(org, m)
	}
}

// pairs is a tenant state as pair → state.
type pairs map[string]jobs.PairState

func (st *stateTenant) pairs() pairs {
	out := pairs{}
	for org, cs := range st.sim.State() {
		for id, ec := range cs {
			out[org+"/"+id] = jobs.PairState{Present: true, AssignMembershipOnLogin: ec.AssignMembershipOnLogin, ShowAsButton: ec.ShowAsButton, IsSignupEnabled: ec.IsSignupEnabled}
		}
	}
	return out
}

// diff lists the pairs whose state differs between a and b.
func (a pairs) diff(b pairs) []string {
	var out []string
	for k, s := range a {
		if b[k] != s {
			out = append(out, fmt.Sprintf("%s: %v, then %v", k, s, b[k]))
		}
	}
	for k, s := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%s: absent, then %v", k, s))
		}
	}
	sort.Strings(out)
	return out
}

// writeRequests counts the write requests the simulator received, whatever
// their answer.
func writeRequests(s mgmttest.Stats) int {
	n := 0
	for k, c := range s.ByRoute {
		if m, _, _ := strings.Cut(k, " "); m == "POST" || m == "PATCH" || m == "DELETE" {
			n += c
		}
	}
	return n
}

// TestApplyMakesTheTenantAsTheFileSays: the export of 25 of a tenant's 30
// organizations, edited (connections added, flags changed, rows deleted,
// flags left empty: don't care), applied with --prune: the dry run sends no
// write and enqueues nothing; the apply sends one write per pair that
// differs and leaves the tenant as the file says; the five organizations
// absent from the file are untouched; applying again changes nothing.
func TestApplyMakesTheTenantAsTheFileSays(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a worker")
	}
	st := newStateTenant(t, mgmttest.Config{Orgs: 30, Connections: 6, Seed: 21, Global: mgmttest.Bucket{Burst: 50, Rate: 100}})
	st.seed(1)
	before := st.pairs()
	conns := st.sim.Connections()
	orgs := st.sim.Orgs()

	want := pairs{} // the tenant as the file says, don't-care flags as they are
	var b strings.Builder
	b.WriteString("org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled,org_name,connection_name\n")
	differ := 0
	connName := map[string]string{}
	for _, c := range conns {
		connName[c.ID] = c.Name
	}
	row := func(org, conn string, s jobs.PairState, dontCare bool) {
		f := func(v bool) string { return fmt.Sprint(v) }
		orgName, _ := st.sim.OrgName(org)
		if dontCare {
			fmt.Fprintf(&b, "%s,%s,,,,%s,%s\n", org, conn, orgName, connName[conn])
		} else {
			fmt.Fprintf(&b, "%s,%s,%s,%s,%s,%s,%s\n", org, conn, f(s.AssignMembershipOnLogin), f(s.ShowAsButton), f(s.IsSignupEnabled), orgName, connName[conn])
		}
	}
	for i, org := range orgs {
		if i >= 25 {
			break // not in the file: never touched
		}
		edited := false
		for _, c := range conns {
			k := org + "/" + c.ID
			s, present := before[k]
			switch {
			case !present && i%5 == 0 && !edited: // add
				s = jobs.PairState{Present: true, AssignMembershipOnLogin: true, ShowAsButton: false}
				edited = true
				differ++
			case !present:
				continue
			case i%5 == 1 && !edited: // change a flag
				s.ShowAsButton = !s.ShowAsButton
				edited = true
				differ++
			case i%5 == 2 && !edited: // delete the row: removed with --prune
				edited = true
				differ++
				continue
			case i%5 == 3 && !edited: // flags left empty: don't care
				edited = true
				row(org, c.ID, s, true)
				want[k] = s
				continue
			}
			row(org, c.ID, s, false)
			want[k] = s
		}
	}
	for k, s := range before {
		if org, _, _ := strings.Cut(k, "/"); org == orgs[25] || org == orgs[26] || org == orgs[27] || org == orgs[28] || org == orgs[29] {
			want[k] = s
		}
	}
	path := filepath.Join(t.TempDir(), "desired.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if differ < 15 {
		t.Fatalf("only %d pairs differ; the seed gives too few", differ)
	}

	// The dry run: the plan, no write, nothing enqueued.
	code, out, errOut := runCmd(t, st.vars, "apply", "--dry-run", "--prune", "--json", path)
	var plan planOutput
	if err := json.Unmarshal([]byte(out), &plan); err != nil || code != exitOK {
		t.Fatalf("apply --dry-run: exit %d, %v: %s %s", code, err, out, errOut)
	}
	if len(plan.Changes) != differ || !plan.DryRun || plan.Enqueued != 0 {
		t.Errorf("dry run plans %d changes (enqueued %d), want %d", len(plan.Changes), plan.Enqueued, differ)
	}
	if n := writeRequests(st.sim.Stats()); n != 0 {
		t.Errorf("the dry run sent %d writes", n)
	}
	l, err := ledger.New(st.r.Client, st.r.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	if bs, err := l.Batches(context.Background(), 0); err != nil || len(bs) != 0 {
		t.Errorf("the dry run made batches %v (%v)", bs, err)
	}
	if qi, err := asynq.NewInspectorFromRedisClient(st.r.Client).GetQueueInfo(st.r.Queue); err == nil && qi.Size != 0 {
		t.Errorf("the dry run enqueued %d tasks", qi.Size)
	}
	code, out, _ = runCmd(t, st.vars, "apply", "--dry-run", "--prune", path)
	if code != exitOK || !strings.Contains(out, "= "+fmt.Sprint(len(want)-len(before)+0)) && !strings.Contains(out, " unchanged") || !strings.Contains(out, "+ enable ") || !strings.Contains(out, "~ update ") || !strings.Contains(out, "- remove ") {
		t.Errorf("apply --dry-run plan:\n%s", out)
	}

	startWorkerCmd(t, st.vars, "--rate", "50", "--burst", "20")
	planOut := filepath.Join(t.TempDir(), "plan.csv")
	start := time.Now()
	code, out, errOut = runCmd(t, st.vars, "apply", "--prune", "--wait", "--interval", "100ms", "--json", "--plan-out", planOut, path)
	elapsed := time.Since(start)
	plan = planOutput{}
	if err := json.Unmarshal([]byte(out), &plan); err != nil || code != exitOK || plan.Status == nil || !plan.Status.Done {
		t.Fatalf("apply --wait: exit %d, %v: %s %s", code, err, out, errOut)
	}
	stats := st.sim.Stats()
	sent := writeRequests(stats)
	t.Logf("apply: %d pairs differ, %d write requests (%d applied), %d list calls, %v; batch %s: %+v",
		differ, sent, stats.Writes, stats.Count("GET", mgmttest.RouteEnabledConnections, 200), elapsed.Round(time.Millisecond), plan.Batch, *plan.Status)
	if sent != differ || stats.Writes != differ {
		t.Errorf("%d write requests, %d applied; want one per pair that differs (%d)", sent, stats.Writes, differ)
	}
	if d := want.diff(st.pairs()); len(d) > 0 {
		t.Errorf("the tenant is not as the file says (%d differences):\n%s", len(d), strings.Join(d, "\n"))
	}
	recs, err := csv.NewReader(mustOpen(t, planOut)).ReadAll()
	if err != nil || len(recs) != differ+1 || strings.Join(recs[0], ",") != "action,org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled" {
		t.Errorf("--plan-out: %d records, %v", len(recs), err)
	}
	// The prior state of every pair the batch changed is the state read.
	priors, err := l.Priors(context.Background(), plan.Batch)
	if err != nil || len(priors) != differ {
		t.Errorf("%d prior states recorded (%v), want %d", len(priors), err, differ)
	}
	for _, p := range priors {
		if before[p.OrgID+"/"+p.ConnectionID] != p.State {
			t.Errorf("prior of %s/%s = %v, the tenant had %v", p.OrgID, p.ConnectionID, p.State, before[p.OrgID+"/"+p.ConnectionID])
		}
	}

	code, out, _ = runCmd(t, st.vars, "apply", "--prune", path)
	if code != exitOK || !strings.Contains(out, "nothing to change") || writeRequests(st.sim.Stats()) != sent {
		t.Errorf("applying again: exit %d: %s", code, out)
	}
}

// TestApplyByNamesPlansAsByIDs: a desired file that names organizations
// and connections (org_name, connection_name; some rows by name on one side
// only, one row with both an id and another valid name, where the id wins)
// plans exactly what the same file by ids plans, and applying it leaves the
// tenant as applying by ids would; unknown names are all reported by line,
// and nothing is planned or enqueued.
func TestApplyByNamesPlansAsByIDs(t *testing.T) {
	st := newStateTenant(t, mgmttest.Config{Orgs: 6, Connections: 4, Seed: 5, Global: mgmttest.Bucket{Burst: 50, Rate: 100}})
	st.seed(2)
	orgs, conns := st.sim.Orgs(), st.sim.Connections()
	orgName := func(id string) string {
		n, ok := st.sim.OrgName(id)
		if !ok || n == "" {
			t.Fatalf("organization %s has no name", id)
		}
		return n
	}
	var byID, byName strings.Builder
	byID.WriteString("org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled\n")
	byName.WriteString("org_id,org_name,connection_id,connection_name,assign_membership_on_login,show_as_button,is_signup_enabled\n")
	i := 0
	for oi, org := range orgs[:5] {
		for ci, c := range conns {
			if (oi+ci)%2 == 0 {
				continue
			}
			flags := fmt.Sprintf("%t,%t,false", (oi+ci)%3 == 0, ci%2 == 0)
			fmt.Fprintf(&byID, "%s,%s,%s\n", org, c.ID, flags)
			switch i % 4 {
			case 0: // both by name
				fmt.Fprintf(&byName, ",%s,,%s,%s\n", orgName(org), c.Name, flags)
			case 1: // organization by name
				fmt.Fprintf(&byName, ",%s,%s,,%s\n", orgName(org), c.ID, flags)
			case 2: // connection by name
				fmt.Fprintf(&byName, "%s,,,%s,%s\n", org, c.Name, flags)
			default: // ids and another organization's name: the id wins
				fmt.Fprintf(&byName, "%s,%s,%s,%s,%s\n", org, orgName(orgs[5]), c.ID, c.Name, flags)
			}
			i++
		}
	}
	idPath, namePath := file(t, byID.String()), file(t, byName.String())
	plan := func(path string) planOutput {
		t.Helper()
		code, out, errOut := runCmd(t, st.vars, "apply", "--dry-run", "--prune", "--json", path)
		var p planOutput
		if err := json.Unmarshal([]byte(out), &p); err != nil || code != exitOK {
			t.Fatalf("apply --dry-run %s: exit %d, %v: %s %s", filepath.Base(path), code, err, out, errOut)
		}
		p.ReadMS = 0
		return p
	}
	pid, pname := plan(idPath), plan(namePath)
	a, _ := json.Marshal(pid)
	b, _ := json.Marshal(pname)
	if string(a) != string(b) || len(pid.Changes) == 0 {
		t.Errorf("by names the plan is\n%s\nby ids\n%s", b, a)
	}
	for _, c := range pname.Changes {
		if c.OrgID == orgs[5] {
			t.Errorf("a row's org_name was used over its org_id: %+v", c)
		}
	}

	// Unknown names: every one reported by line, nothing read or enqueued.
	bad := file(t, "org_name,connection_name,show_as_button\n"+
		orgName(orgs[0])+","+conns[0].Name+",true\n"+
		"acme,"+conns[1].Name+",true\n"+
		orgName(orgs[1])+",nope-db,false\n"+
		"acme,nope-db,\n")
	code, out, errOut := runCmd(t, st.vars, "apply", bad)
	for _, w := range []string{
		`line 3: org_name: no organization named "acme"`,
		`line 4: connection_name: no connection named "nope-db"`,
		`line 5: org_name: no organization named "acme"`,
		`line 5: connection_name: no connection named "nope-db"`,
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("unknown names: %q not reported", w)
		}
	}
	if code != exitInvalid || !strings.Contains(out, "4 problems: nothing enqueued") || strings.Contains(out, "+ enable") {
		t.Errorf("unknown names: exit %d: %s %s", code, out, errOut)
	}
	// A pair listed by ids and again by names is a duplicate.
	dup := file(t, "org_id,org_name,connection_id,connection_name\n"+orgs[0]+",,"+conns[0].ID+",\n,"+orgName(orgs[0])+",,"+conns[0].Name+"\n")
	if code, _, errOut := runCmd(t, st.vars, "apply", "--dry-run", dup); code != exitInvalid || !strings.Contains(errOut, "line 3: connection_id: "+orgs[0]+"/"+conns[0].ID+" is listed on line 2 too") {
		t.Errorf("duplicate by names: exit %d: %s", code, errOut)
	}

	// Applied by names, the tenant ends as applying by ids would leave it.
	startWorkerCmd(t, st.vars, "--rate", "50", "--burst", "20")
	if code, out, errOut := runCmd(t, st.vars, "apply", "--prune", "--wait", "--interval", "100ms", namePath); code != exitOK {
		t.Fatalf("apply by names: exit %d: %s %s", code, out, errOut)
	}
	if code, out, _ := runCmd(t, st.vars, "apply", "--prune", idPath); code != exitOK || !strings.Contains(out, "nothing to change") {
		t.Errorf("applying by ids after by names: exit %d: %s", code, out)
	}
	if n := writeRequests(st.sim.Stats()); n != len(pid.Changes) {
		t.Errorf("%d writes sent, want %d", n, len(pid.Changes))
	}
}

func mustOpen(t *testing.T, path string) *bytes.Reader {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(data)
}

// TestApplyRefusesBadFilesAndUnknownOrganizations: every problem named by
// line and field, nothing enqueued, exit 1.
func TestApplyRefusesBadFilesAndUnknownOrganizations(t *testing.T) {
	st := newStateTenant(t, mgmttest.Config{Orgs: 2, Connections: 2, Seed: 3})
	org, con := st.sim.Orgs()[0], st.sim.Connections()[0].ID
	bad := file(t, "org_id,connection_id,show_as_button\n"+org+","+con+",sometimes\n")
	code, out, errOut := runCmd(t, st.vars, "apply", bad)
	if code != exitInvalid || !strings.Contains(errOut, `line 2: show_as_button: "sometimes" is not a flag value`) || !strings.Contains(out, "nothing enqueued") {
		t.Errorf("bad flag: exit %d: %s %s", code, out, errOut)
	}
	unknown := file(t, "org_id,connection_id\n"+org+","+con+"\norg_nope,"+con+"\n")
	code, out, errOut = runCmd(t, st.vars, "apply", "--json", unknown)
	var res planOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitInvalid || len(res.Errors) != 1 || res.Errors[0].Line != 3 || res.Errors[0].Field != "org_id" {
		t.Errorf("unknown organization: exit %d, %v: %s %s", code, err, out, errOut)
	}
	if n := writeRequests(st.sim.Stats()); n != 0 {
		t.Errorf("%d writes sent", n)
	}
	if code, _, _ := runCmd(t, st.vars, "apply"); code != exitUsage {
		t.Errorf("no file: exit %d", code)
	}
	if code, out, _ := runCmd(t, st.vars, "apply", "--help"); code != exitOK || !strings.Contains(out, "--prune") || !strings.Contains(out, "= N unchanged") {
		t.Errorf("apply --help: exit %d: %s", code, out)
	}
	if code, out, _ := runCmd(t, st.vars, "rollback", "--help"); code != exitOK || !strings.Contains(out, "--force") || !strings.Contains(out, "no prior state recorded") {
		t.Errorf("rollback --help: exit %d: %s", code, out)
	}
	if code, _, errOut := runCmd(t, st.vars, "rollback", "nope"); code != exitInvalid || !strings.Contains(errOut, "no such batch") {
		t.Errorf("rollback of an unknown batch: exit %d: %s", code, errOut)
	}
}

// TestRollbackRestoresTheStateBeforeAnImport: 500 changes (30% of them on
// pairs changed more than once) imported with --read always under faults
// (5xx, dropped connections, lost responses) and applied by two workers;
// another client then changes one of the pairs the import changed.
// rollback reports that pair and leaves it alone, and puts every other pair
// back exactly as it was before the import.
func TestRollbackRestoresTheStateBeforeAnImport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two workers")
	}
	st := newStateTenant(t, mgmttest.Config{Orgs: 50, Connections: 8, Seed: 31, Global: mgmttest.Bucket{Burst: 50, Rate: 150},
		Faults: mgmttest.Faults{Error5xx: 0.03, Drop: 0.01, LostResponse: 0.02}})
	st.seed(2)
	before := st.pairs()
	var tenant jobstest.Tenant
	tenant.Orgs = st.sim.Orgs()
	for _, c := range st.sim.Connections() {
		tenant.Connections = append(tenant.Connections, jobstest.Connection{ID: c.ID, Database: c.Strategy == "auth0"})
	}
	rows := jobstest.Generate(tenant, jobstest.Options{Changes: 500, RepeatShare: 0.3, Seed: 9})
	var buf bytes.Buffer
	if err := jobstest.WriteCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	changes := file(t, buf.String())
	// The workers read the state (and record it for rollback) on a tenant in
	// legacy mode: in connections mode they write without reading (the
	// legacy list does not show disabled associations).
	w1 := startWorkerCmd(t, st.vars, "--rate", "50", "--burst", "20", "--api", "legacy")
	w2 := startWorkerCmd(t, st.vars, "--rate", "50", "--burst", "20", "--api", "legacy")
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("ORGCONN_TEST_WORKER_LOGS") != "" {
			for _, w := range []*workerRun{w1, w2} {
				for _, line := range strings.Split(w.stderr.String(), "\n") {
					if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
						t.Log(line)
					}
				}
			}
		}
	})
	start := time.Now()
	code, out, errOut := runCmd(t, st.vars, "import", "--batch", "imp", "--read", "always", "--wait", "--interval", "100ms", changes)
	if code != exitOK {
		t.Fatalf("import: exit %d: %s %s", code, out, errOut)
	}
	importStats := st.sim.Stats()
	t.Logf("import of 500 changes: %v; %s; simulator: %d write requests, %d list calls, faults %v", time.Since(start).Round(time.Millisecond),
		strings.TrimSpace(out[strings.LastIndex(out, "batch imp finished"):]), writeRequests(importStats), importStats.Count("GET", mgmttest.RouteEnabledConnections, 200), importStats.Faults)
	for _, f := range []mgmttest.FaultKind{mgmttest.FaultError5xx, mgmttest.FaultDrop} {
		if importStats.Faults[f] == 0 {
			t.Errorf("the import met no fault %v: %v", f, importStats.Faults)
		}
	}

	// Another client changes a pair the import left enabled.
	l, err := ledger.New(st.r.Client, st.r.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	lefts, err := l.Lefts(context.Background(), "imp")
	if err != nil || len(lefts) < 100 {
		t.Fatalf("%d states left recorded (%v)", len(lefts), err)
	}
	priors, err := l.Priors(context.Background(), "imp")
	if err != nil {
		t.Fatal(err)
	}
	wasAbsent := map[string]bool{}
	for _, p := range priors {
		wasAbsent[p.OrgID+"/"+p.ConnectionID] = !p.State.Present
	}
	// A pair the import created: changing a flag makes it neither what the
	// import left nor what was before.
	var moved jobs.PairRecord
	for _, r := range lefts {
		if r.State.Present && wasAbsent[r.OrgID+"/"+r.ConnectionID] {
			moved = r
			break
		}
	}
	if moved.OrgID == "" {
		t.Fatal("the import created no pair")
	}
	cur := st.sim.State()[moved.OrgID]
	ec := cur[moved.ConnectionID]
	ec.ShowAsButton = !ec.ShowAsButton
	cur[moved.ConnectionID] = ec
	st.sim.SetState(moved.OrgID, cur)
	movedKey := moved.OrgID + "/" + moved.ConnectionID
	movedState := st.pairs()[movedKey]

	// The dry run sends nothing and enqueues nothing.
	w0 := writeRequests(st.sim.Stats())
	code, out, errOut = runCmd(t, st.vars, "rollback", "--dry-run", "imp")
	if code != exitOK || !strings.Contains(out, "! left alone "+movedKey+": changed since the batch") || writeRequests(st.sim.Stats()) != w0 {
		t.Fatalf("rollback --dry-run: exit %d: %s %s", code, out, errOut)
	}
	if bs, _ := l.Batches(context.Background(), 0); len(bs) != 1 {
		t.Errorf("the dry run made batches: %v", bs)
	}

	start = time.Now()
	code, out, errOut = runCmd(t, st.vars, "rollback", "--json", "--wait", "--interval", "100ms", "imp")
	var res planOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || res.Status == nil || !res.Status.Done || res.Batch != "imp-rollback-1" {
		t.Fatalf("rollback: exit %d, %v: %s %s", code, err, out, errOut)
	}
	t.Logf("rollback: %d changes, %d unchanged, %d skipped, %v; %d write requests", len(res.Changes), res.Unchanged, len(res.Skipped), time.Since(start).Round(time.Millisecond), writeRequests(st.sim.Stats())-w0)
	if len(res.Skipped) != 1 || res.Skipped[0].OrgID != moved.OrgID || res.Skipped[0].ConnectionID != moved.ConnectionID || !strings.HasPrefix(res.Skipped[0].Reason, "changed since the batch") {
		t.Errorf("skipped = %+v, want only %s (changed by another client)", res.Skipped, movedKey)
	}
	want := pairs{}
	for k, s := range before {
		want[k] = s
	}
	if movedState.Present {
		want[movedKey] = movedState
	} else {
		delete(want, movedKey)
	}
	if d := want.diff(st.pairs()); len(d) > 0 {
		t.Errorf("after the rollback the tenant differs from before the import (%d differences):\n%s", len(d), strings.Join(d, "\n"))
	}
}

// TestImportStoresTheReadModeWithTheBatch: import --read is kept with the
// batch, with its rows per organization, for the workers to follow; a bad
// mode is a usage error on import and worker.
func TestImportStoresTheReadModeWithTheBatch(t *testing.T) {
	_, vars, l := opsSetup(t)
	f := file(t, "action,org_id,connection_id\nenable,org_1,con_1\nremove,org_1,con_2\nenable,org_2,con_1\ndeactivate,org_3,con_1\n")
	code, _, errOut := runCmd(t, vars, "import", "--batch", "r1", "--read", "always", "--skip-invalid", f)
	if code != exitOK {
		t.Fatalf("import --read always: exit %d: %s", code, errOut)
	}
	h, rows, ok, err := l.Hints(context.Background(), "r1", "org_1")
	if err != nil || !ok || h.Read != jobs.ReadAlways || h.Rows != 3 || h.Orgs != 2 || rows != 2 || h.LikelyUnchanged != 0.5 {
		t.Errorf("hints = %+v, org_1 rows %d, %v, %v; want always, 3 rows over 2 organizations, 2 for org_1", h, rows, ok, err)
	}
	if code, _, errOut := runCmd(t, vars, "import", "--read", "sometimes", f); code != exitUsage || !strings.Contains(errOut, "--read") {
		t.Errorf("import --read sometimes: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCmd(t, vars, "worker", "--read", "sometimes"); code != exitUsage || !strings.Contains(errOut, "--read") {
		t.Errorf("worker --read sometimes: exit %d: %s", code, errOut)
	}
}
