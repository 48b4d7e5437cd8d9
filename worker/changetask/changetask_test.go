package changetask

import (
	"bytes"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
)

// The task a worker queues is the one a producer queues: type name, payload
// bytes, id and retry limit as jobs.TaskOf says, in the queue asked for.
func TestNewMatchesTheJobsTask(t *testing.T) {
	c := jobs.Change{Action: jobs.Enable, OrgID: "org_1", ConnectionID: "con_1", ShowAsButton: jobs.True}
	o := jobs.Origin{Batch: "b1", Line: 7, Event: "evt_1"}
	task, opts, err := New(c, o, "q1")
	if err != nil {
		t.Fatal(err)
	}
	want, err := jobs.TaskOf(c, o)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != "orgconn:change:v1" || task.Type() != want.Type || !bytes.Equal(task.Payload(), want.Payload) {
		t.Fatalf("task %s %s, want %s %s", task.Type(), task.Payload(), want.Type, want.Payload)
	}
	got := map[asynq.OptionType]any{}
	for _, o := range opts {
		got[o.Type()] = o.Value()
	}
	if got[asynq.QueueOpt] != "q1" || got[asynq.TaskIDOpt] != "b1:7" || got[asynq.MaxRetryOpt] != jobs.MaxRetry || len(got) != 3 {
		t.Fatalf("options %v", got)
	}
}
