package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/deadletter"
	"github.com/orgconn/orgconn/worker/ledger"
)

const dlqSynopsis = `
Usage: orgconn dlq <list|requeue|export|purge> [flags] [ID…]

Works on dead letters: changes that cannot succeed as given (400, 403, 404,
401 after a token refresh), or that failed every attempt. orgconn's own
record in Redis is the source of truth: it keeps every dead letter with its
change, reason, HTTP status, attempts and last error for the batch's
retention (30 days after its last import), with no count limit. asynq's
archive holds the same tasks but keeps at most 10,000 for 90 days.

A dead letter's ID is its batch and line: "onboarding-nov:17".

  list     list dead letters                 [--batch B] [--json]
  requeue  try them again, with a fresh      (--all | --batch B | ID…) [--force] [--json]
           attempt budget
  export   write their changes as an         [--batch B] --out fix.csv
           import file, to fix and import
  purge    delete them (the lines stay       (--all | --batch B | ID…) [--json]
           counted as dead-lettered)

Run "orgconn dlq <command> --help" for details.`

func runDLQ(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, strings.TrimSpace(dlqSynopsis))
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(e.stdout, strings.TrimSpace(dlqSynopsis))
		return exitOK
	case "list":
		return runDLQList(ctx, e, args[1:])
	case "requeue":
		return runDLQRequeue(ctx, e, args[1:])
	case "export":
		return runDLQExport(ctx, e, args[1:])
	case "purge":
		return runDLQPurge(ctx, e, args[1:])
	}
	return errorf(e, exitUsage, "dlq: unknown command %q: use list, requeue, export or purge", args[0])
}

// openDLQ opens Redis and the dead-letter manager.
func openDLQ(ctx context.Context, q *queueFlags) (*deadletter.Manager, func(), error) {
	rdb, l, err := q.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := deadletter.New(deadletter.Config{Redis: rdb, Ledger: l, Queue: q.queue})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return m, func() { m.Close(); rdb.Close() }, nil
}

// selectionCode maps an error from selecting dead letters to an exit code.
func selectionCode(e *env, cmd string, err error) int {
	switch {
	case errors.Is(err, ledger.ErrNoBatch):
		return errorf(e, exitInvalid, "dlq %s: %v (it was never imported, or its record expired); orgconn status lists the recent ones", cmd, err)
	case errors.Is(err, deadletter.ErrNotFound), errors.Is(err, deadletter.ErrBadID):
		return errorf(e, exitInvalid, "dlq %s: %v", cmd, err)
	}
	return errorf(e, exitUnavailable, "dlq %s: %v", cmd, err)
}

const dlqListSynopsis = `
Usage: orgconn dlq list [flags]

Lists dead letters, batch by batch (the most recently imported first), by
line: id, batch, line, action, organization, connection, reason, HTTP status,
attempts, last error and origin (the batch's source: csv:<file>, webhook or
event:<type>, with the event id). Lines requeued and pending again are listed
with the state "requeued" until they resolve.

Examples:
  orgconn dlq list
  orgconn dlq list --batch onboarding-nov --json

Exit codes: 0 listed (even none), 1 unknown batch, 2 usage, 4 Redis failed.`

// dlJSON is a dead letter in --json outputs.
type dlJSON struct {
	ID         string     `json:"id"`
	Batch      string     `json:"batch"`
	Line       int        `json:"line"`
	State      string     `json:"state"` // dead or requeued
	Action     string     `json:"action"`
	OrgID      string     `json:"org_id"`
	Connection string     `json:"connection_id"`
	Flags      string     `json:"flags,omitempty"`
	Reason     string     `json:"reason"`
	Status     int        `json:"http_status,omitempty"`
	ErrorCode  string     `json:"error_code,omitempty"`
	Attempts   int        `json:"attempts"`
	LastError  string     `json:"last_error,omitempty"`
	Origin     string     `json:"origin"`
	Event      string     `json:"event,omitempty"`
	At         time.Time  `json:"at"`
	RequeuedAt *time.Time `json:"requeued_at,omitempty"`
}

func toDLJSON(en deadletter.Entry) dlJSON {
	c := en.Change
	var fs []string
	for _, f := range c.Flags() {
		if f.Value.Set() {
			fs = append(fs, f.Name+"="+f.Value.String())
		}
	}
	if c.OrgConnectionName != "" {
		fs = append(fs, jobs.FieldOrgConnectionName+"="+c.OrgConnectionName)
	}
	if c.AccessLevel != "" {
		fs = append(fs, jobs.FieldAccessLevel+"="+string(c.AccessLevel))
	}
	state := "dead"
	if en.Requeued() {
		state = "requeued"
	}
	return dlJSON{
		ID: en.ID(), Batch: en.Batch, Line: en.Line, State: state, Action: string(c.Action), OrgID: c.OrgKey(), Connection: c.ConnectionKey(),
		Flags: strings.Join(fs, ";"), Reason: en.Reason, Status: en.Status, ErrorCode: en.ErrorCode, Attempts: en.Attempts,
		LastError: en.Message, Origin: en.Origin(), Event: en.Event, At: en.At, RequeuedAt: en.RequeuedAt,
	}
}

func runDLQList(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "dlq list", dlqListSynopsis)
	q := f.withQueue()
	batch := f.String("batch", "", "only this batch's dead letters")
	asJSON := f.Bool("json", false, "print the dead letters as JSON on stdout")
	pos, code, ok := f.parseMixed(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return errorf(e, exitUsage, "dlq list: unexpected argument %q (use --batch B)", pos[0])
	}
	m, closeAll, err := openDLQ(ctx, q)
	if err != nil {
		return errorf(e, exitUnavailable, "dlq list: %v", err)
	}
	defer closeAll()
	entries, err := m.List(ctx, deadletter.Selection{All: *batch == "", Batch: *batch})
	if err != nil {
		return selectionCode(e, "list", err)
	}
	if *asJSON {
		out := struct {
			DeadLetters []dlJSON `json:"dead_letters"`
		}{DeadLetters: []dlJSON{}}
		for _, en := range entries {
			out.DeadLetters = append(out.DeadLetters, toDLJSON(en))
		}
		writeJSON(e.stdout, out)
		return exitOK
	}
	if len(entries) == 0 {
		fmt.Fprintln(e.stdout, "no dead letters")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tBATCH\tLINE\tACTION\tORG\tCONNECTION\tREASON\tHTTP\tATTEMPTS\tLAST ERROR\tORIGIN\tSTATE")
	for _, en := range entries {
		j := toDLJSON(en)
		st := "-"
		if j.Status != 0 {
			st = fmt.Sprint(j.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", j.ID, j.Batch, j.Line, j.Action, j.OrgID, j.Connection,
			j.Reason, st, j.Attempts, short(oneLine(j.LastError), 60), j.Origin, j.State)
	}
	tw.Flush()
	return exitOK
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// selectFlags are the ways requeue and purge pick dead letters.
type selectFlags struct {
	all   *bool
	batch *string
}

func (f *flags) withSelection() selectFlags {
	return selectFlags{
		all:   f.Bool("all", false, "every dead letter of every batch"),
		batch: f.String("batch", "", "every dead letter of this batch"),
	}
}

func (s selectFlags) selection(e *env, cmd string, ids []string) (deadletter.Selection, bool) {
	sel := deadletter.Selection{All: *s.all, Batch: *s.batch, IDs: ids}
	n := 0
	for _, given := range []bool{sel.All, sel.Batch != "", len(ids) > 0} {
		if given {
			n++
		}
	}
	if n != 1 {
		errorf(e, exitUsage, "dlq %s: choose the dead letters with exactly one of --all, --batch B or IDs (batch:line)", cmd)
		return sel, false
	}
	return sel, true
}

const dlqRequeueSynopsis = `
Usage: orgconn dlq requeue [flags] (--all | --batch B | ID…)

Tries dead-lettered changes again: each gets a new task with a fresh attempt
budget (--max-attempts of the workers), and its dead letter stays, marked
requeued, until it resolves.

Order: a pair's changes take effect in the order they were accepted. A dead
letter is requeued only while it is still its pair's latest accepted change;
if a later change to the same organization and connection was accepted
since (whether pending, applied or anything else), applying the older
change now would undo it, so requeue refuses and names the later change.
Review such a change: export it (orgconn dlq export), fix it and import it
as a new change, which takes effect after everything accepted before; or
give --force to requeue it anyway with the same effect: it is accepted again
at the end of its pair's queue.

Running requeue again is safe: a requeued line whose task went missing (an
interrupted requeue) gets its task again.

Examples:
  orgconn dlq requeue onboarding-nov:17 onboarding-nov:42
  orgconn dlq requeue --batch onboarding-nov

Exit codes: 0 every selected dead letter requeued, 1 unknown batch or id, or
some were refused (see the messages), 2 usage, 4 Redis failed or a task was
still finishing (run it again).`

func runDLQRequeue(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "dlq requeue", dlqRequeueSynopsis)
	q := f.withQueue()
	s := f.withSelection()
	force := f.Bool("force", false, "requeue even when a later change to the pair was accepted; it then takes effect after that change")
	asJSON := f.Bool("json", false, "print the results as JSON on stdout")
	pos, code, ok := f.parseMixed(args)
	if !ok {
		return code
	}
	sel, ok := s.selection(e, "requeue", pos)
	if !ok {
		return exitUsage
	}
	m, closeAll, err := openDLQ(ctx, q)
	if err != nil {
		return errorf(e, exitUnavailable, "dlq requeue: %v", err)
	}
	defer closeAll()
	res, err := m.Requeue(ctx, sel, *force)
	if err != nil {
		return selectionCode(e, "requeue", err)
	}
	return results(e, "requeue", "requeued", res, *asJSON)
}

const dlqPurgeSynopsis = `
Usage: orgconn dlq purge [flags] (--all | --batch B | ID…)

Deletes dead letters (and their tasks in asynq's archive) once you have dealt
with them, e.g. after exporting, fixing and importing them. The lines stay
dead-lettered in their batch's status (counted as purged) and report. A line
pending again after a requeue is not purged.

Examples:
  orgconn dlq purge onboarding-nov:17
  orgconn dlq purge --batch onboarding-nov

Exit codes: 0 every selected dead letter purged, 1 unknown batch or id, or
some could not be purged, 2 usage, 4 Redis failed.`

func runDLQPurge(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "dlq purge", dlqPurgeSynopsis)
	q := f.withQueue()
	s := f.withSelection()
	asJSON := f.Bool("json", false, "print the results as JSON on stdout")
	pos, code, ok := f.parseMixed(args)
	if !ok {
		return code
	}
	sel, ok := s.selection(e, "purge", pos)
	if !ok {
		return exitUsage
	}
	m, closeAll, err := openDLQ(ctx, q)
	if err != nil {
		return errorf(e, exitUnavailable, "dlq purge: %v", err)
	}
	defer closeAll()
	res, err := m.Purge(ctx, sel)
	if err != nil {
		return selectionCode(e, "purge", err)
	}
	return results(e, "purge", "purged", res, *asJSON)
}

// results prints per-dead-letter results and returns the exit code: 0 all
// done, 4 if Redis failed or a task was still running, else 1.
func results(e *env, cmd, verb string, res []deadletter.Result, asJSON bool) int {
	done, failed, busy := 0, 0, 0
	type resJSON struct {
		deadletter.Result
		Error string `json:"error,omitempty"`
	}
	out := struct {
		Results []resJSON `json:"results"`
		Done    int       `json:"done"`
		NotDone int       `json:"not_done"`
	}{Results: []resJSON{}}
	for _, r := range res {
		rj := resJSON{Result: r}
		switch {
		case r.Err != nil:
			busy++
			rj.Error = r.Err.Error()
			fmt.Fprintf(e.stderr, "orgconn dlq %s: %s: %v\n", cmd, r.ID, r.Err)
		case r.Done:
			done++
			if !asJSON {
				fmt.Fprintf(e.stdout, "%s %s\n", verb, r.ID)
			}
		case r.State == "running":
			busy++
			fmt.Fprintf(e.stderr, "orgconn dlq %s: %s: %s\n", cmd, r.ID, r.Detail)
		default:
			failed++
			fmt.Fprintf(e.stderr, "orgconn dlq %s: %s: not %s: %s\n", cmd, r.ID, verb, r.Detail)
		}
		out.Results = append(out.Results, rj)
	}
	out.Done, out.NotDone = done, failed+busy
	if asJSON {
		writeJSON(e.stdout, out)
	} else {
		fmt.Fprintf(e.stdout, "%d %s, %d not\n", done, verb, failed+busy)
	}
	switch {
	case busy > 0:
		return exitUnavailable
	case failed > 0:
		return exitInvalid
	}
	return exitOK
}

const dlqExportSynopsis = `
Usage: orgconn dlq export [flags]

Writes the changes of dead letters (all, or one batch's) as an import file
with the header
  action,org_id,connection_id,assign_membership_on_login,show_as_button,is_signup_enabled
so that you can fix it and import it again. An import accepts its rows as new
changes: each takes effect after every change to its pair accepted before.
Lines pending again after a requeue are left out.

Example:
  orgconn dlq export --batch onboarding-nov --out fix.csv
  # fix fix.csv, then:
  orgconn import --batch onboarding-nov-fix --wait fix.csv
  orgconn dlq purge --batch onboarding-nov

Exit codes: 0 written (even with no rows), 1 unknown batch, 2 usage, 4 Redis
or the file failed.`

func runDLQExport(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "dlq export", dlqExportSynopsis)
	q := f.withQueue()
	batch := f.String("batch", "", "only this batch's dead letters")
	out := f.String("out", "", `the CSV file to write ("-": standard output)`)
	pos, code, ok := f.parseMixed(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return errorf(e, exitUsage, "dlq export: unexpected argument %q (use --batch B)", pos[0])
	}
	if *out == "" {
		return errorf(e, exitUsage, `dlq export: give --out FILE ("-" for standard output)`)
	}
	m, closeAll, err := openDLQ(ctx, q)
	if err != nil {
		return errorf(e, exitUnavailable, "dlq export: %v", err)
	}
	defer closeAll()
	entries, err := m.List(ctx, deadletter.Selection{All: *batch == "", Batch: *batch})
	if err != nil {
		return selectionCode(e, "export", err)
	}
	var n int
	if err := writeOut(e, *out, func(w io.Writer) (err error) {
		n, err = deadletter.Export(w, entries)
		return err
	}); err != nil {
		return errorf(e, exitUnavailable, "dlq export: %v", err)
	}
	dest := *out
	if dest == "-" {
		dest = "standard output"
	}
	fmt.Fprintf(e.stderr, "exported %d dead-lettered changes to %s\n", n, dest)
	return exitOK
}
