package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/changetask"
	"github.com/orgconn/orgconn/worker/ledger"
)

// Blocked pairs.
//
// A change whose pair's head is pending waits: it goes back to asynq's retry
// set (no attempt spent) for about as long as the pair has waited so far,
// between Config.WaitDelay and Config.WaitDelayMax, and the head wakes it
// when it resolves. The waits grow, so a pair whose head takes long (a
// retrying head, a dead worker's lease) costs a few deliveries a minute.
//
// A head can also have lost its task: an import cut between the ledger's
// write and the enqueue, a Redis failover that lost the last writes, a task
// deleted by hand. Nothing would ever resolve it, and its pair would wait
// forever. So once a pair has waited ledger.BlockedAfter for one head, one
// of its waiting changes per BlockedAfter checks the head's task in asynq
// (checkHead): a head without a task — or whose task asynq archived while
// the ledger still has it pending — is enqueued again from the ledger's
// record, under its own task id (asynq refuses a second task with the same
// id, so it cannot run twice), and the repair is logged. What the check
// found is recorded with the pair (ledger.MarkBlocked), for orgconn status.
//
// A head that lost its task while no later change of its pair waits blocks
// nothing but its batch, which then never finishes. So every
// stalledSweepEvery one worker of the fleet looks at the recent batches that
// have pending lines and have not moved for stalledAfter, and enqueues again
// those of their pending lines that are their pair's head and have no task
// (sweepStalled).
const (
	stalledAfter      = 30 * time.Second
	stalledSweepEvery = 30 * time.Second
	// stalledBatches and stalledLines bound one sweep.
	stalledBatches = 50
	stalledLines   = 2000
)

// sweepStalled enqueues again the heads without a task among the pending
// lines of stalled batches; it returns how many it enqueued.
func (h *handler) sweepStalled(ctx context.Context) (int, error) {
	if ok, err := h.ledger.Turn(ctx, "stalled-sweep", stalledSweepEvery); err != nil || !ok {
		return 0, err
	}
	batches, err := h.ledger.Stalled(ctx, stalledAfter, stalledBatches)
	if err != nil {
		return 0, err
	}
	repaired := 0
	for _, b := range batches {
		lines, err := h.ledger.PendingLines(ctx, b, stalledLines)
		if err != nil {
			return repaired, err
		}
		for _, ln := range lines {
			if !ln.Known {
				continue
			}
			id := jobs.TaskID(b, ln.Line)
			ps, err := h.ledger.Pair(ctx, ln.Change)
			if err != nil {
				return repaired, err
			}
			if len(ps.Queue) == 0 || ps.Queue[0] != id {
				continue // not its turn: the pair's head decides
			}
			log := h.log.With("task_id", id, "batch", b, "line", ln.Line, "org_id", ln.Change.OrgID, "connection_id", ln.Change.ConnectionID)
			if state := h.headTask(ctx, ln.Change, id, 0, log); strings.HasSuffix(state, "re-enqueued") {
				repaired++
			}
		}
	}
	return repaired, nil
}

// checkHead makes sure the head the pair of c waits for has a task,
// re-enqueueing it from the ledger if not, and records the pair as blocked.
func (h *handler) checkHead(ctx context.Context, c jobs.Change, waiter string, cl ledger.Claim, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	hlog := h.log.With("task_id", cl.Head, "org_id", c.OrgID, "connection_id", c.ConnectionID, "waiting", waiter)
	state := h.headTask(ctx, c, cl.Head, cl.Waited, hlog)
	b := ledger.BlockedPair{
		OrgID: c.OrgID, ConnectionID: c.ConnectionID, Head: cl.Head,
		OrgName: nameOnly(c.OrgID, c.OrgName), ConnectionName: nameOnly(c.ConnectionID, c.ConnectionName),
		Since: h.now().Add(-cl.Waited).UTC(), HeadState: state, Checked: h.now().UTC(), Waiter: waiter,
	}
	if _, err := h.ledger.MarkBlocked(ctx, b); err != nil {
		log.Debug("cannot record the blocked pair", "err", err)
	}
	log.Info("pair waits for its head", "head", cl.Head, "waited", cl.Waited.Round(time.Second), "head_state", state)
}

// headTask finds the head's task and says what it is doing; a head that has
// no task is enqueued again.
func (h *handler) headTask(ctx context.Context, c jobs.Change, head string, waited time.Duration, log *slog.Logger) string {
	if h.inspector == nil {
		return "unknown"
	}
	info, err := h.inspector.GetTaskInfo(h.queue, head)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return h.repairHead(ctx, c, head, "no task in the queue", waited, log)
	case err != nil:
		return "unknown (" + err.Error() + ")"
	}
	switch info.State {
	case asynq.TaskStateArchived, asynq.TaskStateCompleted:
		// The ledger has it pending, so no worker resolved it: its task
		// was archived or completed some other way (by hand, an old
		// version). Run it again.
		if err := h.inspector.DeleteTask(h.queue, head); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return fmt.Sprintf("its task is %s and cannot be deleted to enqueue it again (%v)", info.State, err)
		}
		return h.repairHead(ctx, c, head, "its task was "+info.State.String(), waited, log)
	case asynq.TaskStateActive:
		return "running"
	case asynq.TaskStateRetry:
		s := fmt.Sprintf("retrying, next at %s", info.NextProcessAt.UTC().Format(time.RFC3339))
		if info.LastErr != "" {
			s += ", last: " + info.LastErr
		}
		return s
	case asynq.TaskStateScheduled:
		return "scheduled at " + info.NextProcessAt.UTC().Format(time.RFC3339)
	default:
		return "queued"
	}
}

// repairHead enqueues the head again from the ledger's record of its line,
// if the head is still pending. It returns the head's state for status.
func (h *handler) repairHead(ctx context.Context, c jobs.Change, head, why string, waited time.Duration, log *slog.Logger) string {
	batch, line, err := jobs.ParseTaskID(head)
	if err != nil {
		log.Error("the pair's head has no task and its id cannot be read; its pair stays blocked", "err", err)
		return "lost, cannot be re-enqueued: " + err.Error()
	}
	lines, err := h.ledger.Lines(ctx, batch, line, line)
	if err != nil {
		return "lost, not re-enqueued yet: " + err.Error()
	}
	if len(lines) != 1 || !lines[0].Known || lines[0].Outcome.Resolved() {
		if len(lines) == 1 && lines[0].Outcome.Resolved() {
			return "resolved" // it resolved since the claim; nothing to do
		}
		log.Error("the pair's head has no task and the ledger does not keep its change; its pair stays blocked until the line is imported again or the head is resolved by hand")
		return "lost, cannot be re-enqueued: the ledger does not keep its change"
	}
	ln := lines[0]
	if ln.Change.OrgID != c.OrgID || ln.Change.ConnectionID != c.ConnectionID {
		return "unknown (the ledger's record of the head is for another pair)"
	}
	ps, err := h.ledger.Pair(ctx, c)
	if err != nil {
		return "lost, not re-enqueued yet: " + err.Error()
	}
	if len(ps.Queue) == 0 || ps.Queue[0] != head {
		return "resolved"
	}
	o := jobs.Origin{Batch: batch, Line: line}
	if ln.Dead != nil {
		o.Event = ln.Dead.Event // a requeued dead letter keeps its event id
	}
	task, opts, err := changetask.New(ln.Change, o, h.queue)
	if err != nil {
		return "lost, cannot be re-enqueued: " + err.Error()
	}
	switch _, err := h.enqueue(ctx, task, opts...); {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return "queued" // another worker (or an import) enqueued it meanwhile
	case err != nil:
		log.Warn("the pair's head has no task; cannot enqueue it again yet", "why", why, "err", err)
		return "lost, not re-enqueued yet: " + err.Error()
	}
	if waited > 0 {
		log = log.With("waited", waited.Round(time.Second))
	}
	log.Warn("repaired a lost task: enqueued its pair's head again from the ledger", "why", why)
	return "lost (" + why + "), re-enqueued"
}

// nameOnly returns name when the side has no id (its pair key is by name),
// else "".
func nameOnly(id, name string) string {
	if id != "" {
		return ""
	}
	return name
}
