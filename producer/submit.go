package producer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/orgconn/orgconn/jobs"
)

// MaxSubmitChanges bounds one Submission.
const MaxSubmitChanges = 10_000

// SubmitConfig configures a Submitter. Ledger and Queue are required.
type SubmitConfig struct {
	// Ledger records each accepted change once and fixes its place in its
	// pair's order.
	Ledger Accepter
	// Queue receives one task per accepted change.
	Queue Enqueuer
	// QueueName is the asynq queue. Empty means "orgconn".
	QueueName string
	// Concurrency is how many enqueue calls are in flight at once. Zero
	// means 8.
	Concurrency int
	// Retry is how the Redis calls of a Submit (ledger accepts and
	// enqueues) are retried; the caller's context bounds it too (a webhook
	// request's timeout). The zero value retries for 1 min, with waits from
	// 50 ms to 2 s.
	Retry Retry
}

// Submission is a small list of changes submitted as one batch: a webhook
// request or the changes one Auth0 event calls for.
type Submission struct {
	// Batch names the batch; it must pass jobs.CheckBatch. Submitting the
	// same batch again accepts nothing twice.
	Batch string
	// Source describes the batch in the ledger: "webhook" or
	// "event:<type>".
	Source string
	// Event is the CloudEvent id of an event-made batch, copied into every
	// task's origin; empty for other batches.
	Event string
	// Changes are the batch's lines: Changes[i] is line i+1. Every change
	// must be valid (jobs.Change.Validate); the caller validates first.
	Changes []jobs.Change
}

// Receipt is what a Submit did.
type Receipt struct {
	// Batch is the submission's batch.
	Batch string
	// TaskIDs are the task ids of lines 1..N, in order, whether accepted by
	// this call or an earlier one.
	TaskIDs []string
	// Accepted counts the lines newly accepted by this call.
	Accepted int
	// Repeated counts the lines accepted by an earlier submission of the
	// same batch (still pending or already resolved).
	Repeated int
	// Enqueued counts the tasks this call put in the queue: the newly
	// accepted lines, and pending lines whose task had gone missing.
	Enqueued int
}

// Submitter accepts small lists of validated changes as one batch and
// enqueues them. Safe for concurrent use.
//
// Submit is all or nothing from the caller's point of view: it refuses a
// submission holding any invalid change before touching Redis, and when
// Redis fails midway it returns an error after which submitting the same
// batch again completes the work without duplicates (the ledger records each
// line once; task ids are deterministic).
type Submitter struct{ cfg SubmitConfig }

// NewSubmitter returns a Submitter.
func NewSubmitter(cfg SubmitConfig) (*Submitter, error) {
	if cfg.Ledger == nil || cfg.Queue == nil {
		return nil, errors.New("producer: SubmitConfig.Ledger and SubmitConfig.Queue are required")
	}
	if cfg.QueueName == "" {
		cfg.QueueName = "orgconn"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	cfg.Retry = cfg.Retry.withDefaults()
	return &Submitter{cfg: cfg}, nil
}

// Submit accepts the submission's changes in the ledger as lines 1..N of its
// batch and enqueues a task for every line that is newly accepted or still
// pending, tolerating tasks that already exist. An error for an invalid
// submission is returned before anything is written; any other error means
// the same submission should be made again.
func (s *Submitter) Submit(ctx context.Context, sub Submission) (Receipt, error) {
	if err := sub.check(); err != nil {
		return Receipt{}, err
	}
	rec := Receipt{Batch: sub.Batch, TaskIDs: make([]string, len(sub.Changes))}
	rows := make([]jobs.Row, len(sub.Changes))
	for i, c := range sub.Changes {
		rows[i] = jobs.Row{Line: i + 1, Change: c}
		rec.TaskIDs[i] = jobs.TaskID(sub.Batch, i+1)
	}
	var todo []jobs.Row
	for start := 0; start < len(rows); start += jobs.MaxAcceptRows {
		chunk := rows[start:min(start+jobs.MaxAcceptRows, len(rows))]
		var acc []jobs.Acceptance
		err := s.cfg.Retry.do(ctx, func() (err error) {
			acc, err = s.cfg.Ledger.Accept(ctx, sub.Batch, sub.Source, chunk)
			return err
		})
		if err != nil {
			return rec, fmt.Errorf("submit batch %s: %w; submit it again to resume", sub.Batch, err)
		}
		for i, a := range acc {
			switch a {
			case jobs.Accepted:
				rec.Accepted++
				todo = append(todo, chunk[i])
			case jobs.StillPending:
				rec.Repeated++
				todo = append(todo, chunk[i])
			default:
				rec.Repeated++
			}
		}
	}
	n, err := s.enqueue(ctx, sub, todo)
	rec.Enqueued = n
	if err != nil {
		return rec, fmt.Errorf("submit batch %s: %w; submit it again to resume", sub.Batch, err)
	}
	return rec, nil
}

// check refuses a submission that can never succeed.
func (sub Submission) check() error {
	if err := jobs.CheckBatch(sub.Batch); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	if sub.Source == "" {
		return fmt.Errorf("submit batch %s: Source is empty", sub.Batch)
	}
	if len(sub.Changes) == 0 {
		return fmt.Errorf("submit batch %s: no changes", sub.Batch)
	}
	if len(sub.Changes) > MaxSubmitChanges {
		return fmt.Errorf("submit batch %s: %d changes, the limit is %d", sub.Batch, len(sub.Changes), MaxSubmitChanges)
	}
	for i, c := range sub.Changes {
		if errs := c.Validate(); len(errs) > 0 {
			return fmt.Errorf("submit batch %s: line %d: %v", sub.Batch, i+1, errs[0])
		}
	}
	return nil
}

// enqueue enqueues the rows' tasks with Concurrency calls in flight and
// returns how many were new. It stops at the first failure.
func (s *Submitter) enqueue(ctx context.Context, sub Submission, rows []jobs.Row) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	enq := startEnqueues(ctx, s.cfg.Queue, s.cfg.QueueName, min(s.cfg.Concurrency, len(rows)), 0, s.cfg.Retry)
	var n atomic.Int64
	for _, r := range rows {
		if enq.add(r.Change, jobs.Origin{Batch: sub.Batch, Line: r.Line, Event: sub.Event}, &n) != nil {
			break
		}
	}
	err := enq.wait()
	return int(n.Load()), err
}

// ChangeProblem is a problem of the change at Index of a list.
type ChangeProblem struct {
	Index   int
	Field   string // the field, or "" for the change as a whole
	Problem string
}

// AdmitChanges checks a list of valid changes against the tenant before they
// are submitted, as an import checks its rows: in ModeLegacy each change
// that needs the Organization connections API is refused (see
// RefusedInMode, with hint); with a resolver, every name given without its
// id is looked up (each distinct name once per call) and set in place as the
// id, and an unknown name is a problem ("no organization named …"). It
// returns every problem; the changes may be submitted only when there is
// none. An error means a look-up failed: nothing should be submitted, and
// the same request may be made again.
func AdmitChanges(ctx context.Context, changes []jobs.Change, mode APIMode, hint string, res Resolver) ([]ChangeProblem, error) {
	var out []ChangeProblem
	var names *NameLookups
	if res != nil {
		names = NewNameLookups(res)
	}
	for i := range changes {
		c := &changes[i]
		if p := RefusedInMode(*c, mode, hint); p != "" {
			out = append(out, ChangeProblem{Index: i, Problem: p})
		}
		if res == nil {
			continue
		}
		if c.OrgID == "" && c.OrgName != "" {
			id, found, err := names.Look(ctx, KindOrganization, c.OrgName)
			if err != nil {
				return nil, err
			}
			if !found {
				out = append(out, ChangeProblem{Index: i, Field: jobs.FieldOrgName, Problem: fmt.Sprintf("no organization named %q", c.OrgName)})
			}
			c.OrgID = id
		}
		if c.ConnectionID == "" && c.ConnectionName != "" {
			id, found, err := names.Look(ctx, KindConnection, c.ConnectionName)
			if err != nil {
				return nil, err
			}
			if !found {
				out = append(out, ChangeProblem{Index: i, Field: jobs.FieldConnectionName, Problem: fmt.Sprintf("no connection named %q", c.ConnectionName)})
			}
			c.ConnectionID = id
		}
	}
	return out, nil
}
