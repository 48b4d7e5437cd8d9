package worker

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Orphaned tasks.
//
// asynq gives the task a worker takes a 30 s lease, extended every 5 s while
// the worker lives. When a worker process dies (SIGKILL, OOM, lost node) its
// tasks stay active until asynq's recoverer notices: it runs once a minute
// and only takes tasks whose lease expired more than 30 s ago, so a killed
// worker's tasks wait 55 s to 2 min — and every later change to their pairs
// waits with them, since a pair's changes act in order. (asynq v0.26 does
// not make either figure configurable.)
//
// The orphan check does what asynq's recoverer does, sooner: every
// OrphanCheck it puts back into the pending list every active task whose
// lease expired more than OrphanGrace ago, as asynq's own shutdown does (no
// attempt is spent). A killed worker's tasks then run again about 30 s +
// OrphanGrace after its last heartbeat. It is safe when the worker is alive
// after all (a long pause, Redis out of reach): asynq's processor abandons a
// task whose lease it could not extend, and the ledger's pair lease still
// keeps two deliveries of a change from acting at once.
//
// It relies on asynq's Redis layout (v0.26): asynq:{queue}:lease (a sorted
// set of task id by lease expiry, in Unix seconds), :active and :pending
// (lists of task ids) and :t:<id> (the task hash); TestOrphanedTaskIsPutBack
// breaks if an upgrade changes it.

// requeueOrphans moves back to the pending list, as asynq's Requeue does,
// every active task whose lease expired at or before a cutoff, and every
// active task without a lease at all. (asynq's dequeue adds a task to the
// active list and its lease in one script, and every script that takes it
// out of the list removes the lease too, so an active task without a lease
// is an orphan whatever the clock says: the lease was lost to eviction, a
// restore or a hand edit. asynq's own recoverer never finds those — asynq
// issues #1051 and #1144.)
//
// A task put back does not spend an attempt, and is put back however often
// it is orphaned: a change that kills every worker that takes it (a crash,
// an OOM) is bounded by the ledger instead, which counts the claims of the
// change that never finished and has the worker dead-letter it with reason
// crashed_worker after Config.MaxCrashes of them. (Change tasks have
// asynq's MaxRetry at 1,000,000, so asynq's recoverer alone would never
// archive such a task.) The task hash's field orgconn_orphaned counts the
// put-backs, for diagnosis.
//
// KEYS[1] asynq:{queue}:lease
// KEYS[2] asynq:{queue}:active
// KEYS[3] asynq:{queue}:pending
// ARGV[1] the cutoff, Unix seconds
// ARGV[2] the task key prefix, asynq:{queue}:t:
// Returns the ids put back.
var requeueOrphans = redis.NewScript(`
local out = {}
local function requeue(id)
  redis.call("ZREM", KEYS[1], id)
  if redis.call("LREM", KEYS[2], 0, id) > 0 then
    redis.call("RPUSH", KEYS[3], id)
    redis.call("HSET", ARGV[2] .. id, "state", "pending")
    table.insert(out, id)
  end
end
for _, id in ipairs(redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, 1000)) do
  local key = ARGV[2] .. id
  if redis.call("EXISTS", key) == 1 then
    redis.call("HINCRBY", key, "orgconn_orphaned", 1)
    requeue(id)
  end
end
for _, id in ipairs(redis.call("LRANGE", KEYS[2], 0, 999)) do
  if not redis.call("ZSCORE", KEYS[1], id) then
    requeue(id)
  end
end
return out`)

// RequeueOrphans puts back into the pending list every active task of queue
// whose asynq lease expired at or before cutoff, and every active task
// without a lease, and returns their ids.
func RequeueOrphans(ctx context.Context, rdb redis.UniversalClient, queue string, cutoff time.Time) ([]string, error) {
	p := "asynq:{" + queue + "}:"
	return requeueOrphans.Run(ctx, rdb, []string{p + "lease", p + "active", p + "pending"}, cutoff.Unix(), p+"t:").StringSlice()
}

// watchOrphans runs the orphan check (unless it is off) and the sweep of
// stalled batches (blocked.go) until stop is closed.
func (w *Worker) watchOrphans(stop <-chan struct{}) {
	var orphans <-chan time.Time
	if w.cfg.OrphanCheck > 0 {
		t := time.NewTicker(w.cfg.OrphanCheck)
		defer t.Stop()
		orphans = t.C
	}
	sweep := time.NewTicker(stalledSweepEvery / 3)
	defer sweep.Stop()
	for {
		select {
		case <-stop:
			return
		case <-orphans:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ids, err := RequeueOrphans(ctx, w.cfg.Redis, w.cfg.Queue, time.Now().Add(-w.cfg.OrphanGrace))
			cancel()
			switch {
			case err != nil:
				w.cfg.Logger.Debug("orphan check failed", "err", err)
			case len(ids) > 0:
				w.cfg.Logger.Warn("put back the tasks of a worker that stopped (its asynq lease expired)", "tasks", len(ids), "task_id", ids[0])
			}
		case <-sweep.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			n, err := w.h.sweepStalled(ctx)
			cancel()
			switch {
			case err != nil:
				w.cfg.Logger.Debug("sweep of stalled batches failed", "err", err)
			case n > 0:
				w.cfg.Logger.Warn("enqueued again the changes of stalled batches that had no task", "tasks", n)
			}
		}
	}
}
