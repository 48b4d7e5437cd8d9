package producer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/redistest"
)

// setupWith is setup with the importer's Config edited by edit.
func setupWith(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	env := redistest.New(t)
	l, err := ledger.New(env.Client, env.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(env.Client)
	cfg := Config{Ledger: l, Queue: client, QueueName: env.Queue, ChunkSize: 64}
	edit(&cfg)
	im, err := NewImporter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, importer: im, inspector: asynq.NewInspectorFromRedisClient(env.Client), ledger: l}
}

// payloads returns the changes of the queued tasks by task id.
func (f *fixture) payloads(t *testing.T) map[string]jobs.Change {
	t.Helper()
	tasks, err := f.inspector.ListPendingTasks(f.env.Queue, asynq.PageSize(10000))
	if err != nil && !strings.Contains(err.Error(), "not found") {
		t.Fatal(err)
	}
	out := map[string]jobs.Change{}
	for _, ti := range tasks {
		p, err := jobs.DecodePayload(ti.Payload)
		if err != nil {
			t.Fatal(err)
		}
		out[ti.ID] = p.Change
	}
	return out
}

func errorTexts(errs []RowError) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// TestNewColumnsAreValidatedOnTheirLine checks every rule of the new
// columns, each error naming its line and field.
func TestNewColumnsAreValidatedOnTheirLine(t *testing.T) {
	header := "action,org_id,org_name,connection_id,connection_name,show_as_button,organization_connection_name,organization_access_level\n"
	for _, tc := range []struct {
		name, row string
		want      []string // every error of line 2, in order
	}{
		{"disable with everything", "Disable,org_1,acme,con_1,google-oauth2,false,Acme Google,FULL", nil},
		{"names only", "enable,,acme,,google-oauth2,,,", nil},
		{"level admin", "enable,org_1,,con_1,,,,admin", []string{`line 2: organization_access_level: "admin" is not one of none, readonly, limited, full`}},
		{"level with spaces ok", "update,org_1,,con_1,,,, readonly ", nil},
		{"connection name 51", "enable,org_1,,con_1,,," + strings.Repeat("n", 51) + ",", []string{`line 2: organization_connection_name: "nnnnnnnnnnnnnnnnnnnnnnn…" is 51 characters, the limit is 50`}},
		{"connection name with a space at the end", "enable,org_1,,con_1,,,\"Acme \",", []string{`line 2: organization_connection_name: "Acme " begins or ends with white space`}},
		{"org name uppercase", "enable,,Acme,con_1,,,,", []string{`line 2: org_name: "Acme" contains "A": only lowercase letters, digits, "_" and "-" are allowed`}},
		{"org name is an id", "enable,,org_abc,con_1,,,,", []string{`line 2: org_name: "org_abc" starts with "org_": that is an organization id, give it as org_id`}},
		{"org name 51", "enable,," + strings.Repeat("a", 51) + ",con_1,,,,", []string{`line 2: org_name: "aaaaaaaaaaaaaaaaaaaaaaa…" is 51 characters, the limit is 50`}},
		{"connection name underscore", "enable,org_1,,,my_db,,,", []string{`line 2: connection_name: "my_db" contains "_": only letters, digits and "-" are allowed`}},
		{"connection name 129", "enable,org_1,,," + strings.Repeat("c", 129) + ",,,", []string{`line 2: connection_name: "ccccccccccccccccccccccc…" is 129 characters, the limit is 128`}},
		{"no organization", "enable,,,con_1,,,,", []string{"line 2: org_id: is empty: give an org_id or an org_name"}},
		{"no connection", "enable,org_1,,,,,,", []string{"line 2: connection_id: is empty: give a connection_id or a connection_name"}},
		{"name on remove", "remove,org_1,,con_1,,,Acme,", []string{"line 2: organization_connection_name: is not allowed on remove: leave it empty"}},
		{"level on remove", "remove,org_1,,con_1,,,,none", []string{"line 2: organization_access_level: is not allowed on remove: leave it empty"}},
		{"update with a level only", "update,org_1,,con_1,,,,limited", nil},
		{"update with nothing", "update,org_1,,con_1,,,,", []string{"line 2: action: update needs at least one of assign_membership_on_login, show_as_button, is_signup_enabled, organization_connection_name, organization_access_level"}},
		{"unknown action", "deactivate,org_1,,con_1,,,,", []string{`line 2: action: "deactivate" is not an action: use enable, disable, update or remove`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := read(t, header+tc.row+"\n")
			if len(recs) != 1 {
				t.Fatalf("read %d records, want 1", len(recs))
			}
			got := errorTexts(recs[0].Errors)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("errors = %q\nwant     %q", got, tc.want)
			}
		})
	}
	recs := read(t, header+"Disable,org_1,acme,con_1,google-oauth2,false,Acme Google,FULL\n")
	want := jobs.Change{Action: jobs.Disable, OrgID: "org_1", OrgName: "acme", ConnectionID: "con_1", ConnectionName: "google-oauth2",
		ShowAsButton: jobs.False, OrgConnectionName: "Acme Google", AccessLevel: jobs.LevelFull}
	if recs[0].Change != want {
		t.Fatalf("change = %+v, want %+v", recs[0].Change, want)
	}
}

func TestHeaderNeedsAnIDOrANameForEachSide(t *testing.T) {
	for content, want := range map[string]string{
		"action,org_name,connection_id\n":   "",
		"action,org_id,connection_name\n":   "",
		"action,org_name,connection_name\n": "",
		"action,connection_name\n":          "line 1: org_id: required column is missing from the header (or give org_name instead)",
		"action,org_name\n":                 "line 1: connection_id: required column is missing from the header (or give connection_name instead)",
	} {
		_, err := NewCSVReader(strings.NewReader(content), Limits{})
		switch {
		case want == "" && err != nil:
			t.Errorf("header %q: %v", content, err)
		case want != "" && (err == nil || err.Error() != want):
			t.Errorf("header %q: err = %v, want %s", content, err, want)
		}
	}
}

func TestRefusedInMode(t *testing.T) {
	c := jobs.Change{Action: jobs.Disable, OrgID: "o", ConnectionID: "c"}
	if got, want := RefusedInMode(c, ModeLegacy, "--api"), `action "disable" needs the Organization connections API; this tenant is in legacy mode (--api)`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	c.OrgConnectionName, c.AccessLevel = "x", jobs.LevelFull
	if got, want := RefusedInMode(c, ModeLegacy, ""), `action "disable", organization_connection_name and organization_access_level need the Organization connections API; this tenant is in legacy mode`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	c.Action = jobs.Enable
	c.OrgConnectionName = ""
	if got, want := RefusedInMode(c, ModeLegacy, "--api"), `organization_access_level needs the Organization connections API; this tenant is in legacy mode (--api)`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	for _, m := range []APIMode{ModeConnections, ModeUnknown} {
		if got := RefusedInMode(c, m, "--api"); got != "" {
			t.Errorf("mode %q refused: %s", m, got)
		}
	}
	if got := RefusedInMode(jobs.Change{Action: jobs.Enable, OrgName: "acme", ConnectionName: "db"}, ModeLegacy, ""); got != "" {
		t.Errorf("names refused in legacy mode: %s", got)
	}
}

func TestParseAPIMode(t *testing.T) {
	for in, want := range map[string]APIMode{"legacy": ModeLegacy, " Connections ": ModeConnections, "auto": ModeUnknown, "": ModeUnknown} {
		if got, err := ParseAPIMode(in); err != nil || got != want {
			t.Errorf("ParseAPIMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseAPIMode("new"); err == nil || err.Error() != `API mode "new": use legacy, connections or auto` {
		t.Errorf("ParseAPIMode(new) = %v", err)
	}
}

// mixedFile writes a 400-row file mixing the four actions, the three flags
// and the two new columns; it returns the file and the lines that need the
// Organization connections API.
func mixedFile(t *testing.T) (string, []int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("action,org_id,connection_id,assign_membership_on_login,show_as_button,organization_connection_name,organization_access_level\n")
	var needs []int
	for i := 0; i < 400; i++ {
		line := i + 2
		org, conn := fmt.Sprintf("org_%03d", i%37), fmt.Sprintf("con_%02d", i%11)
		var row string
		switch i % 8 {
		case 0:
			row = "enable," + org + "," + conn + ",true,,,"
		case 1:
			row = "update," + org + "," + conn + ",,false,,"
		case 2:
			row = "remove," + org + "," + conn + ",,,,"
		case 3:
			row = "disable," + org + "," + conn + ",,,,"
			needs = append(needs, line)
		case 4:
			row = "enable," + org + "," + conn + ",,,Acme " + conn + ",full"
			needs = append(needs, line)
		case 5:
			row = "update," + org + "," + conn + ",,,,none"
			needs = append(needs, line)
		case 6:
			row = "disable," + org + "," + conn + ",false,true,Staged,readonly"
			needs = append(needs, line)
		case 7:
			row = "enable," + org + "," + conn + ",,,,"
		}
		b.WriteString(row + "\n")
	}
	return writeFile(t, "mixed.csv", b.String()), needs
}

// TestLegacyModeRefusesEveryRowNeedingTheNewerAPI: a 400-row file mixing
// all four actions and the new columns, imported into a tenant in legacy
// mode, names every refused line with its reason and enqueues nothing.
func TestLegacyModeRefusesEveryRowNeedingTheNewerAPI(t *testing.T) {
	f := setupWith(t, func(c *Config) { c.Mode, c.ModeHint = FixedMode(ModeLegacy), "--api" })
	path, needs := mixedFile(t)
	res, err := f.importer.ImportFile(context.Background(), path, Options{Batch: "legacy"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rejected || res.Rows != 400 || res.Invalid != len(needs) || res.Valid != 400-len(needs) || res.Enqueued != 0 {
		t.Fatalf("Result = %+v; want 400 rows, %d refused, rejected, nothing enqueued", res, len(needs))
	}
	var lines []int
	for _, e := range res.Errors {
		lines = append(lines, e.Line)
	}
	if fmt.Sprint(lines) != fmt.Sprint(needs) {
		t.Fatalf("refused lines = %v\nwant %v", lines, needs)
	}
	for _, want := range []string{
		`line 5: action "disable" needs the Organization connections API; this tenant is in legacy mode (--api)`,
		`line 6: organization_connection_name and organization_access_level need the Organization connections API; this tenant is in legacy mode (--api)`,
		`line 7: organization_access_level needs the Organization connections API; this tenant is in legacy mode (--api)`,
		`line 8: action "disable", organization_connection_name and organization_access_level need the Organization connections API; this tenant is in legacy mode (--api)`,
	} {
		if !strings.Contains(strings.Join(errorTexts(res.Errors), "\n"), want) {
			t.Errorf("errors do not contain %q", want)
		}
	}
	if q := f.queued(t); len(q) != 0 {
		t.Fatalf("%d tasks were enqueued for a refused file", len(q))
	}
	if _, err := f.ledger.Batch(context.Background(), "legacy"); !errors.Is(err, ledger.ErrNoBatch) {
		t.Fatalf("the ledger knows the refused batch: %v", err)
	}

	// The same file for a tenant with the newer API, or whose mode is not
	// known yet, is enqueued whole.
	for _, mode := range []APIMode{ModeConnections, ModeUnknown} {
		g := setupWith(t, func(c *Config) { c.Mode = FixedMode(mode) })
		res, err := g.importer.ImportFile(context.Background(), path, Options{Batch: "b"})
		if err != nil || res.Enqueued != 400 || res.Invalid != 0 {
			t.Fatalf("mode %q: Result = %+v, %v; want 400 enqueued", mode, res, err)
		}
		if p := g.payloads(t)["b:8"]; p != (jobs.Change{Action: jobs.Disable, OrgID: "org_006", ConnectionID: "con_06", AssignMembershipOnLogin: jobs.False, ShowAsButton: jobs.True, OrgConnectionName: "Staged", AccessLevel: jobs.LevelReadonly}) {
			t.Fatalf("mode %q: line 8 queued as %+v", mode, p)
		}
	}
}

// fakeResolver knows some names and counts its look-ups per name.
type fakeResolver struct {
	mu    sync.Mutex
	orgs  map[string]string
	conns map[string]string
	calls map[string]int // "o:name" or "c:name" → look-ups
	fail  error
}

func (r *fakeResolver) count(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[k]++
}

func (r *fakeResolver) OrgID(ctx context.Context, name string) (string, bool, error) {
	r.count("o:" + name)
	if r.fail != nil {
		return "", false, r.fail
	}
	id, ok := r.orgs[name]
	return id, ok, nil
}

func (r *fakeResolver) ConnectionID(ctx context.Context, name string) (string, bool, error) {
	r.count("c:" + name)
	id, ok := r.conns[name]
	return id, ok, nil
}

// namesFile writes 300 rows over 40 organizations and 8 connections, half of
// each named by name; unknown maps line index → an unknown org or
// connection name used there. It returns the file, the lines using an
// unknown name with their expected error, and the expected change of every
// line when every name is known.
func namesFile(t *testing.T, r *fakeResolver, unknown map[int]string) (string, map[int]string, map[int]jobs.Change) {
	t.Helper()
	r.orgs, r.conns = map[string]string{}, map[string]string{}
	for i := 0; i < 40; i++ {
		r.orgs[fmt.Sprintf("customer-%02d", i)] = fmt.Sprintf("org_%016d", i)
	}
	for i := 0; i < 8; i++ {
		r.conns[fmt.Sprintf("Conn-%d", i)] = fmt.Sprintf("con_%016d", i)
	}
	var b strings.Builder
	b.WriteString("action,org_id,org_name,connection_id,connection_name,assign_membership_on_login\n")
	bad := map[int]string{}
	want := map[int]jobs.Change{}
	for i := 0; i < 300; i++ {
		line := i + 2
		o, c := i%40, (i/3)%8
		orgName, connName := fmt.Sprintf("customer-%02d", o), fmt.Sprintf("Conn-%d", c)
		orgID, connID := r.orgs[orgName], r.conns[connName]
		ch := jobs.Change{Action: jobs.Enable, OrgID: orgID, ConnectionID: connID, AssignMembershipOnLogin: jobs.True}
		var orgCells, connCells string
		if o%2 == 0 {
			orgCells, ch.OrgName = ","+orgName, orgName
		} else {
			orgCells = orgID + ","
		}
		if c%2 == 0 {
			connCells, ch.ConnectionName = ","+connName, connName
		} else {
			connCells = connID + ","
		}
		if u, ok := unknown[i]; ok {
			if strings.HasPrefix(u, "Conn") {
				connCells = "," + u
				bad[line] = fmt.Sprintf("line %d: connection_name: no connection named %q", line, u)
			} else {
				orgCells = "," + u
				bad[line] = fmt.Sprintf("line %d: org_name: no organization named %q", line, u)
			}
		}
		want[line] = ch
		b.WriteString("enable," + orgCells + "," + connCells + ",true\n")
	}
	return writeFile(t, "names.csv", b.String()), bad, want
}

// TestUnknownNamesAreEachReportedAndNothingIsEnqueued: 5 unknown names in a
// 300-row file, some on several lines, are each reported on every line that
// uses them, nothing is enqueued, and each distinct name is looked up once.
func TestUnknownNamesAreEachReportedAndNothingIsEnqueued(t *testing.T) {
	r := &fakeResolver{}
	unknown := map[int]string{
		10: "acme", 11: "acme", 250: "acme", // one unknown organization on three lines
		40: "globex", 77: "initech", 299: "Conn-99", 150: "Conn-x", 151: "Conn-x",
	}
	path, bad, _ := namesFile(t, r, unknown)
	f := setupWith(t, func(c *Config) { c.Resolver = r })
	res, err := f.importer.ImportFile(context.Background(), path, Options{Batch: "names"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rejected || res.Rows != 300 || res.Invalid != len(bad) || res.Enqueued != 0 {
		t.Fatalf("Result = %+v; want 300 rows, %d invalid, rejected", res, len(bad))
	}
	var want []string
	for _, e := range bad {
		want = append(want, e)
	}
	got := errorTexts(res.Errors)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if q := f.queued(t); len(q) != 0 {
		t.Fatalf("%d tasks enqueued", len(q))
	}
	if _, err := f.ledger.Batch(context.Background(), "names"); !errors.Is(err, ledger.ErrNoBatch) {
		t.Fatalf("the ledger knows the refused batch: %v", err)
	}
	for k, n := range r.calls {
		if n != 1 {
			t.Errorf("%s looked up %d times, want once", k, n)
		}
	}
	for _, k := range []string{"o:acme", "o:globex", "o:initech", "c:Conn-99", "c:Conn-x", "o:customer-00", "c:Conn-0"} {
		if r.calls[k] != 1 {
			t.Errorf("%s looked up %d times, want once", k, r.calls[k])
		}
	}
	if r.calls["o:customer-01"] != 0 {
		t.Error("an organization given by id was looked up")
	}
}

// TestNamesAreResolvedBeforeEnqueueing: with every name known, every row is
// enqueued with its ids (the names kept beside them), each distinct name
// looked up once over both passes over the file.
func TestNamesAreResolvedBeforeEnqueueing(t *testing.T) {
	r := &fakeResolver{}
	path, _, want := namesFile(t, r, nil)
	f := setupWith(t, func(c *Config) { c.Resolver = r; c.Mode = FixedMode(ModeLegacy) })
	res, err := f.importer.ImportFile(context.Background(), path, Options{Batch: "known"})
	if err != nil || res.Enqueued != 300 || res.Invalid != 0 {
		t.Fatalf("Result = %+v, %v; want 300 enqueued", res, err)
	}
	got := f.payloads(t)
	for line, c := range want {
		if g := got[jobs.TaskID("known", line)]; g != c {
			t.Fatalf("line %d queued as %+v, want %+v", line, g, c)
		}
		if got[jobs.TaskID("known", line)].Unresolved() {
			t.Fatalf("line %d queued unresolved", line)
		}
	}
	if len(r.calls) != 20+4 {
		t.Errorf("%d distinct names looked up, want 24 (20 organizations, 4 connections)", len(r.calls))
	}
	for k, n := range r.calls {
		if n != 1 {
			t.Errorf("%s looked up %d times, want once", k, n)
		}
	}
}

func TestWithoutAResolverNamesAreEnqueuedAsGiven(t *testing.T) {
	f := setupWith(t, func(*Config) {})
	res, err := f.importer.ImportFile(context.Background(), writeFile(t, "n.csv", "action,org_name,connection_name\nenable,acme,google-oauth2\n"), Options{Batch: "n"})
	if err != nil || res.Enqueued != 1 {
		t.Fatalf("Result = %+v, %v", res, err)
	}
	if c := f.payloads(t)["n:2"]; c != (jobs.Change{Action: jobs.Enable, OrgName: "acme", ConnectionName: "google-oauth2"}) || c.PairKey() != "name:acme/name:google-oauth2" {
		t.Fatalf("queued %+v", c)
	}
}

func TestAFailedLookUpEndsTheImportWithNothingEnqueued(t *testing.T) {
	r := &fakeResolver{orgs: map[string]string{}, fail: errors.New("503 from the tenant")}
	f := setupWith(t, func(c *Config) { c.Resolver = r })
	_, err := f.importer.ImportFile(context.Background(), writeFile(t, "f.csv", "action,org_name,connection_id\nenable,acme,con_1\n"), Options{Batch: "f"})
	if err == nil || !strings.Contains(err.Error(), `line 2: look up organization "acme": 503 from the tenant`) {
		t.Fatalf("err = %v", err)
	}
	if q := f.queued(t); len(q) != 0 {
		t.Fatalf("enqueued %v", q)
	}
}

func TestTooManyDistinctNames(t *testing.T) {
	r := &fakeResolver{orgs: map[string]string{"a": "org_a", "b": "org_b", "c": "org_c"}}
	im := &Importer{cfg: Config{Resolver: r, MaxNames: 2}.withDefaults()}
	res, err := im.Validate(strings.NewReader("action,org_name,connection_id\nremove,a,con_1\nremove,b,con_1\nremove,c,con_1\nremove,a,con_2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := errorTexts(res.Errors); len(got) != 1 || got[0] != "line 4: org_name: the file names more than 2 distinct organizations and connections: give ids, or split the file" {
		t.Fatalf("errors = %q", got)
	}
}

// fakeDirectory counts its calls.
type fakeDirectory struct {
	orgs      map[string]string
	conns     []NamedConnection
	orgCalls  atomic.Int64
	listCalls atomic.Int64
	failOrgs  atomic.Bool
	slow      chan struct{} // if not nil, OrganizationByName waits for it
	perName   sync.Map
}

func (d *fakeDirectory) OrganizationByName(ctx context.Context, name string) (string, bool, error) {
	d.orgCalls.Add(1)
	v, _ := d.perName.LoadOrStore(name, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if d.slow != nil {
		<-d.slow
	}
	if d.failOrgs.Load() {
		return "", false, errors.New("500")
	}
	id, ok := d.orgs[name]
	return id, ok, nil
}

func (d *fakeDirectory) Connections(ctx context.Context) ([]NamedConnection, error) {
	d.listCalls.Add(1)
	return d.conns, nil
}

func TestNameResolverLooksEachNameUpOnce(t *testing.T) {
	d := &fakeDirectory{orgs: map[string]string{"acme": "org_1"}, conns: []NamedConnection{{"con_1", "google-oauth2"}, {"con_2", "Username-Password-Authentication"}}}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	r, err := NewNameResolver(d, NameResolverConfig{TTL: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if id, ok, err := r.OrgID(ctx, "acme"); id != "org_1" || !ok || err != nil {
			t.Fatalf("OrgID(acme) = %q, %v, %v", id, ok, err)
		}
		if _, ok, err := r.OrgID(ctx, "nobody"); ok || err != nil {
			t.Fatalf("OrgID(nobody) = %v, %v", ok, err)
		}
		if id, ok, err := r.ConnectionID(ctx, "Username-Password-Authentication"); id != "con_2" || !ok || err != nil {
			t.Fatalf("ConnectionID = %q, %v, %v", id, ok, err)
		}
		if _, ok, err := r.ConnectionID(ctx, "google"); ok || err != nil {
			t.Fatalf("ConnectionID(google) = %v, %v", ok, err)
		}
	}
	if d.orgCalls.Load() != 2 || d.listCalls.Load() != 1 {
		t.Fatalf("%d organization look-ups and %d listings, want 2 and 1", d.orgCalls.Load(), d.listCalls.Load())
	}
	now = now.Add(time.Minute)
	r.OrgID(ctx, "acme")
	r.ConnectionID(ctx, "google-oauth2")
	if d.orgCalls.Load() != 3 || d.listCalls.Load() != 2 {
		t.Fatalf("after the TTL: %d look-ups and %d listings, want 3 and 2", d.orgCalls.Load(), d.listCalls.Load())
	}

	// A failed look-up is not kept.
	d.failOrgs.Store(true)
	if _, _, err := r.OrgID(ctx, "initech"); err == nil || err.Error() != `look up organization "initech": 500` {
		t.Fatalf("err = %v", err)
	}
	d.failOrgs.Store(false)
	if _, _, err := r.OrgID(ctx, "initech"); err != nil {
		t.Fatal(err)
	}
	if v, _ := d.perName.Load("initech"); v.(*atomic.Int64).Load() != 2 {
		t.Fatalf("initech looked up %d times, want 2 (the failure is not kept)", v.(*atomic.Int64).Load())
	}
}

func TestNameResolverSharesConcurrentLookUps(t *testing.T) {
	d := &fakeDirectory{orgs: map[string]string{"acme": "org_1"}, slow: make(chan struct{})}
	r, _ := NewNameResolver(d, NameResolverConfig{})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if id, ok, err := r.OrgID(context.Background(), "acme"); id != "org_1" || !ok || err != nil {
				t.Errorf("OrgID = %q, %v, %v", id, ok, err)
			}
		}()
	}
	for d.orgCalls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(d.slow)
	wg.Wait()
	if n := d.orgCalls.Load(); n != 1 {
		t.Fatalf("%d look-ups for 20 concurrent callers, want 1", n)
	}
}

func TestAdmitChanges(t *testing.T) {
	r := &fakeResolver{orgs: map[string]string{"acme": "org_1"}, conns: map[string]string{"google-oauth2": "con_1"}}
	changes := []jobs.Change{
		{Action: jobs.Enable, OrgName: "acme", ConnectionName: "google-oauth2"},
		{Action: jobs.Disable, OrgName: "acme", ConnectionID: "con_2"},
		{Action: jobs.Remove, OrgName: "globex", ConnectionName: "nope"},
		{Action: jobs.Update, OrgID: "org_9", OrgName: "whatever", ConnectionName: "google-oauth2", AccessLevel: jobs.LevelNone},
	}
	problems, err := AdmitChanges(context.Background(), changes, ModeLegacy, "", r)
	if err != nil {
		t.Fatal(err)
	}
	want := []ChangeProblem{
		{1, "", `action "disable" needs the Organization connections API; this tenant is in legacy mode`},
		{2, "org_name", `no organization named "globex"`},
		{2, "connection_name", `no connection named "nope"`},
		{3, "", `organization_access_level needs the Organization connections API; this tenant is in legacy mode`},
	}
	if fmt.Sprint(problems) != fmt.Sprint(want) {
		t.Fatalf("problems = %v\nwant %v", problems, want)
	}
	if changes[0].OrgID != "org_1" || changes[0].ConnectionID != "con_1" || changes[3].OrgID != "org_9" || changes[3].ConnectionID != "con_1" {
		t.Fatalf("not resolved in place: %+v", changes)
	}
	if r.calls["o:acme"] != 1 || r.calls["c:google-oauth2"] != 1 || r.calls["o:whatever"] != 0 {
		t.Fatalf("look-ups = %v; want each distinct name once, none for a name beside its id", r.calls)
	}
	r.fail = errors.New("boom")
	if _, err := AdmitChanges(context.Background(), []jobs.Change{{Action: jobs.Remove, OrgName: "x", ConnectionID: "c"}}, ModeUnknown, "", r); err == nil {
		t.Fatal("a failed look-up gave no error")
	}
	if p, err := AdmitChanges(context.Background(), []jobs.Change{{Action: jobs.Disable, OrgName: "x", ConnectionID: "c"}}, ModeConnections, "", nil); err != nil || len(p) != 0 {
		t.Fatalf("without a resolver in connections mode: %v, %v", p, err)
	}
}
