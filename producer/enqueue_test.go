package producer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/redis/go-redis/v9"
)

// The ledger is the Accepter cmd wires in.
var _ Accepter = (*ledger.Ledger)(nil)

// gateQueue holds every enqueue call until the test releases it, and
// records how many calls were in flight at most.
type gateQueue struct {
	entered chan jobs.Origin // one value per call, as it starts
	release chan struct{}    // one value lets one call return

	mu             sync.Mutex
	inFlight, most int
	calls          int
}

func (q *gateQueue) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	p, err := jobs.DecodePayload(task.Payload())
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	q.inFlight++
	q.calls++
	q.most = max(q.most, q.inFlight)
	q.mu.Unlock()
	q.entered <- p.Origin
	<-q.release
	q.mu.Lock()
	q.inFlight--
	q.mu.Unlock()
	return &asynq.TaskInfo{}, nil
}

func TestEnqueuesBoundTheCallsInFlight(t *testing.T) {
	const limit, n = 4, 40
	for _, backlog := range []int{0, 16} {
		t.Run(fmt.Sprintf("backlog %d", backlog), func(t *testing.T) {
			q := &gateQueue{entered: make(chan jobs.Origin, n), release: make(chan struct{})}
			enq := startEnqueues(context.Background(), q, "q", limit, backlog, Retry{})
			var queued atomic.Int64
			done := make(chan error, 1)
			go func() {
				for i := range n {
					c := jobs.Change{Action: jobs.Remove, OrgID: "org_1", ConnectionID: fmt.Sprintf("con_%d", i)}
					if err := enq.add(c, jobs.Origin{Batch: "b", Line: i + 1}, &queued); err != nil {
						done <- err
						return
					}
				}
				done <- enq.wait()
			}()
			// The first limit calls start; every call that returns lets one
			// more start, never more. Before each release, the other
			// goroutines get every chance to start a call too many (the
			// test's goroutine yields; it does not sleep).
			settle := func() {
				for range 200 {
					runtime.Gosched()
				}
			}
			seen := map[int]bool{}
			for range limit {
				seen[(<-q.entered).Line] = true
			}
			for range n - limit {
				settle()
				q.release <- struct{}{}
				seen[(<-q.entered).Line] = true
			}
			for range limit {
				q.release <- struct{}{}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if q.most != limit || q.calls != n || len(seen) != n || queued.Load() != n {
				t.Fatalf("%d calls in flight at most (want %d), %d calls, %d lines, %d counted (want %d)", q.most, limit, q.calls, len(seen), queued.Load(), n)
			}
		})
	}
}

// errInjected stands for Redis going away.
var errInjected = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused (injected)")

// faultHook makes a client's script calls of one kind fail: Left of them,
// the first ones, before they reach Redis, or, with AnswerLost, after Redis
// ran them (the reply is lost).
type faultHook struct {
	Match      func(key string) bool // on the script's first key
	Left       atomic.Int64
	AnswerLost bool
	Injected   atomic.Int64
}

func (h *faultHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *faultHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *faultHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if name := cmd.Name(); (name != "evalsha" && name != "eval") || len(args) < 4 || !h.Match(fmt.Sprint(args[3])) || h.Left.Add(-1) < 0 {
			return next(ctx, cmd)
		}
		if h.AnswerLost {
			if err := next(ctx, cmd); err != nil {
				h.Left.Add(1) // no answer to lose (NOSCRIPT, say)
				return err
			}
		}
		h.Injected.Add(1)
		cmd.SetErr(errInjected)
		return errInjected
	}
}

// faultFixture is a ledger and a queue on a client of the test's Redis whose
// script calls fail as the hook says.
type faultFixture struct {
	*fixture
	hook   *faultHook
	faulty *ledger.Ledger // on the faulty client; fixture.ledger is not
	queue  *asynq.Client
}

// setupFaults injects faults into the ledger's script calls (what "ledger")
// or the enqueues ("enqueue").
func setupFaults(t *testing.T, what string, fails int64, answerLost bool) *faultFixture {
	t.Helper()
	f := setup(t)
	opt, err := redis.ParseURL(f.env.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	h := &faultHook{AnswerLost: answerLost}
	h.Left.Store(fails)
	switch what {
	case "ledger":
		h.Match = func(key string) bool { return strings.HasPrefix(key, "{"+f.env.Prefix+"}") }
	case "enqueue":
		h.Match = func(key string) bool { return strings.HasPrefix(key, "asynq:{"+f.env.Queue+"}") }
	default:
		t.Fatalf("no faults for %q", what)
	}
	rdb.AddHook(h)
	l, err := ledger.New(rdb, f.env.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	q := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { q.Close() })
	return &faultFixture{fixture: f, hook: h, faulty: l, queue: q}
}

// fastRetry retries quickly, for as long as a test may wait.
var fastRetry = Retry{For: 10 * time.Second, Wait: time.Millisecond, MaxWait: 5 * time.Millisecond}

// A Redis that fails a few times and then answers delays an import or a
// submission; it does not fail it, and every line is queued once.
func TestRedisFailingThenAnsweringIsRetried(t *testing.T) {
	for _, what := range []string{"ledger", "enqueue"} {
		for _, lost := range []bool{false, true} {
			name := what + " fails"
			if lost {
				name = what + " answer lost"
			}
			t.Run(name+"/submit", func(t *testing.T) {
				f := setupFaults(t, what, 3, lost)
				s, err := NewSubmitter(SubmitConfig{Ledger: f.faulty, Queue: f.queue, QueueName: f.env.Queue, Concurrency: 2, Retry: fastRetry})
				if err != nil {
					t.Fatal(err)
				}
				rec, err := s.Submit(context.Background(), Submission{Batch: "wh-retry", Source: "webhook", Changes: changesFor(5)})
				if err != nil {
					t.Fatal(err)
				}
				if got := f.hook.Injected.Load(); got != 3 {
					t.Fatalf("%d faults injected, want 3", got)
				}
				if got := f.queued(t); !slices.Equal(got, rec.TaskIDs) {
					t.Fatalf("queued %v, want %v", got, rec.TaskIDs)
				}
				if !lost && (rec.Accepted != 5 || rec.Enqueued != 5) {
					t.Fatalf("receipt %+v, want 5 accepted and enqueued", rec)
				}
				if bc, err := f.ledger.Batch(context.Background(), "wh-retry"); err != nil || bc.Total != 5 || bc.Pending != 5 {
					t.Fatalf("batch %+v, %v; want 5 lines, each accepted once", bc, err)
				}
			})
			t.Run(name+"/import", func(t *testing.T) {
				f := setupFaults(t, what, 3, lost)
				im, err := NewImporter(Config{Ledger: f.faulty, Queue: f.queue, QueueName: f.env.Queue, ChunkSize: 2, Concurrency: 2, Retry: fastRetry})
				if err != nil {
					t.Fatal(err)
				}
				p := writeFile(t, "retry.csv", "action,org_id,connection_id\nenable,org_1,con_1\nenable,org_2,con_1\nremove,org_3,con_1\nenable,org_4,con_1\nenable,org_5,con_1\n")
				res, err := im.ImportFile(context.Background(), p, Options{Batch: "retry"})
				if err != nil {
					t.Fatal(err)
				}
				if got := f.hook.Injected.Load(); got != 3 {
					t.Fatalf("%d faults injected, want 3", got)
				}
				if !lost && (res.Enqueued != 5 || res.Duplicates != 0) {
					t.Fatalf("result %+v, want 5 enqueued", res)
				}
				want := []string{"retry:2", "retry:3", "retry:4", "retry:5", "retry:6"}
				if got := f.queued(t); !slices.Equal(got, want) {
					t.Fatalf("queued %v, want %v", got, want)
				}
				if bc, err := f.ledger.Batch(context.Background(), "retry"); err != nil || bc.Total != 5 {
					t.Fatalf("batch %+v, %v; want 5 lines, each accepted once (result %+v)", bc, err, res)
				}
			})
		}
	}
}

// A Redis that does not come back ends the submission once the policy's time
// is up (or at once without retries), naming the failure.
func TestRedisNotAnsweringEndsTheSubmission(t *testing.T) {
	for _, tc := range []struct {
		retry   Retry
		faults  int64 // at least
		message string
	}{
		{Retry{For: -1}, 1, "connection refused"},
		{Retry{For: 30 * time.Millisecond, Wait: time.Millisecond, MaxWait: 2 * time.Millisecond}, 3, "retried for 30ms"},
	} {
		t.Run(fmt.Sprint(tc.retry.For), func(t *testing.T) {
			f := setupFaults(t, "enqueue", 1<<40, false)
			s, err := NewSubmitter(SubmitConfig{Ledger: f.faulty, Queue: f.queue, QueueName: f.env.Queue, Retry: tc.retry})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Submit(context.Background(), Submission{Batch: "wh-down", Source: "webhook", Changes: changesFor(3)})
			if err == nil || !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), "submit it again") {
				t.Fatalf("error %v, want one saying %q and what to do", err, tc.message)
			}
			if got := f.hook.Injected.Load(); got < tc.faults {
				t.Fatalf("%d calls made, want at least %d", got, tc.faults)
			}
			if got := f.queued(t); len(got) != 0 {
				t.Fatalf("queued %v", got)
			}
		})
	}
}

// The caller's context bounds the retries: a webhook request's timeout ends
// a submission whose Redis does not come back.
func TestRetriesEndWithTheContext(t *testing.T) {
	f := setupFaults(t, "ledger", 1<<40, false)
	s, err := NewSubmitter(SubmitConfig{Ledger: f.faulty, Queue: f.queue, QueueName: f.env.Queue, Retry: Retry{Wait: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Submit(ctx, Submission{Batch: "wh-ctx", Source: "webhook", Changes: changesFor(1)}); err == nil {
		t.Fatal("submitted while Redis refused every call")
	}
	if ctx.Err() == nil {
		t.Fatal("Submit returned before its context ended: it did not retry")
	}
}
