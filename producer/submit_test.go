package producer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
)

// submitFixture is a Submitter on the test's Redis.
type submitFixture struct {
	*fixture
	client *asynq.Client
	sub    *Submitter
}

func setupSubmit(t *testing.T) *submitFixture {
	t.Helper()
	f := setup(t)
	client := asynq.NewClientFromRedisClient(f.env.Client)
	s, err := NewSubmitter(SubmitConfig{Ledger: f.ledger, Queue: client, QueueName: f.env.Queue})
	if err != nil {
		t.Fatal(err)
	}
	return &submitFixture{fixture: f, client: client, sub: s}
}

func changesFor(n int) []jobs.Change {
	out := make([]jobs.Change, n)
	for i := range out {
		out[i] = jobs.Change{Action: jobs.Enable, OrgID: fmt.Sprintf("org_%d", i), ConnectionID: "con_1", ShowAsButton: jobs.True}
	}
	return out
}

func TestSubmitAcceptsEnqueuesAndIsIdempotent(t *testing.T) {
	f := setupSubmit(t)
	ctx := context.Background()
	sub := Submission{Batch: "wh-abc", Source: "webhook", Changes: changesFor(3)}
	rec, err := f.sub.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"wh-abc:1", "wh-abc:2", "wh-abc:3"}
	if !slices.Equal(rec.TaskIDs, want) || rec.Accepted != 3 || rec.Enqueued != 3 || rec.Repeated != 0 {
		t.Fatalf("first submit: %+v", rec)
	}
	if got := f.queued(t); !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	rec, err = f.sub.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.TaskIDs, want) || rec.Accepted != 0 || rec.Enqueued != 0 || rec.Repeated != 3 {
		t.Fatalf("second submit: %+v", rec)
	}
	bc, err := f.ledger.Batch(ctx, "wh-abc")
	if err != nil || bc.Total != 3 || bc.Source != "webhook" {
		t.Fatalf("batch %+v, %v", bc, err)
	}
}

func TestSubmitCarriesTheEventIntoEveryTask(t *testing.T) {
	f := setupSubmit(t)
	if _, err := f.sub.Submit(context.Background(), Submission{Batch: "evt-1", Source: "event:organization.created", Event: "evt_XYZ", Changes: changesFor(2)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"evt-1:1", "evt-1:2"} {
		ti, err := f.inspector.GetTaskInfo(f.env.Queue, id)
		if err != nil {
			t.Fatal(err)
		}
		p, err := jobs.DecodePayload(ti.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if p.Origin.Event != "evt_XYZ" || p.Origin.Batch != "evt-1" {
			t.Errorf("task %s has origin %+v", id, p.Origin)
		}
	}
}

func TestSubmitRefusesAnInvalidSubmissionBeforeWriting(t *testing.T) {
	f := setupSubmit(t)
	ctx := context.Background()
	changes := changesFor(3)
	changes[1].OrgID = ""
	for name, sub := range map[string]Submission{
		"invalid change": {Batch: "b1", Source: "webhook", Changes: changes},
		"bad batch name": {Batch: "no spaces", Source: "webhook", Changes: changesFor(1)},
		"no changes":     {Batch: "b2", Source: "webhook"},
		"no source":      {Batch: "b3", Changes: changesFor(1)},
	} {
		if _, err := f.sub.Submit(ctx, sub); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := f.ledger.Batch(ctx, "b1"); !errors.Is(err, ledger.ErrNoBatch) {
		t.Errorf("the ledger knows batch b1 after a refused submission: %v", err)
	}
	if got := f.queued(t); len(got) != 0 {
		t.Errorf("queued %v after refused submissions", got)
	}
}

// flakyQueue fails every enqueue after the first ok ones.
type flakyQueue struct {
	Enqueuer
	ok    int64
	calls atomic.Int64
}

func (q *flakyQueue) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if q.calls.Add(1) > q.ok {
		return nil, errors.New("connection refused")
	}
	return q.Enqueuer.EnqueueContext(ctx, task, opts...)
}

func TestSubmitAgainAfterAFailureCompletesWithoutDuplicates(t *testing.T) {
	f := setupSubmit(t)
	ctx := context.Background()
	flaky, err := NewSubmitter(SubmitConfig{Ledger: f.ledger, Queue: &flakyQueue{Enqueuer: f.client, ok: 2}, QueueName: f.env.Queue, Concurrency: 1, Retry: Retry{For: -1}})
	if err != nil {
		t.Fatal(err)
	}
	sub := Submission{Batch: "retry", Source: "webhook", Changes: changesFor(5)}
	if _, err := flaky.Submit(ctx, sub); err == nil {
		t.Fatal("a failing queue did not fail the submission")
	}
	if got := f.queued(t); len(got) != 2 {
		t.Fatalf("queued %v before the retry, want 2 tasks", got)
	}
	rec, err := f.sub.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Accepted != 0 || rec.Repeated != 5 || rec.Enqueued != 3 {
		t.Fatalf("retry: %+v, want 0 accepted, 5 repeated, 3 enqueued", rec)
	}
	if got := f.queued(t); !slices.Equal(got, rec.TaskIDs) {
		t.Fatalf("queued %v, want %v", got, rec.TaskIDs)
	}
}

func TestSubmitMoreLinesThanOneLedgerCall(t *testing.T) {
	f := setupSubmit(t)
	n := ledger.MaxAcceptRows + 40
	rec, err := f.sub.Submit(context.Background(), Submission{Batch: "big", Source: "webhook", Changes: changesFor(n)})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Accepted != n || rec.Enqueued != n || len(rec.TaskIDs) != n || rec.TaskIDs[n-1] != jobs.TaskID("big", n) {
		t.Fatalf("receipt: accepted %d, enqueued %d, %d task ids", rec.Accepted, rec.Enqueued, len(rec.TaskIDs))
	}
	if got := len(f.queued(t)); got != n {
		t.Fatalf("queued %d tasks, want %d", got, n)
	}
}
