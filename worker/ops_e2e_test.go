package worker_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/worker/deadletter"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/report"
)

// importFile imports path as batch and returns the result.
func (e *e2e) importFile(path, batch string) producer.Result {
	e.t.Helper()
	im, err := producer.NewImporter(producer.Config{Ledger: e.ledger, Queue: asynq.NewClientFromRedisClient(e.env.Client), QueueName: e.env.Queue})
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := im.ImportFile(context.Background(), path, producer.Options{Batch: batch})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// waitBatch waits until batch is done, like waitDone.
func (e *e2e) waitBatch(batch string) ledger.BatchCounts {
	e.t.Helper()
	saved := e.batch
	defer func() { e.batch = saved }()
	e.batch = batch
	return e.waitDone(time.Minute)
}

// waitFor polls cond until it holds (it fails the test after a minute).
func (e *e2e) waitFor(what string, cond func(ledger.BatchCounts) bool, batch string) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		bc, err := e.ledger.Batch(context.Background(), batch)
		if err == nil && cond(bc) {
			return
		}
		if time.Now().After(deadline) {
			e.stuck("%s: not seen within a minute: %+v, %v", what, bc, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reportRows runs the report of batch and returns its rows by line.
func (e *e2e) reportRows(batch string) (map[string][]string, report.Summary) {
	e.t.Helper()
	var buf bytes.Buffer
	sum, err := report.Write(context.Background(), e.ledger, batch, &buf)
	if err != nil {
		e.t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		e.t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(report.Columns, ",") {
		e.t.Fatalf("report header = %v", recs[0])
	}
	out := map[string][]string{}
	for _, r := range recs[1:] {
		out[r[0]] = r
	}
	return out, sum
}

// TestOperatingABatchWithFailures runs a batch with known failures through a
// real worker and the simulated tenant, then operates it: status counts, the
// report, dead letters listed, a requeue refused for order and one allowed,
// the export fixed and imported again, a requeue that succeeds once the
// tenant recovers, and a purge.
func TestOperatingABatchWithFailures(t *testing.T) {
	ctx := context.Background()
	e := newE2E(t, mgmttest.Config{Orgs: 6, Connections: 3, Seed: 3, Global: mgmttest.Bucket{Burst: 10, Rate: 50}})
	o, c := e.tenant.Orgs, e.tenant.Connections
	const unknown1, unknown2 = "org_doesnotexist0001", "org_doesnotexist0002"
	row := func(line int, a jobs.Action, org, conn string, set func(*jobs.Change)) jobstest.Row {
		ch := jobs.Change{Action: a, OrgID: org, ConnectionID: conn}
		if set != nil {
			set(&ch)
		}
		return jobstest.Row{Line: line, Change: ch}
	}
	showOff := func(ch *jobs.Change) { ch.ShowAsButton = jobs.False }
	showOn := func(ch *jobs.Change) { ch.ShowAsButton = jobs.True }
	assign := func(ch *jobs.Change) { ch.AssignMembershipOnLogin = jobs.True }
	rows := []jobstest.Row{
		row(2, jobs.Enable, o[0], c[0].ID, nil),     // applied
		row(3, jobs.Enable, unknown1, c[0].ID, nil), // dead: unknown organization (the same reason as line 7)
		row(4, jobs.Update, o[1], c[1].ID, showOff), // dead: update of a pair not enabled
		row(5, jobs.Enable, o[2], c[0].ID, showOn),  // superseded by line 6
		row(6, jobs.Remove, o[2], c[0].ID, nil),     // applied
		row(7, jobs.Remove, unknown2, c[1].ID, nil), // dead: unknown organization
		row(8, jobs.Enable, o[3], c[1].ID, assign),  // applied
		row(9, jobs.Update, o[4], c[2].ID, showOff), // dead: not enabled yet
		row(10, jobs.Enable, o[4], c[2].ID, assign), // applied, after line 9
	}
	if res := e.importRows(rows); res.Enqueued != 9 {
		t.Fatalf("import = %+v, want 9 enqueued", res)
	}
	e.startWorker("w1", 4)
	bc := e.waitDone(time.Minute)
	e.verify()

	// Status counts.
	if bc.Total != 9 || bc.Applied != 4 || bc.Superseded != 1 || bc.Dead != 4 || bc.Retrying != 0 || bc.Pending != 0 {
		t.Fatalf("status = %+v, want 9 total, 4 applied, 1 superseded, 4 dead, none retrying or pending", bc)
	}
	if bc.Resolved != 9 || bc.Rate() <= 0 {
		t.Errorf("pace: %d resolved lately over %v (rate %v), want all 9", bc.Resolved, bc.Window, bc.Rate())
	}

	// The report: every line, its change and its outcome.
	rep, sum := e.reportRows("e2e")
	if sum != (report.Summary{Lines: 9, Applied: 4, Superseded: 1, Failed: 4}) {
		t.Errorf("report summary = %+v", sum)
	}
	want := map[string]struct{ outcome, reason, status, attempts string }{
		"2": {"applied", "", "", "1"}, "3": {"failed", "unknown_organization: No organization", "404", "1"}, "4": {"failed", "not_found", "404", "1"},
		"5": {"superseded", "a later change", "", "0"}, "6": {"applied", "", "", "1"}, "7": {"failed", "unknown_organization", "404", "1"},
		"8": {"applied", "", "", "1"}, "9": {"failed", "not_found", "404", "1"}, "10": {"applied", "", "", "1"},
	}
	for _, r := range rows {
		got, w := rep[strconv.Itoa(r.Line)], want[strconv.Itoa(r.Line)]
		if got == nil {
			t.Errorf("report lacks line %d", r.Line)
			continue
		}
		ch := r.Change
		if got[1] != string(ch.Action) || got[2] != ch.OrgID || got[3] != ch.ConnectionID || got[5] != w.outcome ||
			!strings.HasPrefix(got[6], w.reason) || got[7] != w.status || got[8] != w.attempts {
			t.Errorf("report line %d = %q, want %v %v and %+v", r.Line, got, ch, ch.Flags(), w)
		}
	}
	if rep["4"][4] != "show_as_button=false" || rep["8"][4] != "assign_membership_on_login=true" {
		t.Errorf("report flags: line 4 %q, line 8 %q", rep["4"][4], rep["8"][4])
	}

	// Dead letters.
	m, err := deadletter.New(deadletter.Config{Redis: e.env.Client, Ledger: e.ledger, Queue: e.env.Queue})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	list, err := m.List(ctx, deadletter.Selection{All: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, en := range list {
		ids = append(ids, en.ID())
		if en.Source != "csv:changes.csv" || en.Status != 404 || en.Attempts != 1 || en.Message == "" || en.Requeued() {
			t.Errorf("dead letter %s = %+v", en.ID(), en)
		}
	}
	if strings.Join(ids, " ") != "e2e:3 e2e:4 e2e:7 e2e:9" {
		t.Fatalf("dead letters = %v, want lines 3, 4, 7 and 9", ids)
	}
	if _, err := m.List(ctx, deadletter.Selection{IDs: []string{"e2e:2"}}); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("List of an applied line = %v, want ErrNotFound", err)
	}
	if _, err := m.List(ctx, deadletter.Selection{Batch: "nope"}); !errors.Is(err, ledger.ErrNoBatch) {
		t.Errorf("List of an unknown batch = %v, want ErrNoBatch", err)
	}

	// Requeue: line 9 has a later applied change to its pair (line 10):
	// refused. Line 4 is its pair's latest change: requeued, and it fails
	// again the same way.
	res, err := m.Requeue(ctx, deadletter.Selection{IDs: []string{"e2e:9", "e2e:4"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Done || res[0].State != "refused" || !strings.Contains(res[0].Detail, "e2e:10") {
		t.Errorf("requeue of line 9 = %+v, want refused naming e2e:10", res[0])
	}
	if !res[1].Done || res[1].State != "requeued" {
		t.Fatalf("requeue of line 4 = %+v, want requeued", res[1])
	}
	bc = e.waitBatch("e2e")
	if bc.Requeued != 1 || bc.Dead != 4 || bc.Applied != 4 {
		t.Errorf("after the requeue ran: %+v, want 1 requeued, 4 dead, 4 applied", bc)
	}
	if dl, err := e.ledger.DeadLetter(ctx, "e2e", 4); err != nil || dl.RequeuedAt != nil || dl.Reason != "not_found" || dl.Attempts != 1 {
		t.Errorf("dead letter of line 4 after failing again = %+v, %v", dl, err)
	}
	// The ledger records the dead letter before asynq archives the task:
	// wait for asynq to catch up.
	insp := asynq.NewInspectorFromRedisClient(e.env.Client)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		qi, err := insp.GetQueueInfo(e.env.Queue)
		if err == nil && qi.Archived == 4 && qi.Active == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("archived tasks = %+v, %v; want 4 (the requeued task replaced its old one)", qi, err)
			break
		}
	}

	// Export, fix (known organizations, enable instead of update) and import.
	list, err = m.List(ctx, deadletter.Selection{Batch: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	var exported bytes.Buffer
	if n, err := deadletter.Export(&exported, list); err != nil || n != 4 {
		t.Fatalf("Export = %d, %v", n, err)
	}
	if !strings.HasPrefix(exported.String(), "action,org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled\n") {
		t.Fatalf("export header: %q", exported.String())
	}
	fixed := strings.NewReplacer(unknown1, o[5], unknown2, o[5], "update,"+o[1], "enable,"+o[1]).Replace(exported.String())
	fixPath := filepath.Join(t.TempDir(), "fix.csv")
	if err := os.WriteFile(fixPath, []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	fixRows := readRows(t, fixed, 100)
	if res := e.importFile(fixPath, "e2e-fix"); res.Enqueued != 4 || res.Invalid != 0 {
		t.Fatalf("import of the fixed file = %+v", res)
	}
	if fbc := e.waitBatch("e2e-fix"); fbc.Applied != 4 || fbc.Dead != 0 {
		t.Fatalf("fixed batch: %+v, want 4 applied", fbc)
	}

	// A change that fails every attempt while the tenant is down is retrying,
	// then dead-lettered; once the tenant recovers, a requeue applies it.
	e.sim.SetFaults(mgmttest.Faults{Error5xx: 1})
	flaky := jobstest.Row{Line: 2, Change: jobs.Change{Action: jobs.Enable, OrgID: o[5], ConnectionID: c[2].ID}}
	flakyPath := filepath.Join(t.TempDir(), "flaky.csv")
	var fb bytes.Buffer
	if err := jobstest.WriteCSV(&fb, []jobstest.Row{flaky}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flakyPath, fb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	e.importFile(flakyPath, "flaky")
	e.waitFor("the failing change counted as retrying", func(bc ledger.BatchCounts) bool { return bc.Retrying == 1 && bc.Pending == 1 }, "flaky")
	if fbc := e.waitBatch("flaky"); fbc.Dead != 1 || fbc.Retrying != 0 {
		t.Fatalf("flaky batch: %+v, want 1 dead, none retrying", fbc)
	}
	frep, _ := e.reportRows("flaky")
	if r := frep["2"]; r[5] != "failed" || !strings.HasPrefix(r[6], "retries_exhausted") || r[7] != "503" || r[8] != "8" {
		t.Errorf("report of the exhausted change = %q, want failed, retries_exhausted, 503, 8 attempts", r)
	}
	e.sim.SetFaults(mgmttest.Faults{})
	res, err = m.Requeue(ctx, deadletter.Selection{Batch: "flaky"}, false)
	if err != nil || len(res) != 1 || !res[0].Done {
		t.Fatalf("requeue of the exhausted change = %+v, %v", res, err)
	}
	if fbc := e.waitBatch("flaky"); fbc.Applied != 1 || fbc.Dead != 0 || fbc.Requeued != 1 {
		t.Fatalf("flaky batch after requeue: %+v, want 1 applied", fbc)
	}
	if frep, _ := e.reportRows("flaky"); frep["2"][5] != "applied" || frep["2"][8] != "1" {
		t.Errorf("report after the requeue = %q, want applied at the first attempt of its fresh budget", frep["2"])
	}
	if _, err := e.ledger.DeadLetter(ctx, "flaky", 2); !errors.Is(err, ledger.ErrNoDeadLetter) {
		t.Errorf("dead letter of the applied line: %v, want none", err)
	}

	// The tenant now holds the original rows, then the fixed ones, then the
	// recovered change, applied in that order.
	all := append(append(append([]jobstest.Row{}, rows...), fixRows...), jobstest.Row{Line: 200, Change: flaky.Change})
	expect := jobstest.Replay(e.tenant, all)
	if diff := jobstest.Diff(expect.Final, e.simState()); len(diff) > 0 {
		t.Errorf("final state differs from the rows, the fixed rows and the recovered change in order:\n%s", strings.Join(diff, "\n"))
	}
	if len(expect.Fails) != 4 {
		t.Errorf("the model fails %v, want only the 4 original dead letters", expect.Fails)
	}

	// Purge: the dead letters and their archived tasks go; the lines stay
	// counted as dead.
	res, err = m.Purge(ctx, deadletter.Selection{Batch: "e2e"})
	if err != nil || len(res) != 4 {
		t.Fatalf("Purge = %+v, %v", res, err)
	}
	for _, r := range res {
		if !r.Done {
			t.Errorf("purge %+v", r)
		}
	}
	if left, _ := m.List(ctx, deadletter.Selection{Batch: "e2e"}); len(left) != 0 {
		t.Errorf("dead letters left after purge: %v", left)
	}
	if bc, _ := e.ledger.Batch(ctx, "e2e"); bc.Dead != 4 || bc.Purged != 4 {
		t.Errorf("after purge: %+v, want 4 dead, 4 purged", bc)
	}
	if _, err := insp.GetTaskInfo(e.env.Queue, "e2e:3"); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("archived task of a purged dead letter: %v, want not found", err)
	}
	if rep, _ := e.reportRows("e2e"); rep["3"][5] != "failed" || rep["3"][6] != "dead letter purged" {
		t.Errorf("report of a purged line = %q", rep["3"])
	}
}

// readRows reads an import file's valid rows, numbering them from first.
func readRows(t *testing.T, data string, first int) []jobstest.Row {
	t.Helper()
	rd, err := producer.NewCSVReader(strings.NewReader(data), producer.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var out []jobstest.Row
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return out
		}
		if err != nil || len(rec.Errors) > 0 {
			t.Fatalf("exported file: %v %v", err, rec.Errors)
		}
		out = append(out, jobstest.Row{Line: first + len(out), Change: rec.Change})
	}
}
