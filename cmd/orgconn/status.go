package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/orgconn/orgconn/worker/ledger"
)

const statusSynopsis = `
Usage: orgconn status [flags] [BATCH]

Shows a batch's progress (the most recent batches when no BATCH is given):

  total          lines accepted
  applied        in effect
  superseded     skipped: a later change to the same pair made them obsolete
  retrying       failed at least one attempt (5xx, network, timeout) and will
                 be tried again
  dead-lettered  cannot succeed as given: see orgconn dlq list
  pending        queued, waiting for their pair's turn, or running
  rate           lines of the batch resolved per second over the last minute,
                 measured from orgconn's record in Redis (what the workers
                 achieved, not the tenant's budget)
  ETA            pending and retrying lines at that rate; "unknown" when
                 nothing resolved in the last minute

With --wait, status waits until every line of BATCH is resolved, printing a
progress line on stderr every --interval.

Examples:
  orgconn status
  orgconn status onboarding-nov --json
  orgconn status onboarding-nov --wait && echo "no dead letters"

Exit codes: 0 shown (with --wait: finished without dead letters), 1 unknown
batch, 2 usage, 3 (with --wait) finished with dead letters, 4 Redis failed,
or --timeout passed, or interrupted.`

func runStatus(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "status", statusSynopsis)
	q := f.withQueue()
	wait := f.Bool("wait", false, "wait until BATCH is finished; exit 0 if nothing was dead-lettered, else 3")
	interval := f.Duration("interval", 2*time.Second, "with --wait: how often to read and print progress")
	timeout := f.Duration("timeout", 0, "with --wait: give up after this long (exit 4); 0 waits as long as it takes")
	limit := f.Int("limit", 20, "without BATCH: how many of the most recent batches to show")
	asJSON := f.Bool("json", false, "print the status as JSON on stdout")
	pos, code, ok := f.parseMixed(args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return errorf(e, exitUsage, "status: give at most one BATCH; see orgconn status --help")
	}
	if *wait && len(pos) == 0 {
		return errorf(e, exitUsage, "status: --wait needs a BATCH")
	}
	if *interval <= 0 || *timeout < 0 || *limit < 1 {
		return errorf(e, exitUsage, "status: --interval and --limit must be positive, --timeout not negative")
	}
	rdb, l, err := q.open(ctx)
	if err != nil {
		return errorf(e, exitUnavailable, "status: %v", err)
	}
	defer rdb.Close()

	if *wait {
		return waitBatch(ctx, e, l, pos[0], waitOptions{interval: *interval, timeout: *timeout, asJSON: *asJSON, bar: false}, "status")
	}
	names := pos
	if len(names) == 0 {
		if names, err = l.Batches(ctx, *limit); err != nil {
			return errorf(e, exitUnavailable, "status: %v", err)
		}
	}
	var all []ledger.BatchCounts
	for _, n := range names {
		bc, err := l.Batch(ctx, n)
		switch {
		case errors.Is(err, ledger.ErrNoBatch) && len(pos) == 0:
			continue // expired since it was listed
		case errors.Is(err, ledger.ErrNoBatch):
			return errorf(e, exitInvalid, "status: batch %q: no such batch (it was never imported, or its record expired); orgconn status lists the recent ones", n)
		case err != nil:
			return errorf(e, exitUnavailable, "status: %v", err)
		}
		all = append(all, bc)
	}
	if *asJSON {
		out := struct {
			Batches []batchJSON `json:"batches"`
		}{Batches: []batchJSON{}}
		for _, bc := range all {
			out.Batches = append(out.Batches, toJSON(bc))
		}
		writeJSON(e.stdout, out)
		return exitOK
	}
	if len(all) == 0 {
		fmt.Fprintln(e.stdout, "no batches")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "BATCH\tTOTAL\tAPPLIED\tSUPERSEDED\tRETRYING\tDEAD-LETTERED\tPENDING\tRATE\tETA\t")
	for _, bc := range all {
		dead := fmt.Sprint(bc.Dead)
		if bc.Purged > 0 {
			dead = fmt.Sprintf("%d (%d purged)", bc.Dead, bc.Purged)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%s\t\n", bc.Name, bc.Total, bc.Applied, bc.Superseded, bc.Retrying, dead, bc.Waiting(), rateText(bc), etaText(bc))
	}
	tw.Flush()
	return exitOK
}

type waitOptions struct {
	interval, timeout time.Duration
	asJSON            bool
	// bar draws a progress bar on stdout instead of lines on stderr.
	bar bool
}

// waitBatch waits until batch is finished, showing progress, and returns the
// exit code: 0 without dead letters, 3 with, 1 unknown batch, 4 Redis failed,
// timed out or interrupted.
func waitBatch(ctx context.Context, e *env, l *ledger.Ledger, batch string, o waitOptions, cmd string) int {
	bc, code := waitCounts(ctx, e, l, batch, o, cmd)
	if code != exitOK {
		return code
	}
	if o.asJSON {
		writeJSON(e.stdout, toJSON(bc))
	} else {
		fmt.Fprintf(e.stdout, "batch %s finished: %d applied, %d superseded, %d dead-lettered\n", bc.Name, bc.Applied, bc.Superseded, bc.Dead)
	}
	return finishedCode(bc)
}

// waitCounts waits and returns the final counts; a code other than exitOK
// means waiting failed (already reported).
func waitCounts(ctx context.Context, e *env, l *ledger.Ledger, batch string, o waitOptions, cmd string) (ledger.BatchCounts, int) {
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	p := &progress{w: e.stderr}
	if o.bar {
		p = &progress{w: e.stdout, bar: true}
	}
	bc, err := l.Wait(ctx, batch, o.interval, p.show)
	p.finish(bc)
	switch {
	case errors.Is(err, ledger.ErrNoBatch):
		return bc, errorf(e, exitInvalid, "%s: batch %q: no such batch (it was never imported, or its record expired); orgconn status lists the recent ones", cmd, batch)
	case errors.Is(err, context.DeadlineExceeded) && o.timeout > 0:
		return bc, errorf(e, exitUnavailable, "%s: batch %s not finished after %v: %s", cmd, batch, o.timeout, progressLine(bc))
	case err != nil && ctx.Err() != nil:
		return bc, errorf(e, exitUnavailable, "%s: stopped waiting for batch %s: %s", cmd, batch, progressLine(bc))
	case err != nil:
		return bc, errorf(e, exitUnavailable, "%s: %v", cmd, err)
	}
	return bc, exitOK
}

// finishedCode is the exit code of a finished batch.
func finishedCode(bc ledger.BatchCounts) int {
	if bc.Dead > 0 {
		return exitDeadLetters
	}
	return exitOK
}
