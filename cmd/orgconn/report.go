package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/orgconn/orgconn/worker/ledger"
	batchreport "github.com/orgconn/orgconn/worker/report"
)

const reportSynopsis = `
Usage: orgconn report [flags] BATCH

Writes every accepted line of BATCH with its outcome as CSV, in line order,
with the columns:

  line, action, org_id, connection_id   the line and its change
  flags                                 the flags it gives, e.g.
                                        "show_as_button=false;is_signup_enabled=true"
  outcome                               applied, superseded, unchanged (already in
                                        effect: no write), failed (dead-lettered)
                                        or pending (not resolved yet)
  reason                                why it failed, was superseded, or is
                                        being retried
  http_status                           the last HTTP status, when it failed
  attempts                              Management API calls made for it

Rows rejected at import (--skip-invalid) were never accepted and are not in
the report. A summary goes to stderr (or stdout with --json and a file).

Examples:
  orgconn report onboarding-nov --out results.csv
  orgconn report onboarding-nov | grep ',failed,'

Exit codes: 0 written, 1 unknown batch, 2 usage, 4 Redis or the file failed.`

func runReport(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "report", reportSynopsis)
	q := f.withQueue()
	out := f.String("out", "-", `the CSV file to write ("-": standard output)`)
	asJSON := f.Bool("json", false, "print the summary as JSON on stdout (needs --out FILE)")
	pos, code, ok := f.parseMixed(args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return errorf(e, exitUsage, "report: give exactly one BATCH; see orgconn report --help")
	}
	if *asJSON && *out == "-" {
		return errorf(e, exitUsage, "report: --json prints the summary on stdout, which holds the CSV: give --out FILE")
	}
	batch := pos[0]
	rdb, l, err := q.open(ctx)
	if err != nil {
		return errorf(e, exitUnavailable, "report: %v", err)
	}
	defer rdb.Close()
	if _, err := l.Batch(ctx, batch); errors.Is(err, ledger.ErrNoBatch) {
		return errorf(e, exitInvalid, "report: batch %q: no such batch (it was never imported, or its record expired); orgconn status lists the recent ones", batch)
	} else if err != nil {
		return errorf(e, exitUnavailable, "report: %v", err)
	}

	var sum batchreport.Summary
	if err := writeOut(e, *out, func(w io.Writer) (err error) {
		sum, err = batchreport.Write(ctx, l, batch, w)
		return err
	}); err != nil {
		return errorf(e, exitUnavailable, "report: batch %s: %v", batch, err)
	}
	if *asJSON {
		writeJSON(e.stdout, struct {
			Batch string `json:"batch"`
			File  string `json:"file"`
			batchreport.Summary
		}{batch, *out, sum})
		return exitOK
	}
	dest := *out
	if dest == "-" {
		dest = "standard output"
	}
	fmt.Fprintf(e.stderr, "report of batch %s: %d lines (%d applied, %d superseded, %d unchanged, %d failed, %d pending) written to %s\n",
		batch, sum.Lines, sum.Applied, sum.Superseded, sum.Unchanged, sum.Failed, sum.Pending, dest)
	return exitOK
}

// writeOut runs write on the file at path ("-": standard output). A file
// that could not be written whole is removed.
func writeOut(e *env, path string, write func(io.Writer) error) error {
	if path == "-" {
		return write(e.stdout)
	}
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	err = write(file)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}
