package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
)

// Accepter records the lines of a batch before their tasks are enqueued:
// each line at most once, in the order given, which fixes its place in its
// pair's order. *ledger.Ledger (worker/ledger) is the implementation; cmd
// wires it in.
type Accepter interface {
	// Accept records rows (at most jobs.MaxAcceptRows) of batch, which
	// source describes ("csv:users.csv", "webhook"), and says per row what
	// it did. Accepting a row again is harmless: it answers
	// jobs.StillPending or jobs.Resolved.
	Accept(ctx context.Context, batch, source string, rows []jobs.Row) ([]jobs.Acceptance, error)
}

// Enqueuer is the part of *asynq.Client the producer uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Retry is the retry policy of the producer's Redis calls (ledger accepts
// and enqueues): Redis restarting or failing over must not end an import or
// fail a webhook request that could wait. A call that fails is tried again
// after Wait, then after waits that double up to MaxWait, until it
// succeeds, fails for good, its context ends or For has passed since its
// first failure.
//
// Every error of a Redis call is worth retrying except a task id conflict
// (the task exists) and the end of the context: a connection refused or
// reset while Redis restarts, a LOADING reply while it reads its append-only
// file, a failover. Retrying an Accept or an enqueue whose answer was lost
// is safe: the ledger answers jobs.StillPending and asynq answers
// asynq.ErrTaskIDConflict.
type Retry struct {
	// For is how long a failing call is retried, counted from its first
	// failure. Zero means 1 min; negative means no retry.
	For time.Duration
	// Wait is the wait before the first retry. Zero means 50 ms.
	Wait time.Duration
	// MaxWait bounds the waits. Zero means 2 s.
	MaxWait time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.For == 0 {
		r.For = time.Minute
	}
	if r.Wait <= 0 {
		r.Wait = 50 * time.Millisecond
	}
	if r.MaxWait <= 0 {
		r.MaxWait = 2 * time.Second
	}
	return r
}

// do calls fn until it succeeds or the policy gives up, and returns fn's
// last error. r has its defaults.
func (r Retry) do(ctx context.Context, fn func() error) error {
	var deadline time.Time
	wait := r.Wait
	for {
		err := fn()
		if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) || ctx.Err() != nil || r.For < 0 {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(r.For)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%w (retried for %v)", err, r.For)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, r.MaxWait)
	}
}

// newTask returns the asynq task of the change c at origin o and the
// options that put it in queue: type, payload, id and retry limit as
// jobs.TaskOf says (the worker's requeue makes the same task).
func newTask(c jobs.Change, o jobs.Origin, queue string) (*asynq.Task, []asynq.Option, error) {
	t, err := jobs.TaskOf(c, o)
	if err != nil {
		return nil, nil, err
	}
	return asynq.NewTask(t.Type, t.Payload), []asynq.Option{
		asynq.Queue(queue),
		asynq.TaskID(t.ID),
		asynq.MaxRetry(t.MaxRetry),
	}, nil
}

// enqueues is the one enqueue path of the producer: it puts the tasks of
// the changes handed to it in one queue, with at most a fixed number of
// calls in flight, each call retried under a Retry; a task that exists
// already (asynq.ErrTaskIDConflict) counts as queued before. It stops at the
// first call that fails for good: its context is then cancelled with that
// failure as the cause, so that the caller's own Redis calls stop too.
type enqueues struct {
	// ctx ends when the enqueues stop: a call failed for good (its cause
	// says which), the parent context ended, or wait returned.
	ctx    context.Context
	cancel context.CancelCauseFunc
	queue  Enqueuer
	name   string
	retry  Retry
	work   chan enqueue
	wg     sync.WaitGroup
}

// enqueue is one change handed to enqueues.
type enqueue struct {
	change jobs.Change
	origin jobs.Origin
	queued *atomic.Int64 // counts the task when it is new; may be nil
}

// startEnqueues starts limit goroutines (at least one) that enqueue the
// changes add hands over into the asynq queue named name; up to backlog
// changes may wait for one. The caller must call wait.
func startEnqueues(ctx context.Context, q Enqueuer, name string, limit, backlog int, retry Retry) *enqueues {
	ctx, cancel := context.WithCancelCause(ctx)
	e := &enqueues{ctx: ctx, cancel: cancel, queue: q, name: name, retry: retry.withDefaults(), work: make(chan enqueue, max(backlog, 0))}
	for range max(limit, 1) {
		e.wg.Add(1)
		go e.run()
	}
	return e
}

func (e *enqueues) run() {
	defer e.wg.Done()
	for j := range e.work {
		if e.ctx.Err() != nil {
			continue // stopped: drain
		}
		task, opts, err := newTask(j.change, j.origin, e.name)
		if err == nil {
			err = e.retry.do(e.ctx, func() error {
				_, err := e.queue.EnqueueContext(e.ctx, task, opts...)
				return err
			})
		}
		switch {
		case err == nil:
			if j.queued != nil {
				j.queued.Add(1)
			}
		case errors.Is(err, asynq.ErrTaskIDConflict):
			// Queued before: nothing new.
		default:
			e.cancel(fmt.Errorf("enqueue line %d: %w", j.origin.Line, err))
		}
	}
}

// add hands over the change c at origin o, waiting while the backlog is
// full. queued, if not nil, counts its task once it is queued, unless it
// was queued before. Once the enqueues have stopped, add returns the cause.
func (e *enqueues) add(c jobs.Change, o jobs.Origin, queued *atomic.Int64) error {
	if e.ctx.Err() != nil {
		return context.Cause(e.ctx)
	}
	select {
	case e.work <- enqueue{change: c, origin: o, queued: queued}:
		return nil
	case <-e.ctx.Done():
		return context.Cause(e.ctx)
	}
}

// wait waits for the changes handed over and returns why the enqueues
// stopped early (the first call that failed for good, or the parent
// context's cause), or nil. add must not be called after wait.
func (e *enqueues) wait() error {
	close(e.work)
	e.wg.Wait()
	err := context.Cause(e.ctx)
	e.cancel(nil)
	return err
}
