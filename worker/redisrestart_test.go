package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/jobs/jobstest"
	"github.com/orgconn/orgconn/producer"
	"github.com/orgconn/orgconn/worker/ledger"
	"github.com/orgconn/orgconn/worker/mgmt/mgmttest"
	"github.com/orgconn/orgconn/worker/ratelimit"
	"github.com/orgconn/orgconn/worker/redistest"
)

// killingEnqueuer kills Redis (SIGKILL) when the import has enqueued `at`
// tasks, and starts it again, on the same port and append-only file, after
// `down`; the importer's other calls meet the outage meanwhile.
type killingEnqueuer struct {
	producer.Enqueuer
	srv      *redistest.Server
	at       int64
	down     time.Duration
	n        atomic.Int64
	restarts chan error
}

func (k *killingEnqueuer) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if k.n.Add(1) == k.at {
		k.srv.Kill()
		time.Sleep(k.down)
		k.restarts <- k.srv.TryStart()
	}
	return k.Enqueuer.EnqueueContext(ctx, task, opts...)
}

// TestRedisRestartLosesNothing kills Redis (appendonly yes, appendfsync
// always) twice — once in the middle of an import that runs while the
// workers work, once in the middle of the work — and starts it again on the
// same port and directory: the importer and the workers reconnect and carry
// on, and the tenant ends in exactly the state of applying the rows in file
// order.
func TestRedisRestartLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a redis-server; about 45 s")
	}
	t.Parallel() // mostly waiting: for orphaned tasks, for the rate budget
	srv := redistest.StartServer(t, redistest.ServerOptions{AppendOnly: true})
	env := srv.NewEnv(t, 0)
	e := newE2EOn(t, env, mgmttest.Config{
		Orgs: 50, Connections: 8, Seed: 29,
		Global: mgmttest.Bucket{Burst: 20, Rate: 50},
		Faults: mgmttest.Faults{Latency: 10 * time.Millisecond, Jitter: 20 * time.Millisecond},
	})
	e.budget = ratelimit.Buckets{Global: ratelimit.Bucket{Burst: 20, Rate: 50}}
	changes := 290
	if full() {
		changes = 1990
	}
	rows := jobstest.Generate(e.tenant, jobstest.Options{Changes: changes, RepeatShare: 0.3, UnknownOrgs: 6, SignupFails: 4, Invalid: 5, Seed: 31})

	start := time.Now()
	e.startWorker("w1", 10)
	e.startWorker("w2", 10)
	k := &killingEnqueuer{Enqueuer: asynq.NewClientFromRedisClient(env.Client), srv: srv, at: int64(changes / 3), down: time.Second, restarts: make(chan error, 1)}
	res := e.importRowsVia(rows, k)
	if err := <-k.restarts; err != nil {
		t.Fatal(err)
	}
	// A call whose answer the kill lost may have been applied: its retry
	// then finds the task queued (not counted). verify checks that every
	// line was queued and resolved.
	t.Logf("import through a Redis restart: %d rows, %d valid, %d enqueued, %d requeued, %d already accepted", res.Rows, res.Valid, res.Enqueued, res.Repaired, res.Duplicates)

	e.waitProgress("half the batch resolved", 2*time.Minute, func(bc ledger.BatchCounts) bool { return bc.Total-bc.Pending >= bc.Total/2 })
	srv.Kill()
	killedAt := time.Now()
	time.Sleep(2 * time.Second)
	srv.Start()
	t.Logf("Redis killed at %v and back 2 s later", killedAt.Sub(start).Round(time.Millisecond))

	bc := e.waitDone(3 * time.Minute)
	t.Logf("%d changes in %v through two Redis restarts: %+v", bc.Total, time.Since(start).Round(time.Millisecond), bc)
	e.verify()
}
