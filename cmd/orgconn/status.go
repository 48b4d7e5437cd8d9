package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/redis/go-redis/v9"
)

const statusSynopsis = `
Usage: orgconn status [flags] [BATCH]

Shows a batch's progress (the most recent batches when no BATCH is given):

  total          lines accepted
  applied        in effect
  superseded     skipped: a later change to the same pair made them obsolete
  unchanged      skipped: the worker read the tenant and found them in effect
                 already (no write sent; see --read on orgconn worker)
  retrying       failed at least one attempt (5xx, network, timeout) and will
                 be tried again
  dead-lettered  cannot succeed as given: see orgconn dlq list
  pending        queued, waiting for their pair's turn, or running
  rate           lines of the batch resolved per second over the last minute,
                 measured from orgconn's record in Redis (what the workers
                 achieved, not the tenant's budget)
  ETA            pending and retrying lines at that rate; "unknown" when
                 nothing resolved in the last minute

Below the table, the blocked pairs of the batches shown: pairs whose later
changes have waited 10 s or more for one change (the pair's head), with how
long, how many changes wait, and what the workers found of the head's task
(retrying, running, or lost and enqueued again by a worker). And, when the
workers serve one tenant: the write pace their shared rate limiter has
learned (see orgconn limits) and how long the pending lines need at that
pace — an estimate before any line resolved.

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
	budget, hasBudget := learnedWriteBudget(ctx, rdb, q.prefix)
	blocked, err := blockedPairs(ctx, l, all)
	if err != nil {
		return errorf(e, exitUnavailable, "status: %v", err)
	}
	if *asJSON {
		out := struct {
			Batches []batchJSON   `json:"batches"`
			Blocked []blockedJSON `json:"blocked"`
			Budget  *writeBudgetJ `json:"budget"` // null: no single tenant's budget known
		}{Batches: []batchJSON{}, Blocked: []blockedJSON{}}
		for _, b := range blocked {
			out.Blocked = append(out.Blocked, toBlockedJSON(b, all))
		}
		for _, bc := range all {
			j := toJSON(bc)
			if hasBudget && !bc.Done() {
				s := float64(bc.Waiting()) / budget.Rate
				j.ETAAtBudget = &s
			}
			out.Batches = append(out.Batches, j)
		}
		if hasBudget {
			out.Budget = &budget
		}
		writeJSON(e.stdout, out)
		return exitOK
	}
	if len(all) == 0 {
		fmt.Fprintln(e.stdout, "no batches")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "BATCH\tTOTAL\tAPPLIED\tSUPERSEDED\tUNCHANGED\tRETRYING\tDEAD-LETTERED\tPENDING\tRATE\tETA\t")
	for _, bc := range all {
		dead := fmt.Sprint(bc.Dead)
		if bc.Purged > 0 {
			dead = fmt.Sprintf("%d (%d purged)", bc.Dead, bc.Purged)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%s\t\n", bc.Name, bc.Total, bc.Applied, bc.Superseded, bc.Unchanged, bc.Retrying, dead, bc.Waiting(), rateText(bc), etaText(bc))
	}
	tw.Flush()
	if len(blocked) > 0 {
		fmt.Fprintf(e.stdout, "\nblocked pairs (their later changes wait for the head):\n")
		for _, b := range blocked {
			j := toBlockedJSON(b, all)
			fmt.Fprintf(e.stdout, "  %s waits for %s for %v (%d waiting): %s\n", b.Pair(), b.Head,
				time.Duration(j.BlockedSeconds*float64(time.Second)).Round(time.Second), b.Waiting, b.HeadState)
		}
	}
	if hasBudget {
		var waiting int64
		for _, bc := range all {
			if !bc.Done() {
				waiting += bc.Waiting()
			}
		}
		fmt.Fprintf(e.stdout, "\nbudget: tenant %s, writes paced at %.2f/s (%.0f a minute) by bucket %s [%s]", budget.Tenant, budget.Rate, budget.Rate*60, budget.Bucket, budget.Source)
		if waiting > 0 {
			fmt.Fprintf(e.stdout, "; %d pending lines need about %v at that pace", waiting, time.Duration(float64(waiting)/budget.Rate*float64(time.Second)).Round(time.Second))
		}
		fmt.Fprintln(e.stdout)
	}
	return exitOK
}

// blockedJSON is a blocked pair, as status shows it.
type blockedJSON struct {
	OrgID        string `json:"org_id"`
	ConnectionID string `json:"connection_id"`
	// OrgName and ConnectionName name a side given only by name.
	OrgName        string `json:"org_name,omitempty"`
	ConnectionName string `json:"connection_name,omitempty"`
	// Head is the task id (batch:line) of the change the pair waits for.
	Head           string    `json:"head"`
	Waiting        int       `json:"waiting"`
	BlockedSeconds float64   `json:"blocked_seconds"`
	HeadState      string    `json:"head_state"`
	Checked        time.Time `json:"checked"`
}

func toBlockedJSON(b ledger.BlockedPair, all []ledger.BatchCounts) blockedJSON {
	now := time.Now()
	if len(all) > 0 && !all[0].Now.IsZero() {
		now = all[0].Now // the Redis server's clock, like Since
	}
	return blockedJSON{OrgID: b.OrgID, ConnectionID: b.ConnectionID, OrgName: b.OrgName, ConnectionName: b.ConnectionName, Head: b.Head, Waiting: b.Waiting,
		BlockedSeconds: max(now.Sub(b.Since).Seconds(), 0), HeadState: b.HeadState, Checked: b.Checked.UTC()}
}

// blockedPairs returns the blocked pairs whose head or checking change
// belongs to one of the batches shown.
func blockedPairs(ctx context.Context, l *ledger.Ledger, shown []ledger.BatchCounts) ([]ledger.BlockedPair, error) {
	if len(shown) == 0 {
		return nil, nil
	}
	all, err := l.Blocked(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, bc := range shown {
		names[bc.Name] = true
	}
	var out []ledger.BlockedPair
	for _, b := range all {
		hb, _, _ := jobs.ParseTaskID(b.Head)
		wb, _, _ := jobs.ParseTaskID(b.Waiter)
		if names[hb] || names[wb] {
			out = append(out, b)
		}
	}
	return out, nil
}

// writeBudgetJ is the fleet's learned write budget, as status shows it.
type writeBudgetJ struct {
	Tenant string  `json:"tenant"`
	Bucket string  `json:"bucket"`
	Source string  `json:"source"`
	Rate   float64 `json:"write_rate_per_second"`
}

// learnedWriteBudget is the pace of writes the fleet's limiter keeps: the
// slowest bucket pacing writes. Batches do not record their tenant, so it
// is given only when the fleet knows exactly one tenant.
func learnedWriteBudget(ctx context.Context, rdb redis.UniversalClient, prefix string) (writeBudgetJ, bool) {
	tenants, err := ratelimit.Tenants(ctx, rdb, prefix)
	if err != nil || len(tenants) != 1 {
		return writeBudgetJ{}, false
	}
	st, err := ratelimit.ReadState(ctx, rdb, prefix, tenants[0])
	if err != nil {
		return writeBudgetJ{}, false
	}
	var best ratelimit.BucketState
	for _, b := range st.Buckets {
		if strings.Contains(b.Classes, "w") && b.Rate > 0 && (best.Rate == 0 || b.Rate < best.Rate) {
			best = b
		}
	}
	if best.Rate == 0 {
		return writeBudgetJ{}, false
	}
	return writeBudgetJ{Tenant: tenants[0], Bucket: best.ID, Source: best.Source, Rate: best.Rate}, true
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
		fmt.Fprintln(e.stdout, finishedLine(bc))
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
