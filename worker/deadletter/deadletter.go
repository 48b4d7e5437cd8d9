// Package deadletter operates on the ledger's dead letters: it lists them,
// requeues them with a fresh attempt budget, exports them as an import file
// and purges them.
//
// The ledger's dead letter is the source of truth. asynq archives the same
// tasks, but its archive keeps at most 10,000 tasks for at most 90 days and
// drops the oldest silently; the ledger keeps a dead letter as long as its
// batch's record, and a purge is an explicit command that leaves the line
// counted as dead. Requeue and purge keep asynq's archive in step (the
// archived task is deleted) but never depend on it.
//
// Requeue goes through the ledger so that a pair's order holds: a dead
// letter is requeued only while it is still its pair's latest accepted
// change (see ledger.Ledger.Requeue); otherwise it is refused, naming the
// later change, unless forced.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/changetask"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/redis/go-redis/v9"
)

// Config configures a Manager. Redis and Ledger are required.
type Config struct {
	// Redis holds the queue and the ledger.
	Redis redis.UniversalClient
	// Ledger is the record of accepted changes and their dead letters.
	Ledger *ledger.Ledger
	// Queue is the asynq queue requeued changes go to. Empty means
	// "orgconn".
	Queue string
	// Now is the clock for requeue times. Nil means time.Now.
	Now func() time.Time
}

// Manager lists, requeues and purges dead letters. Safe for concurrent use.
type Manager struct {
	cfg    Config
	insp   *asynq.Inspector
	client *asynq.Client
}

// New returns a Manager; Close releases it.
func New(cfg Config) (*Manager, error) {
	if cfg.Redis == nil || cfg.Ledger == nil {
		return nil, errors.New("deadletter: Config.Redis and Config.Ledger are required")
	}
	if cfg.Queue == "" {
		cfg.Queue = "orgconn"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg, insp: asynq.NewInspectorFromRedisClient(cfg.Redis), client: asynq.NewClientFromRedisClient(cfg.Redis)}, nil
}

// Close releases the Manager's asynq handles (not the Redis client).
func (m *Manager) Close() error { return m.client.Close() }

// Entry is one dead letter with where its batch came from.
type Entry struct {
	ledger.DeadLetter
	// Source is the batch's source: "csv:<file>", "webhook" or
	// "event:<type>".
	Source string `json:"source"`
}

// ID is the dead letter's id, its task id "<batch>:<line>".
func (e Entry) ID() string { return jobs.TaskID(e.Batch, e.Line) }

// Requeued reports whether the line is pending again after a requeue.
func (e Entry) Requeued() bool { return e.RequeuedAt != nil }

// Origin describes where the change came from: the batch's source, and the
// Auth0 event id for event-made changes.
func (e Entry) Origin() string {
	if e.Event != "" {
		return e.Source + " event " + e.Event
	}
	return e.Source
}

// Selection picks dead letters: every one (All), one batch's (Batch), or
// by id (IDs, "<batch>:<line>"). Exactly one must be given.
type Selection struct {
	All   bool
	Batch string
	IDs   []string
}

func (s Selection) check() error {
	n := 0
	if s.All {
		n++
	}
	if s.Batch != "" {
		n++
	}
	if len(s.IDs) > 0 {
		n++
	}
	if n != 1 {
		return errors.New("choose the dead letters: all of them, one batch, or ids")
	}
	return nil
}

// ErrNotFound is wrapped by errors for an id that names no dead letter, and
// ErrBadID by errors for an id that is not "<batch>:<line>".
var (
	ErrNotFound = errors.New("no such dead letter")
	ErrBadID    = errors.New("not a dead letter id")
)

// List returns the selected dead letters, batch by batch (the most recently
// imported first), by line. Lines pending again after a requeue are
// included (Requeued).
func (m *Manager) List(ctx context.Context, sel Selection) ([]Entry, error) {
	if err := sel.check(); err != nil {
		return nil, err
	}
	sources := map[string]string{}
	source := func(batch string) (string, error) {
		if s, ok := sources[batch]; ok {
			return s, nil
		}
		bc, err := m.cfg.Ledger.Batch(ctx, batch)
		if err != nil {
			return "", err
		}
		sources[batch] = bc.Source
		return bc.Source, nil
	}
	var out []Entry
	if len(sel.IDs) > 0 {
		for _, id := range sel.IDs {
			b, line, err := jobs.ParseTaskID(id)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadID, err)
			}
			src, err := source(b)
			if err != nil {
				return nil, fmt.Errorf("dead letter %s: %w", id, err)
			}
			dl, err := m.cfg.Ledger.DeadLetter(ctx, b, line)
			if errors.Is(err, ledger.ErrNoDeadLetter) {
				return nil, fmt.Errorf("dead letter %s: %w (orgconn dlq list shows them)", id, ErrNotFound)
			}
			if err != nil {
				return nil, err
			}
			out = append(out, Entry{dl, src})
		}
		return out, nil
	}
	batches := []string{sel.Batch}
	if sel.All {
		var err error
		if batches, err = m.cfg.Ledger.BatchesWithDeadLetters(ctx); err != nil {
			return nil, err
		}
	}
	for _, b := range batches {
		src, err := source(b)
		if errors.Is(err, ledger.ErrNoBatch) && sel.All {
			continue // expired between the two reads
		}
		if err != nil {
			return nil, err
		}
		dls, err := m.cfg.Ledger.DeadLetters(ctx, b)
		if err != nil {
			return nil, err
		}
		lines := make([]int, 0, len(dls))
		for line := range dls {
			lines = append(lines, line)
		}
		sort.Ints(lines)
		for _, line := range lines {
			out = append(out, Entry{dls[line], src})
		}
	}
	return out, nil
}

// Result says what happened to one selected dead letter.
type Result struct {
	ID string `json:"id"`
	// Done is true when the dead letter was requeued (or purged).
	Done bool `json:"done"`
	// State is a short word: requeued, refused, not-dead, running, purged
	// (a requeue of a purged line), pending (a purge of a requeued line).
	State string `json:"state"`
	// Detail says why, for anything but success.
	Detail string `json:"detail,omitempty"`
	// Err is set when Redis failed; running the command again is safe.
	Err error `json:"-"`
}

// Requeue requeues the selected dead letters that are still dead, in
// order, and makes sure every selected line that is pending after a requeue
// has its task queued (which repairs a requeue interrupted between the
// ledger and the queue). Each requeued change gets a new task with a fresh
// attempt budget; the archived task, if asynq still has it, is deleted. With
// force, a dead letter whose pair has a later change is requeued anyway
// (ledger.Ledger.Requeue explains the rule).
func (m *Manager) Requeue(ctx context.Context, sel Selection, force bool) ([]Result, error) {
	entries, err := m.List(ctx, sel)
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(entries))
	for _, e := range entries {
		r := Result{ID: e.ID()}
		dl := e.DeadLetter
		if !e.Requeued() {
			rr, err := m.cfg.Ledger.Requeue(ctx, dl, force, m.cfg.Now())
			if err != nil {
				r.Err = err
				out = append(out, r)
				continue
			}
			c := dl.Change
			switch rr.State {
			case ledger.RefusedLater:
				r.State = "refused"
				r.Detail = fmt.Sprintf("a later change to %s (%s) was accepted after it; requeuing would apply this older change after that one. "+
					"Export it (orgconn dlq export), review it and import it as a new change, or requeue with --force", c.PairKey(), rr.Later)
			case ledger.RefusedUnknown:
				r.State = "refused"
				r.Detail = fmt.Sprintf("the ledger does not know the latest change to %s (it is older than the retention, or was accepted before orgconn kept that record), so it cannot tell whether a later change exists; "+
					"import it as a new change, or requeue with --force", c.PairKey())
			case ledger.NotDead:
				r.State, r.Detail = "not-dead", "the line is "+rr.Outcome.String()+", not dead-lettered"
			case ledger.Purged:
				r.State, r.Detail = "purged", "the dead letter was purged"
			}
			if rr.State != ledger.Requeued {
				out = append(out, r)
				continue
			}
			dl = rr.DeadLetter
		}
		state, err := m.ensureTask(ctx, dl)
		switch {
		case err != nil:
			r.Err = fmt.Errorf("requeued in the ledger, but its task is not queued: %w; run the command again", err)
		case state == asynq.TaskStateActive:
			r.State, r.Detail = "running", "its previous delivery is still finishing; run the command again in a moment"
		default:
			r.Done, r.State = true, "requeued"
		}
		out = append(out, r)
	}
	return out, nil
}

// ensureTask makes sure the requeued line has a live task: it enqueues a
// new one unless one is pending, scheduled, retrying or running, deleting
// an archived or completed one first. It returns the state of the task it
// found (0 when it enqueued one).
func (m *Manager) ensureTask(ctx context.Context, dl ledger.DeadLetter) (asynq.TaskState, error) {
	id := jobs.TaskID(dl.Batch, dl.Line)
	info, err := m.insp.GetTaskInfo(m.cfg.Queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
	case err != nil:
		return 0, fmt.Errorf("look up task %s: %w", id, err)
	case info.State == asynq.TaskStateArchived, info.State == asynq.TaskStateCompleted:
		if err := m.insp.DeleteTask(m.cfg.Queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return 0, fmt.Errorf("delete archived task %s: %w", id, err)
		}
	default:
		return info.State, nil
	}
	task, opts, err := changetask.New(dl.Change, jobs.Origin{Batch: dl.Batch, Line: dl.Line, Event: dl.Event}, m.cfg.Queue)
	if err != nil {
		return 0, err
	}
	if _, err := m.client.EnqueueContext(ctx, task, opts...); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return 0, fmt.Errorf("enqueue task %s: %w", id, err)
	}
	return 0, nil
}

// Purge deletes the selected dead letters (and their archived tasks). The
// lines stay dead-lettered in their batch's counts and report. A line
// pending again after a requeue is not purged.
func (m *Manager) Purge(ctx context.Context, sel Selection) ([]Result, error) {
	entries, err := m.List(ctx, sel)
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(entries))
	for _, e := range entries {
		r := Result{ID: e.ID()}
		if e.Requeued() {
			r.State, r.Detail = "pending", "the line is pending again after a requeue"
			out = append(out, r)
			continue
		}
		ok, err := m.cfg.Ledger.Purge(ctx, e.Batch, e.Line)
		switch {
		case err != nil:
			r.Err = err
		case !ok:
			r.State, r.Detail = "not-dead", "the line is no longer dead-lettered"
		default:
			r.Done, r.State = true, "purged"
			if err := m.insp.DeleteTask(m.cfg.Queue, r.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
				r.Detail = "the archived task could not be deleted: " + err.Error()
			}
		}
		out = append(out, r)
	}
	return out, nil
}
