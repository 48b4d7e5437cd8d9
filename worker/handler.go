package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/apimode"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt"
)

// later is a handler result that puts the task back without spending an
// attempt: not its pair's turn yet, throttled, or the worker is stopping.
type later struct {
	reason string
	after  time.Duration
}

func (e *later) Error() string { return "not done yet: " + e.reason }

// failed is an attempt that failed in a way that may pass; it spends an
// attempt and is retried with back-off.
type failed struct{ outcome Outcome }

func (e *failed) Error() string { return e.outcome.String() }

// isFailure tells asynq which errors spend an attempt.
func isFailure(err error) bool {
	var l *later
	return !errors.As(err, &l)
}

// retryDelay tells asynq when to run a task again: a put-back task soon (with
// jitter), a failed one after exponential back-off with jitter.
func retryDelay(backoffBase, backoffMax time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		var l *later
		if errors.As(err, &l) {
			return jitter(l.after)
		}
		d := backoffBase << min(n, 20)
		if d <= 0 || d > backoffMax {
			d = backoffMax
		}
		return jitter(d)
	}
}

// jitter returns a duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// handler executes TypeChange tasks.
type handler struct {
	ledger      *ledger.Ledger
	api         API
	inspector   *asynq.Inspector
	queue       string
	maxAttempts int
	lease       time.Duration
	waitDelay   time.Duration // the first wait for an earlier change of the pair
	waitMax     time.Duration // the longest
	maxCrashes  int
	enqueue     func(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
	instance    string
	log         *slog.Logger
	now         func() time.Time
	observe     func(jobs.Action, Outcome) // for metrics and tests; may be nil
	apiMode     *apimode.Resolver          // the tenant's API mode (Config.APIMode); nil: legacy
	names       *nameCache                 // names given instead of ids, looked up once per fleet (names.go)
	state       *stateReader               // read mode, budget and the bound on a read's age
	// solo lets a change suspected of crashing its worker run alone: the
	// others hold it shared while they act.
	solo sync.RWMutex
}

// ProcessTask runs one delivery of a change task.
func (h *handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	p, err := jobs.DecodePayload(t.Payload())
	if err != nil {
		h.log.Error("task payload cannot be read; archived", "task_id", id, "err", err)
		h.report("", Outcome{Kind: Dead, Reason: ReasonBadPayload, Message: err.Error()})
		return fmt.Errorf("%s: %v: %w", ReasonBadPayload, err, asynq.SkipRetry)
	}
	c := p.Change
	log := h.log.With("task_id", id, "batch", p.Origin.Batch, "line", p.Origin.Line, "org_id", c.OrgID, "connection_id", c.ConnectionID, "action", string(c.Action))
	holder := id + "@" + h.instance + "/" + randomHex()

	cl, err := h.ledger.Claim(ctx, c, id, holder, h.lease)
	if err != nil {
		log.Warn("cannot claim the change; will try again", "err", err)
		return &later{reason: "ledger unavailable", after: 2 * time.Second}
	}
	switch cl.State {
	case ledger.Gone:
		log.Debug("change already resolved; repeated delivery ignored")
		return nil
	case ledger.NotHead, ledger.Leased:
		if cl.Check {
			h.checkHead(ctx, c, id, cl, log)
		}
		return &later{reason: "an earlier change to the same pair is pending", after: h.waitFor(cl.Waited)}
	}

	if cl.Successor != "" && jobs.Covers(cl.SuccessorShape, jobs.ShapeOf(c)) {
		if err := h.resolve(ctx, p, id, holder, ledger.Superseded, nil); err != nil {
			log.Warn("cannot record superseded change; will try again", "err", err)
			h.release(c, id, holder, log)
			return &later{reason: "ledger unavailable", after: 2 * time.Second}
		}
		log.Info("superseded", "by", cl.Successor)
		h.report(c.Action, Outcome{Kind: Done, Reason: ReasonSuperseded})
		return nil
	}

	// A change whose earlier claims never finished (its worker died) runs
	// alone in this process, so that a crash now is its own: it is
	// dead-lettered after maxCrashes crashes it caused, running alone.
	// Bystanders of another change's crash complete alone and go on. (The
	// 3× bound on crashes of any kind is a backstop.)
	if cl.Suspected >= h.maxCrashes || cl.Crashes >= 3*h.maxCrashes {
		o := Outcome{Kind: Dead, Reason: ReasonCrashedWorker,
			Message: fmt.Sprintf("the worker stopped while acting on this change %d times in a row (a crash, an OOM kill, a lost node); not tried again", cl.Crashes)}
		failedBefore, _ := asynq.GetRetryCount(ctx)
		dl := &ledger.DeadLetter{
			TaskID: id, Batch: p.Origin.Batch, Line: p.Origin.Line, Event: p.Origin.Event, Change: c,
			Reason: string(o.Reason), Message: o.Message, Attempts: failedBefore + cl.Crashes, At: h.now().UTC(),
		}
		if err := h.resolve(ctx, p, id, holder, ledger.Dead, dl); err != nil {
			log.Warn("cannot record dead letter; will try again", "err", err)
			h.release(c, id, holder, log)
			return &later{reason: "ledger unavailable", after: 2 * time.Second}
		}
		h.report(c.Action, o)
		log.Error("dead letter: the change crashed its worker every time", "reason", string(o.Reason), "crashes", cl.Crashes)
		return fmt.Errorf("%s: %w", o, asynq.SkipRetry)
	}
	stopRenewing := h.keepLease(ctx, c, holder, log)
	if cl.Crashes > 0 {
		h.solo.Lock()
		defer h.solo.Unlock()
		if err := h.ledger.MarkAlone(ctx, c, id); err != nil {
			log.Warn("cannot record that the change runs alone", "err", err)
		}
		log.Warn("the change's earlier deliveries never finished (their worker died): running it alone", "crashes", cl.Crashes)
	} else {
		h.solo.RLock()
		defer h.solo.RUnlock()
	}
	if crashHook != nil {
		crashHook(id, c)
	}

	wctx := mgmt.WithCorrelationID(ctx, id)
	var unchanged bool
	mode, why, merr := h.mode(wctx) // once per change: both paths depend on it
	if merr == nil && stateAware(c, mode) {
		unchanged, err = h.act(wctx, p, holder, log) // knows the pair's state when worth it (state.go)
	} else {
		err = h.executeIn(wctx, c, mode, why, merr) // names resolved, by API mode (connections.go)
	}
	stopRenewing()
	if lt := (*later)(nil); errors.As(err, &lt) {
		h.release(c, id, holder, log)
		return lt
	}
	if isLedgerError(err) {
		log.Warn("cannot record the write in the ledger; will try again", "err", err)
		h.release(c, id, holder, log)
		return &later{reason: "ledger unavailable", after: 2 * time.Second}
	}
	if unchanged {
		if err := h.resolve(ctx, p, id, holder, ledger.Unchanged, nil); err != nil {
			log.Warn("cannot record unchanged change; will try again", "err", err)
			h.release(c, id, holder, log)
			return &later{reason: "ledger unavailable", after: 2 * time.Second}
		}
		h.report(c.Action, Outcome{Kind: Done, Reason: ReasonUnchanged})
		log.Info("unchanged: the tenant already reflects the change; nothing written")
		return nil
	}
	o := Classify(err)
	attempt, _ := asynq.GetRetryCount(ctx)
	attempt++ // attempts so far, this one included
	if o.Kind == Retry && attempt >= h.maxAttempts {
		o = Outcome{Kind: Dead, Reason: ReasonExhausted, Status: o.Status, ErrorCode: o.ErrorCode,
			Message: fmt.Sprintf("%d attempts failed; last: %s: %s", attempt, o.Reason, o.Message)}
	}
	if o.Kind != Dead {
		h.report(c.Action, o) // a dead letter is reported once recorded
	}

	switch o.Kind {
	case Done:
		if err := h.resolve(ctx, p, id, holder, ledger.Applied, nil); err != nil {
			// Applied but not recorded: the next delivery applies it again,
			// which is harmless, then records it.
			log.Warn("applied but cannot record it; will repeat", "err", err)
			h.release(c, id, holder, log)
			return &later{reason: "ledger unavailable", after: 2 * time.Second}
		}
		log.Info("applied")
		return nil
	case Dead:
		dl := &ledger.DeadLetter{
			TaskID: id, Batch: p.Origin.Batch, Line: p.Origin.Line, Event: p.Origin.Event, Change: c,
			Reason: string(o.Reason), Status: o.Status, ErrorCode: o.ErrorCode, Message: o.Message,
			Attempts: attempt, At: h.now().UTC(),
		}
		if err := h.resolve(ctx, p, id, holder, ledger.Dead, dl); err != nil {
			log.Warn("cannot record dead letter; will try again", "err", err)
			h.release(c, id, holder, log)
			return &later{reason: "ledger unavailable", after: 2 * time.Second}
		}
		h.report(c.Action, o)
		log.Warn("dead letter", "status", o.Status, "reason", string(o.Reason), "message", o.Message, "attempts", attempt)
		return fmt.Errorf("%s: %w", o, asynq.SkipRetry)
	}

	h.release(c, id, holder, log)
	switch o.Kind {
	case Retry:
		log.Warn("attempt failed; will retry", "status", o.Status, "reason", string(o.Reason), "message", o.Message, "attempt", attempt, "max_attempts", h.maxAttempts)
		h.markRetry(ctx, p, id, attempt, o, log)
		return &failed{o}
	default: // Interrupted, or Throttled when the context ended while waiting
		log.Info("put back", "reason", string(o.Reason))
		return &later{reason: string(o.Reason), after: time.Second}
	}
}

// resolve records the outcome and wakes the pair's next change, which may be
// sleeping in the retry set after finding that it was not its turn.
func (h *handler) resolve(ctx context.Context, p jobs.Payload, id, holder string, o ledger.Outcome, dl *ledger.DeadLetter) error {
	// Record even if the task's context is ending: the API call is done.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	next, _, err := h.ledger.Resolve(ctx, p, id, holder, o, dl)
	if err != nil {
		return err
	}
	if next != "" && h.inspector != nil {
		h.wake(next)
	}
	return nil
}

// wake runs the pair's next change now if it is waiting in the retry set.
// When it is running (it may be finding out right now that it is not its
// turn, and about to go to the retry set for a while), wake tries again a
// few times in the background.
func (h *handler) wake(next string) {
	if !h.tryWake(next) {
		return
	}
	go func() {
		for d := 50 * time.Millisecond; d <= 800*time.Millisecond; d *= 2 {
			time.Sleep(d)
			if !h.tryWake(next) {
				return
			}
		}
	}()
}

// tryWake moves next from the retry or scheduled set to pending; it reports
// whether to try again (next is running).
func (h *handler) tryWake(next string) (again bool) {
	err := h.inspector.RunTask(h.queue, next)
	return err != nil && strings.Contains(err.Error(), "already running")
}

// waitFor is how long a change waits before it looks again when its pair
// has waited for the head for waited: about as long again (so the waits
// double), at least waitDelay and at most waitMax. It is also woken as soon
// as the head resolves.
func (h *handler) waitFor(waited time.Duration) time.Duration {
	return min(max(waited, h.waitDelay), h.waitMax)
}

// markRetry records the failed attempt in the ledger, where status and
// report count the line as retrying. It is best effort: the retry happens
// whether or not the record is written.
func (h *handler) markRetry(ctx context.Context, p jobs.Payload, id string, attempt int, o Outcome, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	f := ledger.Failure{Failed: attempt, Reason: string(o.Reason), Status: o.Status, ErrorCode: o.ErrorCode, Message: o.Message, At: h.now().UTC()}
	if _, err := h.ledger.MarkRetry(ctx, p, id, f); err != nil {
		log.Warn("cannot record the failed attempt; status will not count it as retrying", "err", err)
	}
}

func (h *handler) release(c jobs.Change, id, holder string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.ledger.Release(ctx, c, id, holder); err != nil {
		log.Warn("cannot release the pair lease; it expires by itself", "err", err)
	}
}

// keepLease renews the pair lease until the returned function is called.
func (h *handler) keepLease(ctx context.Context, c jobs.Change, holder string, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(h.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.lease/3)
				ok, err := h.ledger.Extend(rctx, c, holder, h.lease)
				cancel()
				if err == nil && !ok {
					log.Error("pair lease lost while working on the change: another delivery may act on the pair")
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (h *handler) report(a jobs.Action, o Outcome) {
	if h.observe != nil {
		h.observe(a, o)
	}
}

// randomHex returns 8 random hex digits: enough to tell two deliveries of
// one task apart in a lease.
func randomHex() string { return fmt.Sprintf("%08x", rand.Uint32()) }
