package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer/desired"
	"github.com/orgconn/orgconn/worker/ledger"
)

const rollbackSynopsis = `
Usage: orgconn rollback [flags] BATCH

Puts every pair that batch BATCH changed back as it was before the batch's
first write to it, as a new batch (BATCH-rollback-1, -2, … unless --batch):
an enable with the old settings for a pair the batch removed, an update of
the settings back, a remove of a pair the batch created.

What a pair was before comes from the ledger: orgconn apply records it when
it plans, a worker when it read the organization before writing (--read
auto or always). Pairs without a recorded prior state are listed
("no prior state recorded") and the rest rolled back.

Before enqueuing, rollback reads the current connections of the affected
organizations (from the fleet's shared read budget). A pair that someone
changed since the batch — the tenant no longer shows what the batch left —
is listed and left alone, unless --force. The plan is printed like apply's
(+ enable, ~ update old → new, - remove, = unchanged); the rollback batch
records the state it read as its own prior state, so it can be rolled back
in turn.

Examples:
  orgconn rollback --dry-run onboarding-2026-11
  orgconn rollback --wait onboarding-2026-11

Exit codes: 0 planned (and enqueued, unless --dry-run; with --wait: finished
without dead letters), 1 no such batch, 2 usage, 3 with --wait: finished
with dead letters, 4 could not finish (Redis or the API failed, or --wait
timed out; safe to re-run).`

func runRollback(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "rollback", rollbackSynopsis)
	q := f.withQueue()
	a := f.withAPI()
	run := f.withPlanRun("rollback batch")
	dryRun, asJSON, parallel, wait, interval, timeout := run.dryRun, run.asJSON, run.parallel, run.wait, run.interval, run.timeout
	force := f.Bool("force", false, "also put back pairs changed by someone else since the batch")
	batch := f.String("batch", "", "name of the rollback batch (default: BATCH-rollback-<n>, the first unused n)")
	pos, code, ok := f.parseMixed(args)
	if !ok {
		return code
	}
	switch {
	case len(pos) != 1:
		return errorf(e, exitUsage, "rollback: give exactly one BATCH; see orgconn rollback --help")
	case run.problem("rollback") != "":
		return errorf(e, exitUsage, "%s", run.problem("rollback"))
	}
	if *batch != "" {
		if err := jobs.CheckBatch(*batch); err != nil {
			return errorf(e, exitUsage, "rollback: --batch: %v", err)
		}
	}
	name := pos[0]
	if err := jobs.CheckBatch(name); err != nil {
		return errorf(e, exitUsage, "rollback: %v", err)
	}
	t, code := openTenant(ctx, e, "rollback", q, a)
	if t == nil {
		return code
	}
	defer t.Close()
	out := planOutput{DryRun: *dryRun, Changes: []stepJSON{}, Errors: []rowErrorJSON{}}

	bc, err := t.ledger.Batch(ctx, name)
	switch {
	case errors.Is(err, ledger.ErrNoBatch):
		return errorf(e, exitInvalid, "rollback: batch %q: no such batch (it was never imported, or its record expired); orgconn status lists the recent ones", name)
	case err != nil:
		return out.fail(e, "rollback", err, *asJSON)
	}
	if !bc.Done() && !*asJSON {
		fmt.Fprintf(e.stderr, "rollback: batch %s is not finished (%d lines pending): changes it makes later are not rolled back\n", name, bc.Pending)
	}
	priors, err := t.ledger.Priors(ctx, name)
	if err != nil {
		return out.fail(e, "rollback", err, *asJSON)
	}
	lefts, err := t.ledger.Lefts(ctx, name)
	if err != nil {
		return out.fail(e, "rollback", err, *asJSON)
	}
	applied, err := t.ledger.AppliedPairs(ctx, name)
	if err != nil {
		return out.fail(e, "rollback", err, *asJSON)
	}
	changed := desired.ChangedPairs(lefts, applied)
	start := time.Now()
	current, unknown, err := t.readStates(ctx, e, desired.OrgsOfPairs(changed), *parallel, *asJSON)
	if err != nil {
		return out.fail(e, "rollback", err, *asJSON)
	}
	plan := desired.PlanRollback(changed, priors, lefts, current, unknown, *force)
	out.Changes, out.Unchanged, out.ReadMS = toStepsJSON(plan.Plan), plan.Unchanged, time.Since(start).Milliseconds()
	for _, s := range plan.Skipped {
		out.Skipped = append(out.Skipped, skipJSON{s.OrgID, s.ConnectionID, s.Reason})
	}
	for _, s := range plan.Forced {
		out.Forced = append(out.Forced, skipJSON{s.OrgID, s.ConnectionID, s.Reason})
	}
	if !*asJSON {
		fmt.Fprintf(e.stdout, "batch %s changed %d pairs\n", name, plan.Pairs)
		for _, s := range plan.Skipped {
			fmt.Fprintf(e.stdout, "! left alone %s/%s: %s\n", s.OrgID, s.ConnectionID, s.Reason)
		}
		for _, s := range plan.Forced {
			fmt.Fprintf(e.stdout, "! forced %s/%s: %s\n", s.OrgID, s.ConnectionID, s.Reason)
		}
		_ = plan.Print(e.stdout)
	}
	if *dryRun || len(plan.Steps) == 0 {
		return out.done(e, *asJSON, nothingLine(*dryRun, len(plan.Steps)))
	}
	if *batch == "" {
		*batch, err = desired.RollbackBatchName(ctx, name, func(ctx context.Context, b string) (bool, error) {
			_, err := t.ledger.Batch(ctx, b)
			if errors.Is(err, ledger.ErrNoBatch) {
				return false, nil
			}
			return err == nil, err
		})
		if err != nil {
			return out.fail(e, "rollback", err, *asJSON)
		}
	}
	out.Batch = *batch
	res, err := t.enqueuePlan(ctx, q, *batch, *batch+".csv", "", plan.Plan)
	out.Enqueued = res.Enqueued + res.Repaired
	if err != nil {
		return out.fail(e, "rollback", fmt.Errorf("%w; run the same command again: it reads the tenant again and enqueues what is left as a new batch", err), *asJSON)
	}
	return out.finish(ctx, e, t, res, *wait, waitOptions{interval: *interval, timeout: *timeout, bar: !*asJSON && e.isTerminal(e.stdout)}, *asJSON, "rollback")
}
