package desired

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/orgconn/orgconn/jobs"
)

func TestReadReportsEveryProblemByLineAndField(t *testing.T) {
	in := "\uFEFFOrg_ID,connection_id,show_as_button,org_name,connection_name\n" +
		"org_1,con_1,true,acme,db\n" +
		"org_1,con_2,maybe,acme,g\n" +
		"org 2,con_1,,x,y\n" +
		"org_1,con_1,false,acme,db\n" +
		"org_3,con_1,,,,extra\n"
	_, errs, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`line 3: show_as_button: "maybe" is not a flag value`,
		`line 4: org_id: "org 2" contains " "`,
		`line 5: connection_id: org_1/con_1 is listed on line 2 too`,
		`line 6: column 6: unexpected`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors = %v, want %d", errs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want it to start %q", i, errs[i].Error(), w)
		}
	}
	_, errs, _ = Read(strings.NewReader("org_id,action\norg_1,enable\n"))
	if len(errs) != 2 || errs[0].Field != `"action"` || errs[1].Field != jobs.FieldConnectionID {
		t.Errorf("bad header: %v", errs)
	}
	_, errs, _ = Read(strings.NewReader("org_id,connection_id,assign_membership_on_login,is_signup_enabled\norg_1,con_1,false,true\n"))
	if len(errs) != 1 || errs[0].Line != 2 || errs[0].Field != jobs.FieldSignup {
		t.Errorf("sign-up without membership: %v", errs)
	}
	wants, errs, err := Read(strings.NewReader("org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled,org_name,connection_name\norg_1,con_1,true,,false,acme,db\n"))
	if err != nil || len(errs) != 0 || len(wants) != 1 {
		t.Fatalf("good file: %v, %v, %v", wants, errs, err)
	}
	if w := wants[0]; w.Line != 2 || w.OrgID != "org_1" || w.AssignMembershipOnLogin != jobs.True || w.ShowAsButton != jobs.Unset || w.IsSignupEnabled != jobs.False {
		t.Errorf("want = %+v", w)
	}
}

func on(assign, show, signup bool) jobs.PairState {
	return jobs.PairState{Present: true, AssignMembershipOnLogin: assign, ShowAsButton: show, IsSignupEnabled: signup}
}

func TestDiffPlansOnlyWhatDiffers(t *testing.T) {
	current := State{
		"org_1": {"con_1": on(false, true, false), "con_2": on(true, true, false), "con_9": on(false, false, false)},
		"org_2": {"con_1": on(false, true, false)},
		"org_3": {"con_5": on(false, true, false)}, // not in the file: never touched
	}
	wants := []Want{
		{Line: 2, OrgID: "org_1", ConnectionID: "con_1", ShowAsButton: jobs.True},                                      // unchanged
		{Line: 3, OrgID: "org_1", ConnectionID: "con_2", AssignMembershipOnLogin: jobs.False, ShowAsButton: jobs.True}, // ~ assign true → false
		{Line: 4, OrgID: "org_1", ConnectionID: "con_3", IsSignupEnabled: jobs.False},                                  // + enable
		{Line: 5, OrgID: "org_2", ConnectionID: "con_1"},                                                               // don't care: unchanged
	}
	p := Diff(wants, current, false)
	if p.Unchanged != 2 || len(p.Steps) != 2 {
		t.Fatalf("plan = %+v", p)
	}
	var b bytes.Buffer
	_ = p.Print(&b)
	want := "~ update org_1/con_2 assign_membership_on_login true → false\n+ enable org_1/con_3 (is_signup_enabled=false)\n= 2 unchanged\n"
	if b.String() != want {
		t.Errorf("plan printed:\n%s\nwant:\n%s", b.String(), want)
	}
	pruned := Diff(wants, current, true)
	if len(pruned.Steps) != 3 || pruned.Steps[2].Op != OpRemove || pruned.Steps[2].Change.ConnectionID != "con_9" || pruned.Steps[2].Before != on(false, false, false) {
		t.Fatalf("pruned plan = %+v", pruned.Steps)
	}
	for _, s := range pruned.Steps {
		if s.Change.OrgID == "org_3" {
			t.Errorf("an organization absent from the file is touched: %v", s)
		}
	}
	csv := string(pruned.CSV())
	wantCSV := "action,org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled\n" +
		"update,org_1,con_2,false,,\nenable,org_1,con_3,,,false\nremove,org_1,con_9,,,\n"
	if csv != wantCSV {
		t.Errorf("plan CSV:\n%s\nwant:\n%s", csv, wantCSV)
	}
	if pr := pruned.Priors(); len(pr) != 3 || pr[1].State != jobs.Absent || pr[0].State != on(true, true, false) {
		t.Errorf("priors = %v", pr)
	}
	if a, b := pruned.BatchName("apply-x"), Diff(wants, current, true).BatchName("apply-x"); a != b || !strings.HasPrefix(a, "apply-x-") || a == p.BatchName("apply-x") {
		t.Errorf("batch names: %q, %q, %q: the same plan, the same name; another plan, another name", a, b, p.BatchName("apply-x"))
	}
}

func TestPlanRollbackPutsBackWhatTheBatchChanged(t *testing.T) {
	rec := func(org, conn string, s jobs.PairState) jobs.PairRecord {
		return jobs.PairRecord{OrgID: org, ConnectionID: conn, State: s}
	}
	priors := []jobs.PairRecord{
		rec("o1", "c1", jobs.Absent),            // the batch enabled it
		rec("o1", "c2", on(true, true, false)),  // the batch removed it
		rec("o1", "c3", on(false, true, false)), // the batch changed a flag
		rec("o1", "c4", on(false, true, false)), // changed by someone since
		rec("o1", "c5", jobs.Absent),            // already back
	}
	lefts := []jobs.PairRecord{
		rec("o1", "c1", on(false, true, false)), rec("o1", "c2", jobs.Absent), rec("o1", "c3", on(false, false, false)),
		rec("o1", "c4", on(false, false, false)), rec("o1", "c5", on(false, true, false)), rec("o1", "c6", on(false, true, false)),
	}
	current := State{"o1": {"c1": on(false, true, false), "c3": on(false, false, false), "c4": on(true, false, false), "c6": on(false, true, false)}}
	changed := ChangedPairs(lefts, [][2]string{{"o1", "c1"}, {"o2", "c1"}})
	rp := PlanRollback(changed, priors, lefts, current, map[string]bool{"o2": true}, false)
	var b bytes.Buffer
	_ = rp.Print(&b)
	want := "- remove o1/c1\n+ enable o1/c2 (assign_membership_on_login=true show_as_button=true is_signup_enabled=false)\n~ update o1/c3 show_as_button false → true\n= 1 unchanged\n"
	if b.String() != want || rp.Pairs != 7 {
		t.Errorf("rollback plan (%d pairs):\n%s\nwant:\n%s", rp.Pairs, b.String(), want)
	}
	got := fmt.Sprint(rp.Skipped)
	for _, w := range []string{"o1 c4 changed since the batch", "o1 c6 no prior state recorded", "o2 c1 organization no longer exists"} {
		if !strings.Contains(got, w) {
			t.Errorf("skipped = %s; want %q", got, w)
		}
	}
	forced := PlanRollback(changed, priors, lefts, current, nil, true)
	if len(forced.Forced) != 1 || forced.Forced[0].ConnectionID != "c4" || len(forced.Steps) != 4 {
		t.Errorf("forced plan: %+v", forced)
	}
}

type lines map[int]jobs.Change

func (l lines) AcceptedChanges(context.Context, string) (map[int]jobs.Change, error) { return l, nil }

func TestCheckResumeRefusesABatchHoldingOtherChanges(t *testing.T) {
	p := Diff([]Want{{OrgID: "o1", ConnectionID: "c1"}}, State{}, false)
	ctx := context.Background()
	if err := CheckResume(ctx, lines{}, "b", p); err != nil {
		t.Errorf("new batch: %v", err)
	}
	if err := CheckResume(ctx, lines{2: p.Steps[0].Change}, "b", p); err != nil {
		t.Errorf("the same plan again: %v", err)
	}
	if err := CheckResume(ctx, lines{2: {Action: jobs.Remove, OrgID: "o1", ConnectionID: "c1"}}, "b", p); err == nil {
		t.Error("a batch holding another change at line 2 is accepted")
	}
}

func TestRollbackBatchName(t *testing.T) {
	taken := map[string]bool{"b-rollback-1": true}
	exists := func(_ context.Context, n string) (bool, error) { return taken[n], nil }
	if n, err := RollbackBatchName(context.Background(), "b", exists); n != "b-rollback-2" || err != nil {
		t.Errorf("name = %q, %v", n, err)
	}
	long := strings.Repeat("x", 64)
	if n, _ := RollbackBatchName(context.Background(), long, exists); len(n) != 64 || !strings.HasSuffix(n, "-rollback-1") || jobs.CheckBatch(n) != nil {
		t.Errorf("name of a long batch = %q", n)
	}
	boom := errors.New("redis down")
	if _, err := RollbackBatchName(context.Background(), "b", func(context.Context, string) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
}

type reader map[string]map[string]jobs.PairState

func (r reader) Associations(_ context.Context, org string) (map[string]jobs.PairState, error) {
	if m, ok := r[org]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("%s: %w", org, ErrUnknownOrganization)
}

func TestReadStatesNamesUnknownOrganizationsByLine(t *testing.T) {
	wants := []Want{{Line: 2, OrgID: "o1", ConnectionID: "c1"}, {Line: 3, OrgID: "nope", ConnectionID: "c1"}, {Line: 4, OrgID: "o1", ConnectionID: "c2"}}
	st, unknown, err := ReadStates(context.Background(), reader{"o1": {"c1": on(false, true, false)}}, OrgsOf(wants), 3, nil)
	if err != nil || len(st) != 1 || !unknown["nope"] {
		t.Fatalf("ReadStates = %v, %v, %v", st, unknown, err)
	}
	errs := UnknownOrgErrors(wants, unknown)
	if len(errs) != 1 || errs[0].Error() != `line 3: org_id: "nope": no such organization in the tenant` {
		t.Errorf("errors = %v", errs)
	}
}

// fakeResolver knows some names and counts its look-ups.
type fakeResolver struct {
	orgs, conns map[string]string
	calls       map[string]int
	fail        error
}

func (f *fakeResolver) OrgID(_ context.Context, name string) (string, bool, error) {
	f.calls["o:"+name]++
	id, ok := f.orgs[name]
	return id, ok, f.fail
}

func (f *fakeResolver) ConnectionID(_ context.Context, name string) (string, bool, error) {
	f.calls["c:"+name]++
	id, ok := f.conns[name]
	return id, ok, f.fail
}

func TestResolveLooksEachNameUpOnceAndReportsUnknownNames(t *testing.T) {
	r := &fakeResolver{orgs: map[string]string{"acme": "org_acme", "globex": "org_globex"}, conns: map[string]string{"db": "con_db", "google": "con_g"}, calls: map[string]int{}}
	in := "org_id,org_name,connection_id,connection_name,show_as_button\n" +
		",acme,,db,true\n" + // 2: by names
		",acme,con_g,,false\n" + // 3: organization by name
		"org_1,,,db,\n" + // 4: connection by name
		"org_2,globex,con_3,google,true\n" + // 5: ids win: nothing looked up
		",globex,,google,\n" // 6
	wants, errs, err := Read(strings.NewReader(in))
	if err != nil || len(errs) != 0 || len(wants) != 5 || !NeedsNames(wants) {
		t.Fatalf("Read: %v, %v, %v", wants, errs, err)
	}
	got, errs, err := Resolve(context.Background(), wants, r)
	if err != nil || len(errs) != 0 {
		t.Fatalf("Resolve: %v, %v", errs, err)
	}
	pairs := []string{}
	for _, w := range got {
		pairs = append(pairs, fmt.Sprintf("%d %s/%s", w.Line, w.OrgID, w.ConnectionID))
	}
	if want := "2 org_acme/con_db,3 org_acme/con_g,4 org_1/con_db,5 org_2/con_3,6 org_globex/con_g"; strings.Join(pairs, ",") != want {
		t.Errorf("resolved %v, want %s", pairs, want)
	}
	if NeedsNames(got) || got[1].ShowAsButton != jobs.False {
		t.Errorf("resolved wants: %+v", got)
	}
	if want := map[string]int{"o:acme": 1, "c:db": 1, "o:globex": 1, "c:google": 1}; fmt.Sprint(r.calls) != fmt.Sprint(want) {
		t.Errorf("look-ups %v, want each distinct name once: %v", r.calls, want)
	}
	// A resolved pair that repeats another is a duplicate.
	wants, _, _ = Read(strings.NewReader("org_id,org_name,connection_id,connection_name\norg_acme,,con_db,\n,acme,,db\n"))
	if _, errs, _ := Resolve(context.Background(), wants, r); len(errs) != 1 || errs[0].Error() != "line 3: connection_id: org_acme/con_db is listed on line 2 too: list each pair once" {
		t.Errorf("duplicate by names: %v", errs)
	}

	// Every unknown name is reported by line; nothing is returned.
	r.calls = map[string]int{}
	wants, _, _ = Read(strings.NewReader("org_name,connection_name\nacme,db\ninitech,db\nacme,oracle\ninitech,oracle\n"))
	got, errs, err = Resolve(context.Background(), wants, r)
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	want := []string{
		`line 3: org_name: no organization named "initech"`,
		`line 4: connection_name: no connection named "oracle"`,
		`line 5: org_name: no organization named "initech"`,
		`line 5: connection_name: no connection named "oracle"`,
	}
	if err != nil || got != nil || strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("unknown names: %v, %v:\n%s", got, err, strings.Join(msgs, "\n"))
	}
	if r.calls["o:initech"] != 1 || r.calls["c:oracle"] != 1 {
		t.Errorf("unknown names looked up %v", r.calls)
	}

	// Names are checked even when the id is given; a failed look-up is an error.
	_, errs, _ = Read(strings.NewReader("org_id,org_name,connection_id,connection_name\norg_1,Not Valid,con_1,db\norg_1,,con_2,bad_name\n,,con_3,\n"))
	if len(errs) != 3 || errs[0].Field != jobs.FieldOrgName || errs[1].Field != jobs.FieldConnectionName || errs[2].Field != jobs.FieldOrgID {
		t.Errorf("invalid names: %v", errs)
	}
	if _, errs, _ := Read(strings.NewReader("org_name,connection_id\nacme,con_1\n")); len(errs) != 0 {
		t.Errorf("org_name without org_id column: %v", errs)
	}
	if _, errs, _ := Read(strings.NewReader("show_as_button,connection_name\ntrue,db\n")); len(errs) != 1 || errs[0].Field != jobs.FieldOrgID {
		t.Errorf("no organization column: %v", errs)
	}
	r.fail = errors.New("503")
	wants, _, _ = Read(strings.NewReader("org_name,connection_id\nacme,con_1\n"))
	if _, _, err := Resolve(context.Background(), wants, r); err == nil || !strings.Contains(err.Error(), `look up organization "acme": 503`) {
		t.Errorf("failed look-up: %v", err)
	}
}
