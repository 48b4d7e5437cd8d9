// Package autopipe makes a go-redis client send the script calls (EVALSHA,
// EVAL) of goroutines that wait at the same time together, as one pipeline.
//
// An import enqueues each change with asynq's Client.Enqueue, one script
// call and one round trip per task, from several goroutines. Each round trip
// costs a write and a read system call on both sides, which on a busy
// machine cost more than the script itself. With the hook installed, a call
// made while no other is on its way goes out at once, as usual; calls made
// while one is on its way wait for it and then go out together, in one
// write, their replies read in one go. asynq needs no change: the hook works
// below its client.
//
// Each command keeps its own reply and error. A call is not cut short by
// its context once queued (its reply could not be told apart from a later
// one otherwise); the client's read and write timeouts bound the wait.
package autopipe

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// MaxBatch is the most commands one pipeline carries.
const MaxBatch = 64

// MaxInFlight is how many commands sent alone or pipelines may be on their
// way at once: with two, Redis has the next pipeline to work on while the
// client reads the replies of one and its callers make their next calls.
const MaxInFlight = 2

// execTimeout bounds one pipeline, which no single caller's context may cut
// short for the others (the client's own timeouts apply within it).
const execTimeout = 30 * time.Second

// Hook is the go-redis hook. Install adds it to a client.
type Hook struct {
	rdb redis.UniversalClient

	mu       sync.Mutex
	queue    []*pending
	inFlight int // commands sent alone or pipelines on their way, at most MaxInFlight

	batches, batched int64 // pipelines sent and the commands they carried
}

type pending struct {
	cmd  redis.Cmder
	done chan struct{}
}

// Install adds the hook to rdb and returns it.
func Install(rdb redis.UniversalClient) *Hook {
	h := &Hook{rdb: rdb}
	rdb.AddHook(h)
	return h
}

// Stats reports the pipelines the hook sent and the commands they carried
// (commands sent alone are not counted).
func (h *Hook) Stats() (pipelines, commands int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.batches, h.batched
}

// DialHook implements redis.Hook.
func (h *Hook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessPipelineHook implements redis.Hook: pipelines, the hook's own
// included, pass unchanged.
func (h *Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// ProcessHook implements redis.Hook.
func (h *Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n != "evalsha" && n != "eval" {
			return next(ctx, cmd)
		}
		h.mu.Lock()
		if h.inFlight < MaxInFlight {
			// Room on the way: send at once.
			h.inFlight++
			h.mu.Unlock()
			err := next(ctx, cmd)
			h.sent()
			return err
		}
		p := &pending{cmd: cmd, done: make(chan struct{})}
		h.queue = append(h.queue, p)
		h.mu.Unlock()
		<-p.done
		return cmd.Err()
	}
}

// sent is called when a command or pipeline is back: the calls queued
// meanwhile go out next, from another goroutine so that the caller whose
// command is back does not wait for them.
func (h *Hook) sent() {
	h.mu.Lock()
	if len(h.queue) == 0 {
		h.inFlight--
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	go h.sendQueued()
}

// sendQueued sends the queued calls as pipelines until none is left.
func (h *Hook) sendQueued() {
	for {
		h.mu.Lock()
		n := min(len(h.queue), MaxBatch)
		if n == 0 {
			h.inFlight--
			h.mu.Unlock()
			return
		}
		batch := make([]*pending, n)
		copy(batch, h.queue)
		rest := copy(h.queue, h.queue[n:])
		clear(h.queue[rest:])
		h.queue = h.queue[:rest]
		h.batches++
		h.batched += int64(n)
		h.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
		pipe := h.rdb.Pipeline()
		for _, p := range batch {
			_ = pipe.Process(ctx, p.cmd)
		}
		_, _ = pipe.Exec(ctx) // each command carries its own reply or error
		cancel()
		for _, p := range batch {
			close(p.done)
		}
	}
}
