// Package changetask makes the asynq task of a change on the worker's side,
// for the tasks workers put (back) in the queue themselves: a requeued dead
// letter, a repaired pair. The producer makes the same task on its side;
// both take the type, id, payload and retry limit from jobs.TaskOf, so a
// task is the same whoever queues it.
package changetask

import (
	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
)

// New returns the asynq task of the change c at origin o, and the options
// that put it in queue with its deterministic id and its retry limit.
// Enqueueing it when a task of that id exists fails with
// asynq.ErrTaskIDConflict.
func New(c jobs.Change, o jobs.Origin, queue string) (*asynq.Task, []asynq.Option, error) {
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
