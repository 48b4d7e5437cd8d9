package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/cmd/orgconn/internal/assembly"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/producer/autopipe"
	"github.com/orgconn/orgconn/producer/desired"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/redis/go-redis/v9"
)

// What apply and rollback share: a paced client that reads the tenant, the
// plan printed or written as JSON, and the plan enqueued through the import
// path.

// tenantReader is a paced client with its Redis and ledger.
type tenantReader struct {
	rdb    redis.UniversalClient
	ledger *ledger.Ledger
	client *assembly.Client
}

func (t *tenantReader) Close() {
	if t.client != nil {
		t.client.Close()
	}
	t.rdb.Close()
}

// openTenant connects to Redis and builds the paced client; code is the
// exit code of a failure (already reported).
func openTenant(ctx context.Context, e *env, cmd string, q *queueFlags, a *apiFlags) (*tenantReader, int) {
	start, err := a.startBuckets()
	if err != nil {
		return nil, errorf(e, exitUsage, "%s: %v", cmd, err)
	}
	base, tokens, err := a.credentials(e)
	if err != nil {
		return nil, errorf(e, exitUsage, "%s: %v", cmd, err)
	}
	rdb, l, err := q.open(ctx)
	if err != nil {
		return nil, errorf(e, exitUnavailable, "%s: %v", cmd, err)
	}
	t := &tenantReader{rdb: rdb, ledger: l}
	t.client, err = assembly.NewClient(ctx, assembly.Config{
		Redis: rdb, Ledger: l, BaseURL: base, Tokens: tokens, Start: start, Override: a.overrides(),
		APITimeout: a.timeout, UserAgent: userAgent(), Logger: quietLogger(e),
	})
	if err != nil {
		rdb.Close()
		return nil, errorf(e, exitUnavailable, "%s: %v", cmd, err)
	}
	return t, exitOK
}

// readStates reads the organizations' states, showing progress on stderr
// unless quiet.
func (t *tenantReader) readStates(ctx context.Context, e *env, orgs []string, parallel int, quiet bool) (desired.State, map[string]bool, error) {
	var (
		mu   sync.Mutex
		last time.Time
	)
	startAt := time.Now()
	progress := func(done, total int) {
		if quiet {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if done == total || time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(e.stderr, "read %d of %d organizations (%v)\n", done, total, time.Since(startAt).Round(time.Millisecond))
		}
	}
	return desired.ReadStates(ctx, t.client, orgs, parallel, progress)
}

// stepJSON is one change of a plan in --json outputs.
type stepJSON struct {
	Op           string          `json:"op"` // enable, update or remove
	Line         int             `json:"line,omitempty"`
	OrgID        string          `json:"org_id"`
	ConnectionID string          `json:"connection_id"`
	Flags        map[string]bool `json:"flags,omitempty"`
	Before       stateJSON       `json:"before"`
}

// stateJSON is a pair's state in --json outputs.
type stateJSON struct {
	Present                 bool  `json:"present"`
	AssignMembershipOnLogin *bool `json:"assign_membership_on_login,omitempty"`
	ShowAsButton            *bool `json:"show_as_button,omitempty"`
	IsSignupEnabled         *bool `json:"is_signup_enabled,omitempty"`
}

func toStateJSON(s jobs.PairState) stateJSON {
	if !s.Present {
		return stateJSON{}
	}
	a, b, c := s.AssignMembershipOnLogin, s.ShowAsButton, s.IsSignupEnabled
	return stateJSON{Present: true, AssignMembershipOnLogin: &a, ShowAsButton: &b, IsSignupEnabled: &c}
}

func toStepsJSON(p desired.Plan) []stepJSON {
	out := []stepJSON{}
	for _, s := range p.Steps {
		j := stepJSON{Op: string(s.Change.Action), Line: s.Line, OrgID: s.Change.OrgID, ConnectionID: s.Change.ConnectionID, Before: toStateJSON(s.Before)}
		for _, f := range s.Change.Flags() {
			if f.Value.Set() {
				if j.Flags == nil {
					j.Flags = map[string]bool{}
				}
				j.Flags[f.Name] = f.Value.Bool()
			}
		}
		out = append(out, j)
	}
	return out
}

// rowErrorJSON is a line's problem in --json outputs.
type rowErrorJSON struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Problem string `json:"problem"`
}

func toRowErrorsJSON(errs []producer.RowError) []rowErrorJSON {
	out := []rowErrorJSON{}
	for _, r := range errs {
		out = append(out, rowErrorJSON{r.Line, r.Field, r.Problem})
	}
	return out
}

// writePlanFile writes the plan's changes in the import format to path.
func writePlanFile(path string, p desired.Plan) error {
	if err := os.WriteFile(path, p.CSV(), 0o600); err != nil {
		return fmt.Errorf("write the plan: %w", err)
	}
	return nil
}

// enqueuePlan records what the batch's workers and its rollback need, then
// imports the plan's changes as batch through the import path. planPath, if
// not empty, is where the plan was written already (--plan-out); else the
// plan goes through a temporary file named name.
func (t *tenantReader) enqueuePlan(ctx context.Context, q *queueFlags, batch, name, planPath string, p desired.Plan) (producer.Result, error) {
	if planPath == "" {
		dir, err := os.MkdirTemp("", "orgconn-plan-*")
		if err != nil {
			return producer.Result{}, err
		}
		defer os.RemoveAll(dir)
		planPath = filepath.Join(dir, name)
		if err := writePlanFile(planPath, p); err != nil {
			return producer.Result{}, err
		}
	}
	if err := desired.CheckResume(ctx, t.ledger, batch, p); err != nil {
		return producer.Result{}, err
	}
	if err := desired.Prepare(ctx, t.ledger, batch, p); err != nil {
		return producer.Result{}, err
	}
	autopipe.Install(t.rdb)
	client := asynq.NewClientFromRedisClient(t.rdb)
	defer client.Close()
	im, err := producer.NewImporter(producer.Config{Ledger: t.ledger, Queue: client, QueueName: q.queue})
	if err != nil {
		return producer.Result{}, err
	}
	res, err := im.ImportFile(ctx, planPath, producer.Options{Batch: batch})
	if err == nil && (res.Invalid > 0 || res.Rejected) {
		// The plan is made of valid changes; an invalid one is a bug.
		err = fmt.Errorf("the plan holds %d changes the import refuses: %v", res.Invalid, res.Errors)
	}
	return res, err
}

// quietLogger logs warnings and errors of the limiter and client on stderr.
func quietLogger(e *env) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// planRun holds the flags apply and rollback share: a dry run, JSON output,
// how many organizations are read at once, and waiting for the batch.
type planRun struct {
	dryRun, asJSON, wait *bool
	parallel             *int
	interval, timeout    *time.Duration
}

// withPlanRun declares the flags of planRun; what names what the batch
// brings back in --wait's help ("batch", "rollback batch").
func (f *flags) withPlanRun(what string) planRun {
	return planRun{
		dryRun:   f.Bool("dry-run", false, "read and print the plan only: send no write, enqueue nothing"),
		asJSON:   f.Bool("json", false, "print the plan and the result as JSON on stdout"),
		parallel: f.Int("parallel", 4, "organizations read at once (the fleet's read budget paces them)"),
		wait:     f.Bool("wait", false, "after enqueueing, wait until the "+what+" is finished; exit 0 if nothing was dead-lettered, else 3"),
		interval: f.Duration("interval", 2*time.Second, "with --wait: how often to read and show progress"),
		timeout:  f.Duration("timeout", 0, "with --wait: give up waiting after this long (exit 4); 0 waits as long as it takes"),
	}
}

// problem returns what is wrong with the flags, for a usage error of cmd,
// or "".
func (r planRun) problem(cmd string) string {
	switch {
	case *r.wait && (*r.dryRun || *r.interval <= 0 || *r.timeout < 0):
		return cmd + ": --wait needs a positive --interval, a --timeout not negative, and no --dry-run"
	case *r.parallel < 1:
		return fmt.Sprintf("%s: --parallel %d: want 1 or more", cmd, *r.parallel)
	}
	return ""
}
