package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/redistest"
)

// opsSetup gives a test its Redis, the variables that point commands at
// it, and its ledger.
func opsSetup(t *testing.T) (*redistest.Env, map[string]string, *ledger.Ledger) {
	t.Helper()
	r := redistest.New(t)
	l, err := ledger.New(r.Client, r.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	return r, map[string]string{"REDIS_URL": r.URL, "ORGCONN_QUEUE": r.Queue, "ORGCONN_KEY_PREFIX": r.Prefix}, l
}

// seedBatch records batch b1 as a worker would leave it: line 2 applied,
// line 3 dead-lettered (unknown organization), line 4 pending.
func seedBatch(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	ctx := context.Background()
	applied := jobs.Change{Action: jobs.Enable, OrgID: "org_1", ConnectionID: "con_1", ShowAsButton: jobs.False}
	dead := jobs.Change{Action: jobs.Enable, OrgID: "org_gone", ConnectionID: "con_1"}
	pending := jobs.Change{Action: jobs.Remove, OrgID: "org_2", ConnectionID: "con_1"}
	if _, err := l.Accept(ctx, "b1", "csv:changes.csv", []ledger.Row{{Line: 2, Change: applied}, {Line: 3, Change: dead}, {Line: 4, Change: pending}}); err != nil {
		t.Fatal(err)
	}
	resolve := func(line int, c jobs.Change, o ledger.Outcome, dl *ledger.DeadLetter) {
		id := jobs.TaskID("b1", line)
		if cl, err := l.Claim(ctx, c, id, "h", time.Minute); err != nil || cl.State != ledger.Claimed {
			t.Fatalf("claim %s: %+v, %v", id, cl, err)
		}
		p := jobs.Payload{Version: jobs.PayloadVersion, Change: c, Origin: jobs.Origin{Batch: "b1", Line: line}}
		if _, ok, err := l.Resolve(ctx, p, id, "h", o, dl); err != nil || !ok {
			t.Fatalf("resolve %s: %v, %v", id, ok, err)
		}
	}
	resolve(2, applied, ledger.Applied, nil)
	resolve(3, dead, ledger.Dead, &ledger.DeadLetter{TaskID: "b1:3", Batch: "b1", Line: 3, Change: dead, Reason: "unknown_organization",
		Status: 404, Message: "No organization found by that id or name", Attempts: 1, At: time.Unix(1800000000, 0).UTC()})
}

func TestStatusReportAndDeadLetterCommands(t *testing.T) {
	r, vars, l := opsSetup(t)
	seedBatch(t, l)

	code, out, errOut := runCmd(t, vars, "status", "b1", "--json")
	var st struct {
		Batches []batchJSON `json:"batches"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != exitOK || len(st.Batches) != 1 {
		t.Fatalf("status b1 --json: exit %d, %v, %s %s", code, err, out, errOut)
	}
	if b := st.Batches[0]; b.Batch != "b1" || b.Source != "csv:changes.csv" || b.Total != 3 || b.Applied != 1 || b.DeadLettered != 1 || b.Pending != 1 || b.Retrying != 0 || b.Done || b.Rate <= 0 || b.ETA == nil {
		t.Errorf("status b1 = %+v", b)
	}
	code, out, _ = runCmd(t, vars, "status")
	if code != exitOK || !strings.Contains(out, "BATCH") || !strings.Contains(out, "b1") {
		t.Errorf("status: exit %d, %q", code, out)
	}
	code, _, errOut = runCmd(t, vars, "status", "nope")
	if code != exitInvalid || !strings.Contains(errOut, `batch "nope": no such batch`) {
		t.Errorf("status of an unknown batch: exit %d, %q", code, errOut)
	}
	if code, _, _ = runCmd(t, vars, "status", "--wait"); code != exitUsage {
		t.Errorf("status --wait without a batch: exit %d, want %d", code, exitUsage)
	}
	if code, _, errOut = runCmd(t, vars, "status", "nope", "--wait"); code != exitInvalid || !strings.Contains(errOut, "no such batch") {
		t.Errorf("status --wait of an unknown batch: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCmd(t, vars, "status", "b1", "--wait", "--interval", "10ms", "--timeout", "50ms")
	if code != exitUnavailable || !strings.Contains(errOut, "not finished after 50ms") || !strings.Contains(errOut, "b1: 2/3 resolved") {
		t.Errorf("status --wait of a batch that cannot finish: exit %d, %q", code, errOut)
	}

	// report
	path := filepath.Join(t.TempDir(), "results.csv")
	code, _, errOut = runCmd(t, vars, "report", "b1", "--out", path)
	if code != exitOK || !strings.Contains(errOut, "3 lines (1 applied, 0 superseded, 0 unchanged, 1 failed, 1 pending)") {
		t.Fatalf("report: exit %d, %q", code, errOut)
	}
	data, _ := os.ReadFile(path)
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil || len(recs) != 4 {
		t.Fatalf("report file: %v, %q", err, data)
	}
	want := [][]string{
		{"line", "action", "org_id", "connection_id", "flags", "outcome", "reason", "http_status", "attempts"},
		{"2", "enable", "org_1", "con_1", "show_as_button=false", "applied", "", "", "1"},
		{"3", "enable", "org_gone", "con_1", "", "failed", "unknown_organization: No organization found by that id or name", "404", "1"},
		{"4", "remove", "org_2", "con_1", "", "pending", "", "", "0"},
	}
	for i := range want {
		if strings.Join(recs[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("report row %d = %q, want %q", i, recs[i], want[i])
		}
	}
	if code, out, _ = runCmd(t, vars, "report", "b1"); code != exitOK || out != string(data) {
		t.Errorf("report to stdout: exit %d, %q", code, out)
	}
	if code, _, errOut = runCmd(t, vars, "report", "nope", "--out", filepath.Join(t.TempDir(), "x.csv")); code != exitInvalid || !strings.Contains(errOut, `batch "nope": no such batch`) {
		t.Errorf("report of an unknown batch: exit %d, %q", code, errOut)
	}
	if code, _, _ = runCmd(t, vars, "report"); code != exitUsage {
		t.Errorf("report without a batch: exit %d", code)
	}

	// dlq list
	code, out, _ = runCmd(t, vars, "dlq", "list", "--json")
	var list struct {
		DeadLetters []dlJSON `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != exitOK || len(list.DeadLetters) != 1 {
		t.Fatalf("dlq list --json: exit %d, %v, %s", code, err, out)
	}
	if d := list.DeadLetters[0]; d.ID != "b1:3" || d.Batch != "b1" || d.Line != 3 || d.Action != "enable" || d.OrgID != "org_gone" || d.Connection != "con_1" ||
		d.Reason != "unknown_organization" || d.Status != 404 || d.Attempts != 1 || d.LastError == "" || d.Origin != "csv:changes.csv" || d.State != "dead" {
		t.Errorf("dead letter = %+v", d)
	}
	code, out, _ = runCmd(t, vars, "dlq", "list", "--batch", "b1")
	if code != exitOK || !strings.Contains(out, "b1:3") || !strings.Contains(out, "unknown_organization") || !strings.Contains(out, "404") {
		t.Errorf("dlq list: exit %d, %q", code, out)
	}
	if code, _, errOut = runCmd(t, vars, "dlq", "list", "--batch", "nope"); code != exitInvalid || !strings.Contains(errOut, "no such batch") {
		t.Errorf("dlq list of an unknown batch: exit %d, %q", code, errOut)
	}

	// dlq export
	fix := filepath.Join(t.TempDir(), "fix.csv")
	code, _, errOut = runCmd(t, vars, "dlq", "export", "--batch", "b1", "--out", fix)
	data, _ = os.ReadFile(fix)
	if code != exitOK || string(data) != "action,org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled\nenable,org_gone,con_1,,,\n" {
		t.Errorf("dlq export: exit %d, %q, file %q", code, errOut, data)
	}
	if code, _, _ = runCmd(t, vars, "dlq", "export"); code != exitUsage {
		t.Errorf("dlq export without --out: exit %d", code)
	}

	// dlq requeue and purge: selection errors first.
	for _, args := range [][]string{{"dlq", "requeue"}, {"dlq", "requeue", "--all", "b1:3"}, {"dlq", "purge", "--batch", "b1", "--all"}, {"dlq"}, {"dlq", "frob"}} {
		if code, _, _ := runCmd(t, vars, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, errOut = runCmd(t, vars, "dlq", "requeue", "b1:2"); code != exitInvalid || !strings.Contains(errOut, "b1:2: no such dead letter") {
		t.Errorf("requeue of an applied line: exit %d, %q", code, errOut)
	}
	if code, _, errOut = runCmd(t, vars, "dlq", "requeue", "b1"); code != exitInvalid || !strings.Contains(errOut, "not a dead letter id") {
		t.Errorf("requeue of a malformed id: exit %d, %q", code, errOut)
	}
	code, out, errOut = runCmd(t, vars, "dlq", "requeue", "b1:3", "--json")
	var rq struct {
		Results []struct {
			ID    string `json:"id"`
			Done  bool   `json:"done"`
			State string `json:"state"`
		} `json:"results"`
		Done int `json:"done"`
	}
	if err := json.Unmarshal([]byte(out), &rq); err != nil || code != exitOK || rq.Done != 1 || rq.Results[0].ID != "b1:3" || rq.Results[0].State != "requeued" {
		t.Fatalf("dlq requeue b1:3 --json: exit %d, %v, %s %s", code, err, out, errOut)
	}
	info, err := asynq.NewInspectorFromRedisClient(r.Client).GetTaskInfo(r.Queue, "b1:3")
	if err != nil || info.State != asynq.TaskStatePending || info.Retried != 0 {
		t.Errorf("requeued task: %+v, %v; want pending with a fresh budget", info, err)
	}
	if bc, _ := l.Batch(context.Background(), "b1"); bc.Dead != 0 || bc.Pending != 2 || bc.Requeued != 1 {
		t.Errorf("after requeue: %+v", bc)
	}
	code, _, errOut = runCmd(t, vars, "dlq", "purge", "b1:3")
	if code != exitInvalid || !strings.Contains(errOut, "pending again after a requeue") {
		t.Errorf("purge of a requeued line: exit %d, %q", code, errOut)
	}
}

// runCmdCtx is runCmd with a context and separate output buffers, for a
// command that runs in the background.
func runCmdCtx(ctx context.Context, vars map[string]string, stdout, stderr io.Writer, terminal bool, args ...string) int {
	e := &env{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr, getenv: func(k string) string { return vars[k] }}
	if terminal {
		e.terminal = func(io.Writer) bool { return true }
	}
	return run(ctx, args, e)
}

// TestImportWaitAndTheDeadLetterRoundTrip drives the commands a user would:
// a worker against the simulated tenant, import --wait, status --wait, dlq
// export, the fixed file imported, dlq purge.
func TestImportWaitAndTheDeadLetterRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a worker")
	}
	_, vars, _ := opsSetup(t)
	sim := mgmttest.New(mgmttest.Config{Orgs: 3, Connections: 2, Seed: 5})
	srv, err := mgmttest.Listen("127.0.0.1:0", sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	vars["AUTH0_DOMAIN"] = srv.URL()
	vars["AUTH0_CLIENT_ID"] = mgmttest.DefaultClientID
	vars["AUTH0_CLIENT_SECRET"] = mgmttest.DefaultClientSecret

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var workerErr bytes.Buffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		runCmdCtx(ctx, vars, io.Discard, &workerErr, false, "worker", "--rate", "50", "--burst", "10", "--log-level", "warn")
	}()
	defer func() {
		stop()
		wg.Wait()
		if t.Failed() {
			t.Logf("worker log:\n%s", workerErr.String())
		}
	}()

	orgs, conns := sim.Orgs(), sim.Connections()
	csvText := "action,org_id,connection_id,show_as_button\n" +
		"enable," + orgs[0] + "," + conns[0].ID + ",false\n" +
		"enable,org_doesnotexist0001," + conns[1].ID + ",\n" +
		"enable," + orgs[1] + "," + conns[1].ID + ",\n"
	var out, errOut bytes.Buffer
	code := runCmdCtx(context.Background(), vars, &out, &errOut, true, "import", "--batch", "w1", "--wait", "--interval", "50ms", file(t, csvText))
	if code != exitDeadLetters || !strings.Contains(out.String(), "\rw1 [") || !strings.Contains(out.String(), "3/3 100%") ||
		!strings.Contains(out.String(), "batch w1 finished: 2 applied, 0 superseded, 0 unchanged, 1 dead-lettered") {
		t.Fatalf("import --wait: exit %d, want %d; stdout %q, stderr %q", code, exitDeadLetters, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code = runCmdCtx(context.Background(), vars, &out, &errOut, false, "status", "w1", "--wait", "--interval", "50ms")
	if code != exitDeadLetters || !strings.Contains(errOut.String(), "w1: 3/3 resolved (2 applied, 0 superseded, 0 unchanged, 1 dead-lettered)") {
		t.Errorf("status --wait of a finished batch with a dead letter: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}

	fix := filepath.Join(t.TempDir(), "fix.csv")
	if code, _, errOut := runCmd(t, vars, "dlq", "export", "--batch", "w1", "--out", fix); code != exitOK {
		t.Fatalf("dlq export: exit %d, %q", code, errOut)
	}
	data, _ := os.ReadFile(fix)
	if err := os.WriteFile(fix, bytes.ReplaceAll(data, []byte("org_doesnotexist0001"), []byte(orgs[2])), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	code = runCmdCtx(context.Background(), vars, &out, &errOut, false, "import", "--batch", "w1-fix", "--wait", "--interval", "50ms", "--json", fix)
	var res struct {
		Enqueued int        `json:"enqueued"`
		Status   *batchJSON `json:"status"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || code != exitOK || res.Enqueued != 1 || res.Status == nil || res.Status.Applied != 1 || !res.Status.Done {
		t.Fatalf("import --wait --json of the fixed file: exit %d, %v, stdout %q, stderr %q", code, err, out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "w1-fix: ") {
		t.Errorf("import --wait without a terminal printed no progress line on stderr: %q", errOut.String())
	}
	state := sim.State()
	for _, p := range [][2]string{{orgs[0], conns[0].ID}, {orgs[1], conns[1].ID}, {orgs[2], conns[1].ID}} {
		if _, ok := state[p[0]][p[1]]; !ok {
			t.Errorf("%s/%s is not enabled on the tenant: %v", p[0], p[1], state)
		}
	}
	if s := state[orgs[0]][conns[0].ID]; s.ShowAsButton {
		t.Errorf("%s/%s: show_as_button is on, the file turned it off", orgs[0], conns[0].ID)
	}

	if code, out, errOut := runCmd(t, vars, "dlq", "purge", "--batch", "w1"); code != exitOK || !strings.Contains(out, "purged w1:3") {
		t.Fatalf("dlq purge: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, _ := runCmd(t, vars, "dlq", "list"); code != exitOK || !strings.Contains(out, "no dead letters") {
		t.Errorf("dlq list after purge: exit %d, %q", code, out)
	}
	code, outS, _ := runCmd(t, vars, "status", "w1", "--json")
	var st struct {
		Batches []batchJSON `json:"batches"`
	}
	if err := json.Unmarshal([]byte(outS), &st); err != nil || code != exitOK || st.Batches[0].DeadLettered != 1 || st.Batches[0].Purged != 1 {
		t.Errorf("status after purge: exit %d, %v, %s", code, err, outS)
	}
}

func TestOperatingCommandsHelp(t *testing.T) {
	for _, args := range [][]string{{"status", "--help"}, {"report", "--help"}, {"dlq", "--help"}, {"dlq", "list", "--help"}, {"dlq", "requeue", "--help"}, {"dlq", "export", "--help"}, {"dlq", "purge", "--help"}} {
		code, out, _ := runCmd(t, nil, args...)
		want := "Usage: orgconn " + strings.Join(args[:len(args)-1], " ")
		if code != exitOK || !strings.Contains(out, want) || !strings.Contains(out, "Exit codes") && args[len(args)-2] != "dlq" {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
}
