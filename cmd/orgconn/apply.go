package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/orgconn/orgconn/cmd/orgconn/internal/assembly"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/producer/desired"
)

const applySynopsis = `
Usage: orgconn apply [flags] DESIRED.csv

Makes the tenant's organization connections as the desired file says. The
file is the export's format: a header, then one row per (organization,
connection) pair that should be enabled, with the settings it should have:

  org_id                      organization id (or give org_name)
  connection_id               connection id (or give connection_name)
  assign_membership_on_login  true, false, or empty: don't care
  show_as_button              true, false, or empty
  is_signup_enabled           true, false, or empty
  org_name, connection_name   stand for a missing org_id, connection_id: each
                              distinct name is looked up once before the plan
                              (a row giving both uses the id)

Every row is checked first; each problem is reported as "line N: field:
problem" and nothing is read or enqueued; so is every name the tenant does
not have ("line N: org_name: no organization named ..."). Then apply reads the current
connections of every organization in the file (one paged list each, from the
fleet's shared read budget) and prints the plan:

  + enable org/con (flags)                 the pair is not enabled
  ~ update org/con flag old → new, …       a flag the file gives differs
  - remove org/con                         only with --prune: an association of
                                           an organization in the file that the
                                           file does not list
  = N unchanged                            pairs already as the file says

Organizations absent from the file are never touched. Unless --dry-run, the
plan's changes are enqueued as one batch for the workers (like orgconn
import), with the state read recorded as each pair's prior state, so that
orgconn rollback BATCH can put it back. --plan-out writes the changes in the
import format (orgconn import can enqueue that file later).

Examples:
  orgconn export --all --out tenant.csv         # edit tenant.csv, then:
  orgconn apply --dry-run --prune tenant.csv
  orgconn apply --prune --batch acme-2026-12 --wait tenant.csv

Exit codes: 0 planned (and enqueued, unless --dry-run; with --wait: finished
without dead letters), 1 invalid rows, unknown names or unknown organizations (nothing
enqueued), 2 usage, 3 with --wait: finished with dead letters, 4 could not
finish (Redis or the API failed, or --wait timed out; safe to re-run).`

func runApply(ctx context.Context, e *env, args []string) int {
	f := newFlags(e, "apply", applySynopsis)
	q := f.withQueue()
	a := f.withAPI()
	run := f.withPlanRun("batch")
	dryRun, asJSON, parallel, wait, interval, timeout := run.dryRun, run.asJSON, run.parallel, run.wait, run.interval, run.timeout
	prune := f.Bool("prune", false, "also remove the associations of the file's organizations that the file does not list")
	batch := f.String("batch", "", "batch name, 1-64 of A-Z a-z 0-9 . _ - (default: apply-<file name>-<hash of the plan>)")
	planOut := f.String("plan-out", "", "write the plan's changes to this file in the import format")
	pos, code, ok := f.parseMixed(args)
	if !ok {
		return code
	}
	switch {
	case len(pos) != 1:
		return errorf(e, exitUsage, "apply: give exactly one DESIRED.csv; see orgconn apply --help")
	case run.problem("apply") != "":
		return errorf(e, exitUsage, "%s", run.problem("apply"))
	}
	path := pos[0]
	out := planOutput{DryRun: *dryRun, Changes: []stepJSON{}, Errors: []rowErrorJSON{}}
	wants, rowErrs, err := desired.ReadFile(path)
	if err != nil {
		return errorf(e, exitUnavailable, "apply: %v", err)
	}
	if len(rowErrs) > 0 {
		return out.invalid(e, "apply", rowErrs, *asJSON)
	}
	t, code := openTenant(ctx, e, "apply", q, a)
	if t == nil {
		return code
	}
	defer t.Close()
	start := time.Now()
	if desired.NeedsNames(wants) {
		names, err := producer.NewNameResolver(assembly.Directory{API: t.client.API}, producer.NameResolverConfig{})
		if err != nil {
			return out.fail(e, "apply", err, *asJSON)
		}
		wants, rowErrs, err = desired.Resolve(ctx, wants, names)
		if err != nil {
			return out.fail(e, "apply", err, *asJSON)
		}
		if len(rowErrs) > 0 {
			return out.invalid(e, "apply", rowErrs, *asJSON)
		}
	}
	current, unknown, err := t.readStates(ctx, e, desired.OrgsOf(wants), *parallel, *asJSON)
	if err != nil {
		return out.fail(e, "apply", err, *asJSON)
	}
	if errs := desired.UnknownOrgErrors(wants, unknown); len(errs) > 0 {
		return out.invalid(e, "apply", errs, *asJSON)
	}
	plan := desired.Diff(wants, current, *prune)
	out.Changes, out.Unchanged, out.ReadMS = toStepsJSON(plan), plan.Unchanged, time.Since(start).Milliseconds()
	if !*asJSON {
		_ = plan.Print(e.stdout)
	}
	if *planOut != "" {
		if err := writePlanFile(*planOut, plan); err != nil {
			return out.fail(e, "apply", err, *asJSON)
		}
	}
	if *dryRun || len(plan.Steps) == 0 {
		return out.done(e, *asJSON, nothingLine(*dryRun, len(plan.Steps)))
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if *batch == "" {
		*batch = plan.BatchName("apply-" + name)
	}
	out.Batch = *batch
	res, err := t.enqueuePlan(ctx, q, *batch, "apply-"+name+".csv", *planOut, plan)
	out.Enqueued = res.Enqueued + res.Repaired
	if err != nil {
		return out.fail(e, "apply", fmt.Errorf("%w; run the same command again to resume", err), *asJSON)
	}
	return out.finish(ctx, e, t, res, *wait, waitOptions{interval: *interval, timeout: *timeout, bar: !*asJSON && e.isTerminal(e.stdout)}, *asJSON, "apply")
}

// nothingLine says why nothing was enqueued.
func nothingLine(dryRun bool, steps int) string {
	if dryRun {
		return fmt.Sprintf("dry run: %d changes planned; nothing sent, nothing enqueued", steps)
	}
	return "nothing to change: nothing enqueued"
}

// planOutput is what apply and rollback print with --json, and the state
// they report from.
type planOutput struct {
	Batch     string         `json:"batch,omitempty"`
	DryRun    bool           `json:"dry_run"`
	Changes   []stepJSON     `json:"changes"`
	Unchanged int            `json:"unchanged"`
	Skipped   []skipJSON     `json:"skipped,omitempty"`
	Forced    []skipJSON     `json:"forced,omitempty"`
	Enqueued  int            `json:"enqueued"`
	ReadMS    int64          `json:"read_ms"`
	Errors    []rowErrorJSON `json:"errors"`
	Error     string         `json:"error,omitempty"`
	Status    *batchJSON     `json:"status,omitempty"`
}

// skipJSON is a pair rollback leaves alone, or forces.
type skipJSON struct {
	OrgID        string `json:"org_id"`
	ConnectionID string `json:"connection_id"`
	Reason       string `json:"reason"`
}

func (o *planOutput) invalid(e *env, cmd string, errs []producer.RowError, asJSON bool) int {
	if asJSON {
		o.Errors = toRowErrorsJSON(errs)
		writeJSON(e.stdout, o)
		return exitInvalid
	}
	for _, r := range errs {
		fmt.Fprintln(e.stderr, r.Error())
	}
	fmt.Fprintf(e.stdout, "%d problems: nothing enqueued\n", len(errs))
	return exitInvalid
}

func (o *planOutput) fail(e *env, cmd string, err error, asJSON bool) int {
	if asJSON {
		o.Error = err.Error()
		writeJSON(e.stdout, o)
		return exitUnavailable
	}
	return errorf(e, exitUnavailable, "%s: %v", cmd, err)
}

func (o *planOutput) done(e *env, asJSON bool, line string) int {
	if asJSON {
		writeJSON(e.stdout, o)
	} else {
		fmt.Fprintln(e.stdout, line)
	}
	return exitOK
}

// finish reports the enqueued batch and, with wait, waits for it.
func (o *planOutput) finish(ctx context.Context, e *env, t *tenantReader, res producer.Result, wait bool, wo waitOptions, asJSON bool, cmd string) int {
	if !asJSON {
		fmt.Fprintf(e.stdout, "batch %s: enqueued %d changes", o.Batch, o.Enqueued)
		if res.Duplicates > 0 {
			fmt.Fprintf(e.stdout, "; %d already accepted by an earlier run of this batch", res.Duplicates)
		}
		fmt.Fprintln(e.stdout)
	}
	if !wait {
		if asJSON {
			writeJSON(e.stdout, o)
		}
		return exitOK
	}
	bc, code := waitCounts(ctx, e, t.ledger, o.Batch, wo, cmd)
	if code != exitOK {
		return code
	}
	if asJSON {
		st := toJSON(bc)
		o.Status = &st
		writeJSON(e.stdout, o)
	} else {
		fmt.Fprintln(e.stdout, finishedLine(bc))
	}
	return finishedCode(bc)
}
