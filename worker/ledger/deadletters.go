package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/orgconn/orgconn/jobs"
	"github.com/redis/go-redis/v9"
)

// The ledger's dead letters are the source of truth for changes that could
// not be applied: asynq's archive holds the same tasks too, but it drops the
// oldest beyond 10,000 tasks or 90 days, while a dead letter stays as long as
// its batch's record (retention) unless purged, and a purged line stays
// counted as dead.

// ErrNoDeadLetter is returned for a line that has no dead letter.
var ErrNoDeadLetter = errors.New("no such dead letter")

// DeadLetter returns one dead letter of batch.
func (l *Ledger) DeadLetter(ctx context.Context, batch string, line int) (DeadLetter, error) {
	s, err := l.rdb.HGet(ctx, l.deadKey(batch), strconv.Itoa(line)).Result()
	if errors.Is(err, redis.Nil) {
		return DeadLetter{}, fmt.Errorf("%s: %w", jobs.TaskID(batch, line), ErrNoDeadLetter)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("ledger: read dead letter %s: %w", jobs.TaskID(batch, line), err)
	}
	var dl DeadLetter
	if err := json.Unmarshal([]byte(s), &dl); err != nil {
		return DeadLetter{}, fmt.Errorf("ledger: dead letter %s: %w", jobs.TaskID(batch, line), err)
	}
	return dl, nil
}

// BatchesWithDeadLetters returns the known batches that hold dead letters
// (requeued ones still pending included), the most recently imported first.
func (l *Ledger) BatchesWithDeadLetters(ctx context.Context) ([]string, error) {
	names, err := l.Batches(ctx, 0)
	if err != nil {
		return nil, err
	}
	lens := make([]*redis.IntCmd, len(names))
	if _, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			lens[i] = p.HLen(ctx, l.deadKey(n))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("ledger: count dead letters: %w", err)
	}
	var out []string
	for i, n := range names {
		if lens[i].Val() > 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

// RequeueState says what Requeue did.
type RequeueState int

// The requeue answers.
const (
	// Requeued: the line is pending again, at the end of its pair's queue;
	// its task must be enqueued (with a fresh attempt budget).
	Requeued RequeueState = iota
	// RefusedLater: a change to the same pair was accepted after this one
	// (Later names it); requeuing would make this change take effect after
	// it. Nothing changed.
	RefusedLater
	// RefusedUnknown: the ledger does not know the pair's latest change (it
	// is older than the retention, or was accepted by a version of orgconn
	// that did not record it), so it cannot tell whether a later change
	// exists. Nothing changed.
	RefusedUnknown
	// NotDead: the line is not dead-lettered (Outcome says what it is, e.g.
	// pending after an earlier requeue). Nothing changed.
	NotDead
	// Purged: the line's dead letter was purged; nothing to requeue.
	Purged
)

// RequeueResult is the answer to Requeue.
type RequeueResult struct {
	State   RequeueState
	Later   string  // RefusedLater: the task id of the later change
	Outcome Outcome // NotDead: the line's outcome
	// DeadLetter is the record as stored after a requeue (RequeuedAt set).
	DeadLetter DeadLetter
}

// Requeue accepts the dead-lettered line dl.Batch:dl.Line again, as a new
// change at the end of its pair's queue, and clears its failure history; its
// dead letter stays, marked requeued at now, until the line resolves again.
//
// The rule that keeps a pair's order: without force, the line is requeued
// only if it is still its pair's latest accepted change. When a later change
// to the pair was accepted (pending, applied or anything else), requeuing
// would let the older change take effect after the newer one, so Requeue
// refuses and names the later change. With force, the change is requeued
// anyway and takes effect after every change accepted before the requeue,
// as a fresh import of it would.
func (l *Ledger) Requeue(ctx context.Context, dl DeadLetter, force bool, now time.Time) (RequeueResult, error) {
	id := jobs.TaskID(dl.Batch, dl.Line)
	at := now.UTC()
	dl.RequeuedAt = &at
	rec, err := json.Marshal(dl)
	if err != nil {
		return RequeueResult{}, fmt.Errorf("ledger: encode dead letter %s: %w", id, err)
	}
	f := "0"
	if force {
		f = "1"
	}
	b, c := dl.Batch, dl.Change
	keys := []string{l.batchKey(b), l.outKey(b), l.deadKey(b), l.triesKey(b), l.pairKey(c), l.queueKey(c), l.pairLastKey(c)}
	v, err := requeueScript.Run(ctx, l.rdb, keys, dl.Line, id, jobs.ShapeOf(c).String(), rec, f, int64(l.retention/time.Second)).Slice()
	if err != nil {
		return RequeueResult{}, fmt.Errorf("ledger: requeue %s: %w", id, err)
	}
	switch code, _ := v[0].(int64); code {
	case 1:
		return RequeueResult{State: Requeued, DeadLetter: dl}, nil
	case 2:
		later, _ := v[1].(string)
		if later == "" {
			return RequeueResult{State: RefusedUnknown}, nil
		}
		return RequeueResult{State: RefusedLater, Later: later}, nil
	case 3:
		return RequeueResult{State: Purged}, nil
	default:
		var o Outcome
		if s, _ := v[1].(string); len(s) == 1 {
			o = Outcome(s[0])
		}
		return RequeueResult{State: NotDead, Outcome: o}, nil
	}
}

// Purge deletes the dead letter of a dead-lettered line. The line stays dead
// (and counted as dead, and as purged) in the batch's record. It reports
// false when the line has no dead letter or is pending again after a
// requeue.
func (l *Ledger) Purge(ctx context.Context, batch string, line int) (bool, error) {
	n, err := purgeScript.Run(ctx, l.rdb, []string{l.batchKey(batch), l.outKey(batch), l.deadKey(batch)}, line).Int64()
	if err != nil {
		return false, fmt.Errorf("ledger: purge %s: %w", jobs.TaskID(batch, line), err)
	}
	return n == 1, nil
}
