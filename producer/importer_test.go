package producer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/redistest"
)

type fixture struct {
	env       *redistest.Env
	importer  *Importer
	inspector *asynq.Inspector
	ledger    *ledger.Ledger
}

func setup(t *testing.T) *fixture {
	t.Helper()
	env := redistest.New(t)
	l, err := ledger.New(env.Client, env.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(env.Client)
	im, err := NewImporter(Config{Ledger: l, Queue: client, QueueName: env.Queue, ChunkSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, importer: im, inspector: asynq.NewInspectorFromRedisClient(env.Client), ledger: l}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// queued returns the ids of the tasks in the test's queue, sorted.
func (f *fixture) queued(t *testing.T) []string {
	t.Helper()
	tasks, err := f.inspector.ListPendingTasks(f.env.Queue, asynq.PageSize(10000))
	if err != nil && !strings.Contains(err.Error(), "not found") {
		t.Fatal(err)
	}
	var ids []string
	for _, ti := range tasks {
		ids = append(ids, ti.ID)
	}
	sort.Strings(ids)
	return ids
}

const long51 = "org_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK"

// badFile has one bad row of each kind between good rows.
var badFile = strings.Join([]string{
	"Action,ORG_ID,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled", // 1
	"enable,org_1,con_1,true,,",      // 2 good
	"deactivate,org_1,con_2,,,",      // 3 unknown action
	"enable,,con_1,,,",               // 4 empty id
	"remove,org_1," + long51 + ",,,", // 5 id over 50 characters
	"enable,org_2,con_1,yes,,",       // 6 flag yes
	"update,org_2,con_1,true",        // 7 too few columns
	"remove,org_3,con_1,,,,extra",    // 8 too many columns
	"update,org_2,con_2,,false,",     // 9 good
	`remove,"org_4",con_1,,,`,        // 10 good (quoted)
}, "\n") + "\n"

func TestImportReportsEveryBadRowAndEnqueuesNothing(t *testing.T) {
	f := setup(t)
	res, err := f.importer.ImportFile(context.Background(), writeFile(t, "bad.csv", badFile), Options{Batch: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rejected || res.Enqueued != 0 || res.Rows != 9 || res.Valid != 3 || res.Invalid != 6 {
		t.Fatalf("Result = %+v; want rejected, 9 rows, 3 valid, 6 invalid, nothing enqueued", res)
	}
	var got []string
	for _, e := range res.Errors {
		got = append(got, e.Error())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		`line 3: action: "deactivate" is not an action`,
		`line 4: org_id: is empty`,
		`line 5: connection_id: "` + long51[:23] + `…" is 51 characters, the limit is 50`,
		`line 6: assign_membership_on_login: "yes" is not a flag value`,
		`line 7: show_as_button: missing: the row has 4 fields, the header has 6`,
		`line 7: is_signup_enabled: missing: the row has 4 fields, the header has 6`,
		`line 8: column 7: unexpected: the row has 7 fields, the header has 6`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("errors do not contain %q; got:\n%s", want, all)
		}
	}
	if len(res.Errors) != 7 {
		t.Errorf("got %d errors, want 7:\n%s", len(res.Errors), all)
	}
	if q := f.queued(t); len(q) != 0 {
		t.Fatalf("tasks were enqueued for a rejected file: %v", q)
	}
	if _, err := f.ledger.Batch(context.Background(), "bad"); !errors.Is(err, ledger.ErrNoBatch) {
		t.Fatalf("the ledger knows the rejected batch: %v", err)
	}
}

func TestImportSkipInvalidEnqueuesExactlyTheGoodRows(t *testing.T) {
	f := setup(t)
	path := writeFile(t, "bad.csv", badFile)
	res, err := f.importer.ImportFile(context.Background(), path, Options{Batch: "skip", SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rejected || res.Enqueued != 3 || res.Invalid != 6 {
		t.Fatalf("Result = %+v; want 3 enqueued, 6 invalid", res)
	}
	want := []string{"skip:10", "skip:2", "skip:9"}
	if got := f.queued(t); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("queued %v, want %v", got, want)
	}
	tasks, _ := f.inspector.ListPendingTasks(f.env.Queue)
	for _, ti := range tasks {
		p, err := jobs.DecodePayload(ti.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if ti.ID == "skip:2" && (p.Change != jobs.Change{Action: jobs.Enable, OrgID: "org_1", ConnectionID: "con_1", AssignMembershipOnLogin: jobs.True}) {
			t.Fatalf("skip:2 payload = %+v", p.Change)
		}
	}

	// The same file again under the same batch name enqueues nothing new.
	again, err := f.importer.ImportFile(context.Background(), path, Options{Batch: "skip", SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.Enqueued != 0 || again.Repaired != 0 || again.Duplicates != 3 {
		t.Fatalf("second import = %+v; want nothing enqueued, 3 already accepted", again)
	}
	if got := f.queued(t); len(got) != 3 {
		t.Fatalf("after the second import %d tasks are queued, want 3", len(got))
	}
}

func TestImportDryRunTouchesNothing(t *testing.T) {
	f := setup(t)
	res, err := f.importer.ImportFile(context.Background(), writeFile(t, "ok.csv", "action,org_id,connection_id\nenable,org_1,con_1\n"), Options{DryRun: true})
	if err != nil || res.Valid != 1 || res.Enqueued != 0 || !res.DryRun {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	if q := f.queued(t); len(q) != 0 {
		t.Fatalf("dry run enqueued %v", q)
	}
	if !strings.HasPrefix(res.Batch, "ok-") || len(res.Batch) != len("ok-")+10 {
		t.Fatalf("default batch name = %q, want ok-<10 hex>", res.Batch)
	}
}

func TestImportHeaderErrors(t *testing.T) {
	f := setup(t)
	for name, tc := range map[string]struct{ content, want string }{
		"missing org_id": {"action,connection_id\nenable,con_1\n", "line 1: org_id: required column is missing from the header"},
		"duplicate":      {"action,org_id,Org_Id,connection_id\n", "line 1: org_id: column appears more than once"},
		"unknown":        {"action,org-id,org_id,connection_id\n", `line 1: "org-id": unknown column`},
		"empty file":     {"", "line 1: header: the file is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := f.importer.ImportFile(context.Background(), writeFile(t, "h.csv", tc.content), Options{Batch: "h"})
			var he *HeaderError
			if !errors.As(err, &he) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a HeaderError containing %q", err, tc.want)
			}
			if res.Enqueued != 0 || len(f.queued(t)) != 0 {
				t.Fatal("enqueued despite a bad header")
			}
		})
	}
}

func TestCSVReaderHandlesRealWorldFiles(t *testing.T) {
	content := "\uFEFFaction,org_id,connection_id,show_as_button\r\n" +
		"enable,org_1,con_1,TRUE\r\n" +
		"\r\n" +
		"remove,\"org_2\",\"con_1\",\r\n" +
		"enable,\"org,3\",con_1,\n" + // comma inside quotes: an invalid id, reported on its line
		"enable,\"org\n4\",con_1,\n" + // line break inside quotes
		"enable,org_5,con_1,false\n"
	rd, err := NewCSVReader(strings.NewReader(content), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	var bad []string
	for {
		rec, err := rd.Next()
		if err != nil {
			break
		}
		lines = append(lines, rec.Line)
		for _, e := range rec.Errors {
			bad = append(bad, e.Error())
		}
	}
	if got, want := lines, []int{2, 4, 5, 6, 8}; len(got) != len(want) || got[0] != 2 || got[1] != 4 || got[2] != 5 || got[3] != 6 || got[4] != 8 {
		t.Fatalf("record lines = %v, want %v", got, want)
	}
	if len(bad) != 2 || !strings.HasPrefix(bad[0], `line 5: org_id: "org,3" contains ",": only letters, digits`) ||
		!strings.HasPrefix(bad[1], `line 6: org_id: "org\n4" contains "\n": only letters, digits`) {
		t.Fatalf("errors = %q; want lines 5 (a comma in an id) and 6 (a line break in an id)", bad)
	}
}

func TestCSVReaderBoundsRecords(t *testing.T) {
	huge := "action,org_id,connection_id\nenable,org_1," + strings.Repeat("x", 200<<10) + "\n"
	rd, err := NewCSVReader(strings.NewReader(huge), Limits{MaxRecordBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Next(); err == nil || !strings.Contains(err.Error(), "longer than 65536 bytes") {
		t.Fatalf("Next = %v, want a record-too-long error", err)
	}
	many := "action,org_id,connection_id\n" + strings.Repeat("remove,o,c\n", 11)
	rd, _ = NewCSVReader(strings.NewReader(many), Limits{MaxRows: 10})
	var err2 error
	for err2 == nil {
		_, err2 = rd.Next()
	}
	if !errors.Is(err2, ErrTooManyRows) {
		t.Fatalf("reading 11 rows with MaxRows 10 ended with %v, want ErrTooManyRows", err2)
	}
}
