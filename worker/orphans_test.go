package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/orgconn/orgconn/worker"
	"github.com/orgconn/orgconn/worker/redistest"
	"github.com/redis/go-redis/v9"
)

// TestOrphanedTaskIsPutBack makes tasks active the way asynq's dequeue
// does, one with an expired lease, one with a live lease, and one without a
// lease, and one put back three times already, and checks that all but the
// live one go back to pending — asynq's inspector agreeing, so that a change
// of asynq's Redis layout breaks this test. (A task that kills every worker
// is bounded by the ledger's crash count, not here: TestCrashingChangeIsDeadLettered.)
func TestOrphanedTaskIsPutBack(t *testing.T) {
	env := redistest.New(t)
	ctx := context.Background()
	cl := asynq.NewClientFromRedisClient(env.Client)
	for _, id := range []string{"dead", "alive", "nolease", "poison"} {
		if _, err := cl.Enqueue(asynq.NewTask("x", nil), asynq.Queue(env.Queue), asynq.TaskID(id)); err != nil {
			t.Fatal(err)
		}
	}
	p := "asynq:{" + env.Queue + "}:"
	now := time.Unix(1_800_000_000, 0)
	for id, lease := range map[string]time.Time{"dead": now.Add(-10 * time.Second), "alive": now.Add(20 * time.Second), "poison": now.Add(-10 * time.Second)} {
		if err := env.Client.LRem(ctx, p+"pending", 0, id).Err(); err != nil {
			t.Fatal(err)
		}
		env.Client.LPush(ctx, p+"active", id)
		env.Client.ZAdd(ctx, p+"lease", redisZ(lease, id))
		env.Client.HSet(ctx, p+"t:"+id, "state", "active")
	}
	// A task put back three times already (it kills its workers).
	env.Client.HSet(ctx, p+"t:poison", "orgconn_orphaned", 3)
	// An active task whose lease was lost (eviction, a restore).
	env.Client.LRem(ctx, p+"pending", 0, "nolease")
	env.Client.LPush(ctx, p+"active", "nolease")
	env.Client.HSet(ctx, p+"t:nolease", "state", "active")
	insp := asynq.NewInspectorFromRedisClient(env.Client)
	if info, err := insp.GetTaskInfo(env.Queue, "dead"); err != nil || info.State != asynq.TaskStateActive {
		t.Fatalf("before: task dead = %+v, %v; want active", info, err)
	}

	ids, err := worker.RequeueOrphans(ctx, env.Client, env.Queue, now.Add(-5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[dead poison nolease]" {
		t.Fatalf("requeued %v, want [dead poison nolease]", ids)
	}
	for id, want := range map[string]asynq.TaskState{"dead": asynq.TaskStatePending, "nolease": asynq.TaskStatePending, "alive": asynq.TaskStateActive, "poison": asynq.TaskStatePending} {
		info, err := insp.GetTaskInfo(env.Queue, id)
		if err != nil || info.State != want {
			t.Errorf("task %s = %+v, %v; want %v", id, info, err, want)
		}
	}
	qi, err := insp.GetQueueInfo(env.Queue)
	if err != nil || qi.Pending != 3 || qi.Active != 1 {
		t.Errorf("queue = %+v, %v; want 3 pending, 1 active", qi, err)
	}
	if ids, _ := worker.RequeueOrphans(ctx, env.Client, env.Queue, now.Add(-5*time.Second)); len(ids) != 0 {
		t.Errorf("second check requeued %v again", ids)
	}
}

func redisZ(at time.Time, id string) redis.Z { return redis.Z{Score: float64(at.Unix()), Member: id} }
