package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is a tenant in memory: organizations listed take at a time in id order, each with
// its associations. It counts reads per organization and listing pages.
type fakeAPI struct {
	mu    sync.Mutex
	orgs  []Organization
	conns map[string][]Association
	take  int
	// failures are errors Connections returns for an organization, first to last, before
	// it succeeds.
	failures map[string][]error
	// hook, when set, is called by Connections before it answers (outside the lock).
	hook func(orgID string)

	reads map[string]int // answers given, by organization
	pages map[string]int // listing pages given, by cursor
}

// newFake builds a tenant of n organizations, organization i having i%5 associations.
func newFake(n int) *fakeAPI {
	f := &fakeAPI{conns: map[string][]Association{}, take: 10, failures: map[string][]error{}, reads: map[string]int{}, pages: map[string]int{}}
	for i := range n {
		id := fmt.Sprintf("org_%04d", (i*7919)%n) // ids not in creation order
		f.orgs = append(f.orgs, Organization{ID: id, Name: fmt.Sprintf("name-%d", i)})
		for c := range i % 5 {
			// Connection ids out of order, to check the sort.
			f.conns[id] = append(f.conns[id], Association{ConnectionID: fmt.Sprintf("con_%d", 4-c), ShowAsButton: c%2 == 0, AssignMembershipOnLogin: c == 1, IsSignupEnabled: c == 1, ConnectionName: fmt.Sprintf("conn-%d", 4-c)})
		}
	}
	sortOrgs(f.orgs)
	return f
}

func sortOrgs(o []Organization) {
	for i := range o {
		for j := i + 1; j < len(o); j++ {
			if o[j].ID < o[i].ID {
				o[i], o[j] = o[j], o[i]
			}
		}
	}
}

func (f *fakeAPI) ListOrganizations(_ context.Context, from string) (OrganizationPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := 0
	if from != "" {
		if _, err := fmt.Sscanf(from, "c:%d", &start); err != nil {
			return OrganizationPage{}, fmt.Errorf("bad cursor %q", from)
		}
	}
	f.pages[from]++
	end := min(start+f.take, len(f.orgs))
	p := OrganizationPage{Organizations: append([]Organization(nil), f.orgs[start:end]...)}
	if end < len(f.orgs) {
		p.Next = fmt.Sprintf("c:%d", end)
	}
	return p, nil
}

func (f *fakeAPI) Connections(_ context.Context, orgID string) ([]Association, error) {
	if f.hook != nil {
		f.hook(orgID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if errs := f.failures[orgID]; len(errs) > 0 {
		f.failures[orgID] = errs[1:]
		return nil, errs[0]
	}
	known := false
	for _, o := range f.orgs {
		known = known || o.ID == orgID
	}
	if !known {
		return nil, notFoundErr{}
	}
	f.reads[orgID]++
	return append([]Association(nil), f.conns[orgID]...), nil
}

// expected is the export of the whole fake tenant, written independently of the package.
func (f *fakeAPI) expected(withNames bool, ids ...string) string {
	var b strings.Builder
	b.WriteString("org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled,org_name,connection_name\n")
	for _, o := range f.orgs {
		if len(ids) > 0 && !contains(ids, o.ID) {
			continue
		}
		cs := append([]Association(nil), f.conns[o.ID]...)
		for i := range cs {
			for j := i + 1; j < len(cs); j++ {
				if cs[j].ConnectionID < cs[i].ConnectionID {
					cs[i], cs[j] = cs[j], cs[i]
				}
			}
		}
		name := ""
		if withNames {
			name = o.Name
		}
		for _, c := range cs {
			fmt.Fprintf(&b, "%s,%s,%t,%t,%t,%s,%s\n", o.ID, c.ConnectionID, c.AssignMembershipOnLogin, c.ShowAsButton, c.IsSignupEnabled, name, c.ConnectionName)
		}
	}
	return b.String()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

type tempErr struct{}

func (tempErr) Error() string   { return "503 Service Unavailable" }
func (tempErr) Temporary() bool { return true }

type throttledErr struct{}

func (throttledErr) Error() string   { return "429 Too Many Requests" }
func (throttledErr) Temporary() bool { return true }
func (throttledErr) Throttled() bool { return true }

type notFoundErr struct{}

func (notFoundErr) Error() string  { return "404 Not Found: No organization found by that id or name" }
func (notFoundErr) NotFound() bool { return true }

// noWait retries at once.
func noWait(int) time.Duration { return 0 }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func noSideFiles(t *testing.T, out string) {
	t.Helper()
	for _, s := range []string{partialSuffix, checkpointSuffix, tmpSuffix, checkpointSuffix + tmpSuffix} {
		if _, err := os.Stat(out + s); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("side file %s is left: %v", out+s, err)
		}
	}
}

func TestExportAllWritesSortedRowsAndRemovesSideFiles(t *testing.T) {
	f := newFake(95)
	out := filepath.Join(t.TempDir(), "state.csv")
	var last Progress
	sum, err := Run(context.Background(), Config{API: f, Select: Selection{All: true}, Out: out, Tenant: "t",
		Count: func(context.Context) (int, error) { return 95, nil }, Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, out), f.expected(true); got != want {
		t.Fatalf("export:\n%s\nwant:\n%s", got, want)
	}
	noSideFiles(t, out)
	wantAssoc := 0
	for _, cs := range f.conns {
		wantAssoc += len(cs)
	}
	// 95 reads, 10 listing pages, one count.
	if sum.Orgs != 95 || sum.Associations != wantAssoc || sum.Requests != 106 || sum.Resumed || sum.NotFound != 0 {
		t.Errorf("summary %+v, want 95 orgs, %d associations, 106 requests", sum, wantAssoc)
	}
	if last.Orgs != 95 || last.Total != 95 || last.Associations != wantAssoc {
		t.Errorf("last progress %+v", last)
	}
	for _, o := range f.orgs {
		if f.reads[o.ID] != 1 {
			t.Errorf("org %s read %d times", o.ID, f.reads[o.ID])
		}
	}
	for cursor, n := range f.pages {
		if n != 1 {
			t.Errorf("listing page %q read %d times", cursor, n)
		}
	}
}

func TestExportToWriterHoldsEverythingUntilTheEnd(t *testing.T) {
	f := newFake(23)
	var buf bytes.Buffer
	if _, err := Run(context.Background(), Config{API: f, Select: Selection{All: true}, Writer: &buf}); err != nil {
		t.Fatal(err)
	}
	if buf.String() != f.expected(true) {
		t.Fatalf("export:\n%s", buf.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	buf.Reset()
	_, err := Run(ctx, Config{API: newFake(23), Select: Selection{All: true}, Writer: &buf, Concurrency: 1,
		Progress: func(p Progress) {
			if p.Orgs >= 5 {
				cancel()
			}
		}})
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "standard output cannot resume") || buf.Len() != 0 {
		t.Fatalf("interrupted export to a writer: %v, %d bytes written", err, buf.Len())
	}
}

func TestInterruptedExportResumesWithTheSameBytesAndNoReadTwice(t *testing.T) {
	for _, sel := range []string{"all", "list"} {
		t.Run(sel, func(t *testing.T) {
			whole := newFake(137)
			var ids []string
			for i, o := range whole.orgs {
				if i%3 != 0 || sel == "all" {
					ids = append(ids, o.ID)
				}
			}
			selection := Selection{All: sel == "all"}
			if !selection.All {
				selection.OrgIDs = append(ids, ids[0], ids[5]) // duplicates are read once
			}
			dir := t.TempDir()
			straight := filepath.Join(dir, "straight.csv")
			if _, err := Run(context.Background(), Config{API: whole, Select: selection, Out: straight, Tenant: "t"}); err != nil {
				t.Fatal(err)
			}

			f := newFake(137)
			out := filepath.Join(dir, "resumed.csv")
			for run := 1; ; run++ {
				ctx, cancel := context.WithCancel(context.Background())
				stopped := 0
				sum, err := Run(ctx, Config{API: f, Select: selection, Out: out, Tenant: "t", Concurrency: 3,
					Stop: func() { stopped++ },
					Progress: func(p Progress) {
						if p.Orgs >= 40*run {
							cancel()
						}
					}})
				cancel()
				if err == nil {
					if run < 2 || !sum.Resumed || sum.Orgs != len(ids) {
						t.Errorf("finished in run %d, summary %+v; want a resumed run, %d orgs", run, sum, len(ids))
					}
					break
				}
				if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "run the same command again") || stopped != 1 {
					t.Fatalf("run %d: %v (Stop called %d times)", run, err, stopped)
				}
				if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("run %d: the output exists before the export finished", run)
				}
				if run > 5 {
					t.Fatal("the export does not finish")
				}
			}
			if got, want := readFile(t, out), readFile(t, straight); got != want {
				t.Fatalf("resumed export differs from a straight one:\n%s\nwant\n%s", got, want)
			}
			if want := f.expected(selection.All, ids...); readFile(t, out) != want {
				t.Fatalf("export:\n%s\nwant\n%s", readFile(t, out), want)
			}
			noSideFiles(t, out)
			for _, id := range ids {
				if f.reads[id] != 1 {
					t.Errorf("org %s read %d times over the runs", id, f.reads[id])
				}
			}
			for cursor, n := range f.pages {
				if n != 1 {
					t.Errorf("listing page %q read %d times over the runs", cursor, n)
				}
			}
		})
	}
}

func TestCancelKeepsAnswersAlreadySent(t *testing.T) {
	f := newFake(30)
	out := filepath.Join(t.TempDir(), "x.csv")
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(4)
	f.hook = func(string) { started.Done(); <-release }
	go func() {
		started.Wait() // four reads are in flight
		cancel()
		time.Sleep(20 * time.Millisecond) // let Run see the cancellation first
		close(release)
	}()
	sum, err := Run(ctx, Config{API: f, Select: Selection{All: true}, Out: out, Tenant: "t", Concurrency: 4})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Run = %v, want interrupted", err)
	}
	if sum.Orgs != 4 {
		t.Fatalf("%d organizations kept, want the 4 whose reads were in flight", sum.Orgs)
	}
	f.hook = nil
	if _, err := Run(context.Background(), Config{API: f, Select: Selection{All: true}, Out: out, Tenant: "t"}); err != nil {
		t.Fatal(err)
	}
	for _, o := range f.orgs {
		if f.reads[o.ID] != 1 {
			t.Errorf("org %s read %d times", o.ID, f.reads[o.ID])
		}
	}
}

func TestResumeCutsAnUnfinishedWrite(t *testing.T) {
	f := newFake(50)
	dir := t.TempDir()
	out := filepath.Join(dir, "x.csv")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Run(ctx, Config{API: f, Select: Selection{All: true}, Out: out, Tenant: "t", Concurrency: 1,
		Progress: func(p Progress) {
			if p.Orgs >= 20 {
				cancel()
			}
		}})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatal(err)
	}
	// A crash in the middle of appending the next organization's rows leaves half a row.
	p, err := os.OpenFile(out+partialSuffix, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.WriteString("org_9999,con_1,tr")
	p.Close()
	if _, err := Run(context.Background(), Config{API: f, Select: Selection{All: true}, Out: out, Tenant: "t"}); err != nil {
		t.Fatal(err)
	}
	if readFile(t, out) != f.expected(true) {
		t.Fatalf("export after a torn write:\n%s", readFile(t, out))
	}
}

func TestResumeRefusesAnotherExportsSideFiles(t *testing.T) {
	f := newFake(30)
	out := filepath.Join(t.TempDir(), "x.csv")
	interrupt := func(sel Selection, tenant string) error {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := Run(ctx, Config{API: f, Select: sel, Out: out, Tenant: tenant, Concurrency: 1,
			Progress: func(p Progress) {
				if p.Orgs >= 3 {
					cancel()
				}
			}})
		return err
	}
	if err := interrupt(Selection{All: true}, "t"); !errors.Is(err, ErrInterrupted) {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sel    Selection
		tenant string
		want   string
	}{
		{Selection{OrgIDs: []string{f.orgs[0].ID}}, "t", "it is an export of every organization (--all), not of another list"},
		{Selection{All: true}, "other", "it is an export of tenant t, not other"},
	} {
		_, err := Run(context.Background(), Config{API: f, Select: tt.sel, Out: out, Tenant: tt.tenant})
		var me *MismatchError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "remove "+out+checkpointSuffix) {
			t.Errorf("resume with %+v of %s: %v; want a mismatch saying %q", tt.sel, tt.tenant, err, tt.want)
		}
	}
	// Rows shorter than the checkpoint says.
	if err := os.Truncate(out+partialSuffix, 3); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Config{API: f, Select: Selection{All: true}, Out: out, Tenant: "t"})
	if !strings.Contains(fmt.Sprint(err), "fewer than the") {
		t.Errorf("truncated rows: %v", err)
	}
	if err := os.WriteFile(out+checkpointSuffix, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Config{API: f, Select: Selection{All: true}, Out: out, Tenant: "t"})
	if !strings.Contains(fmt.Sprint(err), "not a checkpoint") {
		t.Errorf("garbage checkpoint: %v", err)
	}
	// Without its checkpoint a partial file is started afresh.
	os.Remove(out + checkpointSuffix)
	if _, err := Run(context.Background(), Config{API: f, Select: Selection{All: true}, Out: out, Tenant: "t"}); err != nil || readFile(t, out) != f.expected(true) {
		t.Errorf("fresh start over a stray partial file: %v", err)
	}
}

func TestTemporaryErrorsAreRetriedAndOthersStopTheExportResumably(t *testing.T) {
	f := newFake(30)
	a, b := f.orgs[3].ID, f.orgs[17].ID
	f.failures[a] = []error{tempErr{}, tempErr{}}
	f.failures[b] = []error{errors.New("403 Forbidden: Insufficient scope")}
	out := filepath.Join(t.TempDir(), "x.csv")
	sum, err := Run(context.Background(), Config{API: f, Select: Selection{All: true}, Out: out, Tenant: "t", Backoff: noWait, Concurrency: 1})
	var oe *OrgError
	if !errors.As(err, &oe) || oe.OrgID != b || !strings.Contains(err.Error(), "organization "+b+": 403") {
		t.Fatalf("Run = %v, want the 403 of %s", err, b)
	}
	// The one reader may take the next organization before the failure is seen.
	if sum.Orgs != 17 && sum.Orgs != 18 {
		t.Errorf("%d organizations done before the failure, want 17 (or 18)", sum.Orgs)
	}
	if _, err := Run(context.Background(), Config{API: f, Select: Selection{All: true}, Out: out, Tenant: "t"}); err != nil {
		t.Fatal(err)
	}
	if readFile(t, out) != f.expected(true) {
		t.Error("export after a failure and a resume differs")
	}
	if f.reads[a] != 1 || f.reads[b] != 1 {
		t.Errorf("reads of the failing orgs: %d, %d", f.reads[a], f.reads[b])
	}

	// Refusals by the rate limit are retried at once, without spending attempts.
	h := newFake(5)
	h.failures[h.orgs[2].ID] = []error{throttledErr{}, throttledErr{}, throttledErr{}, throttledErr{}, tempErr{}, throttledErr{}}
	slow := func(int) time.Duration { return time.Hour }
	var got bytes.Buffer
	if _, err := Run(context.Background(), Config{API: h, Select: Selection{All: true}, Writer: &got, MaxAttempts: 2, Backoff: func(n int) time.Duration {
		if n > 1 {
			return slow(n)
		}
		return 0
	}}); err != nil || got.String() != h.expected(true) {
		t.Errorf("429s then a 503 then a 429 with two attempts allowed: %v", err)
	}
	h.failures[h.orgs[2].ID] = make([]error, MaxThrottled+1)
	for i := range h.failures[h.orgs[2].ID] {
		h.failures[h.orgs[2].ID][i] = throttledErr{}
	}
	if _, err := Run(context.Background(), Config{API: h, Select: Selection{All: true}, Writer: &got, MaxAttempts: 1}); !strings.Contains(fmt.Sprint(err), "429") {
		t.Errorf("%d refusals in a row: %v, want the 429", MaxThrottled+1, err)
	}

	g := newFake(5)
	g.failures[g.orgs[1].ID] = []error{tempErr{}, tempErr{}, tempErr{}}
	_, err = Run(context.Background(), Config{API: g, Select: Selection{All: true}, Writer: &bytes.Buffer{}, MaxAttempts: 3, Backoff: noWait})
	if !strings.Contains(fmt.Sprint(err), "3 attempts failed, the last: 503") {
		t.Errorf("three temporary failures: %v", err)
	}
}

func TestUnknownOrganization(t *testing.T) {
	f := newFake(10)
	gone := f.orgs[4].ID
	f.failures[gone] = []error{notFoundErr{}} // deleted between listing and reading
	var buf bytes.Buffer
	sum, err := Run(context.Background(), Config{API: f, Select: Selection{All: true}, Writer: &buf})
	if err != nil || sum.NotFound != 1 || sum.Orgs != 10 || len(sum.NotFoundIDs) != 1 || sum.NotFoundIDs[0] != gone {
		t.Fatalf("an organization gone since listed: %+v, %v", sum, err)
	}
	if strings.Contains(buf.String(), gone) {
		t.Error("the vanished organization has rows")
	}
	buf.Reset()
	ids := []string{f.orgs[0].ID, f.orgs[2].ID}
	for i := range MaxNotFoundIDs + 5 {
		ids = append(ids, fmt.Sprintf("org_nope%02d", i))
	}
	sum, err = Run(context.Background(), Config{API: f, Select: Selection{OrgIDs: ids}, Writer: &buf})
	if err != nil || sum.Orgs != len(ids) || sum.NotFound != MaxNotFoundIDs+5 || len(sum.NotFoundIDs) != MaxNotFoundIDs || sum.NotFoundIDs[0] != "org_nope00" {
		t.Errorf("unknown listed ids: %+v, %v", sum, err)
	}
	if buf.String() != f.expected(false, f.orgs[0].ID, f.orgs[2].ID) {
		t.Errorf("export of two known and many unknown ids:\n%s", buf.String())
	}
}

// repeatingAPI lists its first organization again on the second page, changed in between.
type repeatingAPI struct {
	*fakeAPI
	calls int
}

func (r *repeatingAPI) ListOrganizations(ctx context.Context, from string) (OrganizationPage, error) {
	p, err := r.fakeAPI.ListOrganizations(ctx, from)
	if from != "" && err == nil {
		first := r.fakeAPI.orgs[0]
		r.fakeAPI.mu.Lock()
		r.fakeAPI.conns[first.ID][0].ShowAsButton = !r.fakeAPI.conns[first.ID][0].ShowAsButton
		r.fakeAPI.mu.Unlock()
		p.Organizations = append(p.Organizations, first)
	}
	return p, err
}

func TestAnOrganizationListedTwiceHasItsLastReadWrittenOnce(t *testing.T) {
	f := newFake(12) // the first organization, org_0000, has no rows; org_0001 has some
	f.orgs[0], f.orgs[1] = f.orgs[1], f.orgs[0]
	api := &repeatingAPI{fakeAPI: f}
	out := filepath.Join(t.TempDir(), "x.csv")
	sum, err := Run(context.Background(), Config{API: api, Select: Selection{All: true}, Out: out, Tenant: "t", Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	sortOrgs(f.orgs)
	if got, want := readFile(t, out), f.expected(true); got != want {
		t.Fatalf("export:\n%s\nwant (the last state read):\n%s", got, want)
	}
	if want := strings.Count(f.expected(true), "\n") - 1; sum.Associations != want {
		t.Errorf("summary counts %d associations, the file has %d", sum.Associations, want)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Select: Selection{All: true}, Writer: &bytes.Buffer{}}, "API is nil"},
		{Config{API: newFake(1), Writer: &bytes.Buffer{}}, "no organization selected"},
		{Config{API: newFake(1), Select: Selection{All: true, OrgIDs: []string{"org_1"}}, Writer: &bytes.Buffer{}}, "not both"},
		{Config{API: newFake(1), Select: Selection{All: true}}, "neither"},
	} {
		if _, err := Run(context.Background(), tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestProgressETA(t *testing.T) {
	p := Progress{Orgs: 300, Total: 1000}
	if n := p.RemainingReads(false); n != 700 {
		t.Errorf("list: %d reads left, want 700", n)
	}
	if n := p.RemainingReads(true); n != 707 {
		t.Errorf("all: %d reads left, want 700 + 7 listing pages", n)
	}
	if eta, ok := p.ETA(false, 0.5); !ok || eta != 1400*time.Second {
		t.Errorf("ETA at 0.5/s = %v, %v", eta, ok)
	}
	if _, ok := p.ETA(false, 0); ok {
		t.Error("an ETA without a pace")
	}
	if _, ok := (Progress{Total: -1}).ETA(true, 1); ok {
		t.Error("an ETA without a total")
	}
}

func TestReadOrgIDs(t *testing.T) {
	ids, err := ReadOrgIDs(strings.NewReader("\xef\xbb\xbf# customers\r\norg_A1 \r\n\n  org_b2   # the second\norg_A1\nacme-corp"))
	if err != nil || strings.Join(ids, ",") != "org_A1,org_b2,org_A1,acme-corp" {
		t.Fatalf("ReadOrgIDs = %q, %v", ids, err)
	}
	for _, tt := range []struct{ in, want string }{
		{"", "no organization id"},
		{"# only a comment\n\n", "no organization id"},
		{"org_1\norg 2\norg_3/x\n", "line 2: org_id \"org 2\" contains \" \"" + ": only letters, digits, \"_\" and \"-\" are allowed\nline 3: org_id"},
		{"org_1\n" + strings.Repeat("x", 51) + "\n", "line 2: org_id"},
		{"org_1\n" + strings.Repeat("x", MaxOrgListLine+10) + "\n", "line 2 is longer than 1024 bytes"},
		{strings.Repeat("bad id\n", 15), "and 5 more bad lines"},
	} {
		_, err := ReadOrgIDs(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadOrgIDs(%.30q) = %v, want %q", tt.in, err, tt.want)
		}
	}
	line := "org_0123456789abcdef # " + strings.Repeat("x", 1000) + "\n"
	big := strings.NewReader(strings.Repeat(line, MaxOrgListBytes/len(line)+10))
	if _, err := ReadOrgIDs(big); err == nil || !strings.Contains(err.Error(), "larger than 16 MiB") {
		t.Errorf("a file over the limit: %v", err)
	}
}
